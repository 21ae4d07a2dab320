"""The agent end to end: shapes and parameter counts per preset, full updates, gradient routing."""

import resource

import numpy as np
import pytest
import torch

from dreamer.agent import Agent
from dreamer.config import load_config, sizes
from tests.conftest import act_space, obs_space, random_batch, tiny_config

CRAFTER_TOTALS = {"xs": 8.3e6, "s": 17.9e6, "m": 36.9e6, "l": 76.8e6, "xl": 200.7e6}


def crafter_agent(size: str, device: str = "cpu") -> Agent:
    cfg = load_config([], {"env": "crafter", "size": size})
    with torch.device(device):
        return Agent(cfg, obs_space(image=True), act_space(True, 17))


@pytest.mark.parametrize("size", list(CRAFTER_TOTALS))
def test_parameter_count_within_3_percent(size):
    total = crafter_agent(size, "meta").parameter_counts()["total"]
    assert abs(total / CRAFTER_TOTALS[size] - 1) < 0.03, total


def test_medium_matches_p1_reference_exactly():
    counts = crafter_agent("m", "meta").parameter_counts()
    assert (counts["world_model"], counts["actor"], counts["critic"]) == (32_468_675, 2_144_657, 2_297_215)


@pytest.mark.parametrize("size", list(sizes()))
def test_preset_shapes(size):
    """Every preset builds for real and runs the world model and actor on a tiny batch."""
    agent = crafter_agent(size)
    dims = sizes()[size]
    batch = random_batch(agent.obs_space, agent.act_space, batch=2, length=3)
    with torch.no_grad():
        loss, post, metrics = agent.wm.loss(batch)
        assert post.deter.shape == (2, 3, dims["deter"])
        assert post.stoch.shape == (2, 3, 32, 32)
        assert torch.equal(post.stoch.sum(-1), torch.ones(2, 3, 32))
        feat = post.feat()
        assert feat.shape == (2, 3, dims["deter"] + 1024)
        assert agent.wm.decoder.predict(feat.flatten(0, 1))["image"].shape == (6, 64, 64, 3)
        assert agent.behavior.critic(feat).shape == (2, 3, 255)
        assert agent.behavior.actor(feat).logits.shape == (2, 3, 17)
        assert agent.wm.encoder.out_dim == 16 * 8 * sizes()[size]["cnn_depth"]
    assert torch.isfinite(loss)
    if size == "xl":  # building and running the largest preset stays within a few GiB
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 6 * 2**20  # KiB


CASES = {
    "image-discrete": (dict(image=True), True),
    "vector-discrete": (dict(image=False, vector=7), True),
    "vector-continuous": (dict(image=False, vector=7), False),
    "image+vector-continuous": (dict(image=True, vector=3), False),
}


def _agent(case: str, *overrides: str) -> Agent:
    obs_kw, discrete = CASES[case]
    return Agent(tiny_config(*overrides), obs_space(**obs_kw), act_space(discrete, 3))


@pytest.mark.parametrize("case", list(CASES))
def test_full_train_step(case):
    agent = _agent(case)
    batch = random_batch(agent.obs_space, agent.act_space)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics = agent.train(batch)
    assert metrics and all(np.isfinite(v) for v in metrics.values()), metrics
    for key in ("loss/world_model", "loss/actor", "loss/critic", "loss/dyn", "loss/rep", "loss/reward", "loss/cont"):
        assert key in metrics
    after = agent.state_dict()
    for part in ("wm.", "behavior.actor.", "behavior.critic.", "behavior.slow_critic."):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(part)), part
    metrics = agent.train(batch)  # a second step (zero-initialised heads have moved)
    assert all(np.isfinite(v) for v in metrics.values())


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: p.grad for name, p in module.named_parameters()}


@pytest.mark.parametrize("case", list(CASES))
def test_gradient_routing(case):
    """Each loss reaches every parameter it trains and none that it must not move.
    Free bits are off here: a KL below them blocks the prior's gradient by design."""
    agent = _agent(case, "world_model.free_nats=0")
    batch = agent.to_tensors(random_batch(agent.obs_space, agent.act_space))
    agent.train(batch)  # after one update the zero-initialised output layers pass gradients on
    agent.zero_grad(set_to_none=True)

    wm_loss, post, _ = agent.wm.loss(batch)
    wm_loss.backward()
    missing = [n for n, g in _grads(agent.wm).items() if g is None or not torch.any(g != 0)]
    assert not missing, f"world-model parameters without gradient: {missing}"
    assert all(g is None for g in _grads(agent.behavior).values())

    agent.zero_grad(set_to_none=True)
    start = post.detach().map(lambda x: x.flatten(0, 1))
    cont = 1.0 - batch["is_terminal"].flatten().float()
    actor_loss, critic_loss, _ = agent.behavior.loss(agent.frozen_world_model(), start, cont)
    actor_loss.backward(retain_graph=True)
    missing = [n for n, g in _grads(agent.behavior.actor).items() if g is None or not torch.any(g != 0)]
    assert not missing, f"actor parameters without gradient: {missing}"
    assert all(g is None for g in _grads(agent.wm).values()), "the actor loss must not move the world model"
    assert all(g is None for g in _grads(agent.behavior.critic).values())

    agent.behavior.actor.zero_grad(set_to_none=True)
    critic_loss.backward()
    missing = [n for n, g in _grads(agent.behavior.critic).items() if g is None or not torch.any(g != 0)]
    assert not missing, f"critic parameters without gradient: {missing}"
    assert all(g is None for g in _grads(agent.wm).values())
    assert all(g is None for g in _grads(agent.behavior.actor).values())
    assert all(g is None for g in _grads(agent.behavior.slow_critic).values())


