"""Moving an agent (`.to(device)`, `.double()`) must move every tensor its updates and policy steps
touch. A move keeps Parameter objects but swaps their data and replaces every buffer; a frozen view
or a plain tensor attribute that still holds the old tensor is left behind. On CUDA that is
"Expected all tensors to be on the same device" at the first update; here it is emulated on the CPU:
`to(float64).to(float32)` gives every tensor new storage, the old storage is filled with NaN, and
a dispatch mode records any op that still reads it."""

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from dreamer.config import load_config
from dreamer.nets.frozen import FrozenView
from dreamer.recipes import build_agent
from tests.conftest import TINY, TINY_2024, act_space, obs_space, random_batch, with_latents


class ReadsOf(TorchDispatchMode):
    """Records every op that reads one of `tensors`' storages."""

    def __init__(self, tensors: list[torch.Tensor]):
        super().__init__()
        self.storages = {t.untyped_storage().data_ptr() for t in tensors}
        self.reads: set[tuple[str, tuple[int, ...]]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for arg in tree_flatten((args, kwargs))[0]:
            if isinstance(arg, torch.Tensor) and arg.untyped_storage().data_ptr() in self.storages:
                self.reads.add((str(func), tuple(arg.shape)))
        return func(*args, **(kwargs or {}))


def _agent(recipe: str, discrete: bool):
    cfg = load_config(TINY if recipe == "2023" else TINY_2024, {"env": "crafter"})
    obs, act = obs_space(), act_space(discrete)
    agent = build_agent(cfg, obs, act)
    batch = random_batch(obs, act, 2, 6)
    if recipe == "2024":
        rssm = agent.wm.rssm
        batch = with_latents(batch, rssm.deter, rssm.stoch, rssm.classes)
    return agent, batch


@pytest.mark.parametrize("recipe,discrete", [("2023", True), ("2023", False), ("2024", True), ("2024", False)])
def test_an_update_and_policy_steps_after_a_move_touch_no_tensor_left_behind(recipe, discrete):
    agent, batch = _agent(recipe, discrete)
    before = [t.detach() for t in (*agent.parameters(), *agent.buffers())]  # kept alive: no address reuse
    agent.to(torch.float64).to(torch.float32)  # new storage for every parameter and buffer, as a device move
    for tensor in before:
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))  # what a tensor on the old device would give if read anyway
    reads = ReadsOf(before)
    with reads:
        metrics = agent.train(batch)
        obs = {k: v[:, 0].numpy() for k, v in batch.items()}
        _, state = agent.policy(obs)
        agent.policy(obs, state)
    assert reads.reads == set()
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics


@pytest.mark.parametrize("recipe", ["2023", "2024"])
def test_no_module_keeps_a_plain_tensor_attribute(recipe):
    """A tensor attribute that is neither a parameter nor a buffer is not moved by `.to()`."""
    agent, _ = _agent(recipe, discrete=False)
    views = [v.view for v in vars(agent).values() if isinstance(v, FrozenView)]
    views += [m.frozen_critic.view for m in agent.modules()
              if isinstance(getattr(m, "frozen_critic", None), FrozenView)]
    for module in (*agent.modules(), *(m for view in views for m in view.modules())):
        plain = [name for name, value in vars(module).items() if isinstance(value, torch.Tensor)]
        assert plain == [], f"{type(module).__name__} keeps {plain}"


@pytest.mark.parametrize("move", [nn.Module.double, nn.Module.half], ids=["double", "half"])
def test_a_frozen_view_follows_its_module_through_a_dtype_change(move):
    """The reported reproduction: after `.double()` the view's two-hot bins were still float32."""
    agent, _ = _agent("2023", discrete=False)
    move(agent)
    for view, live in ((agent.frozen_wm, agent.wm), (agent.behavior.frozen_critic, agent.behavior.critic)):
        refreshed = view.refresh()
        live_tensors = {n: t for n, t in (*live.named_parameters(), *live.named_buffers())}
        for name, tensor in (*refreshed.named_parameters(), *refreshed.named_buffers()):
            assert tensor.dtype == live_tensors[name].dtype, name
            assert tensor.data_ptr() == live_tensors[name].data_ptr(), name
    assert agent.frozen_wm.view.twohot.bins.dtype == agent.wm.twohot.bins.dtype


def test_a_frozen_view_holds_no_gradient_and_leaves_out_parts():
    wm = nn.ModuleDict({"kept": nn.Linear(2, 2), "left": nn.Linear(2, 2)})
    view = FrozenView(wm, leave_out=(wm["left"],)).refresh()
    assert view["left"] is None
    assert list(view.parameters()) == []  # the weights are buffers of the view: no gradient
    assert view["kept"].weight.data_ptr() == wm["kept"].weight.data_ptr()