def test_slow_critic_ema():
    agent = _agent("vector-discrete")
    behavior = agent.behavior
    with torch.no_grad():
        for p in behavior.critic.parameters():
            p.fill_(1.0)
        for p in behavior.slow_critic.parameters():
            p.fill_(0.0)
    behavior.update_slow_critic()
    for p in behavior.slow_critic.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.02))
    behavior.update_slow_critic()  # 0.02 + 0.02 (1 - 0.02)
    for p in behavior.slow_critic.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.0396))


@pytest.mark.parametrize("discrete", [True, False])
def test_policy_acts_for_a_batch_of_envs(discrete):
    agent = Agent(tiny_config(), obs_space(image=True), act_space(discrete, 4))
    obs = {"image": np.zeros((5, 64, 64, 3), np.uint8), "is_first": np.ones(5, bool)}
    action, state = agent.policy(obs)
    assert action.shape == (5, 4)
    if discrete:
        assert torch.equal(action.sum(-1), torch.ones(5))
        assert agent.env_action(action.numpy()).shape == (5,)
    else:
        assert action.abs().max() <= 1.0
    obs["is_first"][:] = False
    action, state = agent.policy(obs, state, mode="eval")
    greedy, (latent, _) = agent.policy(obs, state, mode="greedy")
    with torch.no_grad():
        mode = agent.behavior.actor(latent.feat()).mode()
    torch.testing.assert_close(greedy, mode.clamp(-1, 1))
    with pytest.raises(ValueError, match="unknown policy mode 'best'"):
        agent.policy(obs, state, mode="best")


def test_policy_reset_on_is_first():
    """An env flagged is_first starts from the initial state, whatever state it carried."""
    agent = Agent(tiny_config(), obs_space(image=False, vector=4), act_space(True, 3))
    obs = {"vector": np.random.randn(2, 4).astype(np.float32), "is_first": np.ones(2, bool)}
    torch.manual_seed(1)
    fresh_action, (fresh, _) = agent.policy(obs)
    _, (walked, prev) = agent.policy({**obs, "is_first": np.zeros(2, bool)}, (fresh, fresh_action))
    _, (walked, prev) = agent.policy({**obs, "is_first": np.zeros(2, bool)}, (walked, prev))
    torch.manual_seed(1)
    _, (reset, _) = agent.policy(obs, (walked, prev))
    torch.testing.assert_close(reset.deter, fresh.deter)


def test_module_train_eval_modes_still_work():
    agent = _agent("vector-discrete")
    agent.eval()
    assert not agent.training and not agent.wm.training
    agent.train()
    assert agent.training


def test_continuous_actor_as_the_reference_trains_it(monkeypatch):
    """Dynamics backprop (P1 reference code): the actor reads sg(s_t), so returns reach it only
    through its actions; the baseline v(s_t) keeps its gradient, which changes the actor's."""
    from dreamer import behavior as behavior_module

    agent = _agent("vector-continuous")
    batch = agent.to_tensors(random_batch(agent.obs_space, agent.act_space))
    agent.train(batch)  # zero-initialised heads move, so values and rewards carry gradients
    with torch.no_grad():  # a critic whose values depend on the state clearly (its grown weights)
        torch.nn.init.normal_(agent.behavior.critic.out.weight, std=1.0)
    post = agent.wm.loss(batch)[1]
    start = post.detach().map(lambda x: x.flatten(0, 1))
    cont = 1.0 - batch["is_terminal"].flatten().float()
    inputs = []
    hook = agent.behavior.actor.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))

    def actor_grads() -> dict[str, torch.Tensor]:
        agent.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        agent.behavior.loss(agent.frozen_world_model(), start, cont)[0].backward()
        return {n: p.grad.clone() for n, p in agent.behavior.actor.named_parameters()}

    kept = actor_grads()
    hook.remove()
    assert len(inputs) == agent.behavior.cfg.horizon and not any(x.requires_grad for x in inputs)
    plain = behavior_module.advantage
    monkeypatch.setattr(behavior_module, "advantage", lambda returns, value: plain(returns, value.detach()))
    stopped = actor_grads()
    assert any(not torch.allclose(kept[n], stopped[n]) for n in kept)
