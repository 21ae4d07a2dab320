"""Each speed-up against the plain computation it replaces: same outputs, same gradients."""

import copy

import pytest
import torch
import torch.nn.functional as F

from dreamer.agent import Agent
from dreamer.nets.layers import Dense, FeatLayout, onehot_linear
from tests.conftest import act_space, obs_space, random_batch, tiny_config


def _features(rows: int, layout: FeatLayout) -> torch.Tensor:
    index = torch.randint(0, layout.classes, (rows, layout.groups))
    onehots = F.one_hot(index, layout.classes).float().flatten(1)
    return torch.cat([torch.randn(rows, layout.dense), onehots], -1)


def test_onehot_linear_is_the_dense_product_with_its_weight_gradient():
    layout = FeatLayout(dense=6, groups=4, classes=5)
    layer = torch.nn.Linear(layout.dim, 7, bias=False)
    x = _features(11, layout).reshape(11, 1, layout.dim)  # leading dims are kept
    upstream = torch.randn(11, 1, 7)

    dense = layer(x)
    (dense * upstream).sum().backward()
    want = layer.weight.grad.clone()
    layer.weight.grad = None
    shortcut = onehot_linear(layer, x, layout)
    (shortcut * upstream).sum().backward()

    torch.testing.assert_close(shortcut, dense)
    torch.testing.assert_close(layer.weight.grad, want)


def test_dense_block_takes_the_shortcut_only_without_a_tape():
    layout = FeatLayout(dense=3, groups=2, classes=4)
    block = Dense(layout, 5)
    plain = copy.deepcopy(block)
    plain.layout = None
    x = _features(8, layout)
    torch.testing.assert_close(block(x), plain(x))
    taped = x.clone().requires_grad_()
    block(taped).sum().backward()  # the dense path: the input gets its gradient
    assert taped.grad is not None and taped.grad.abs().sum() > 0


@pytest.mark.parametrize("image", [False, True])
def test_update_with_shortcuts_matches_the_plain_path(image):
    """One full update: the agent with the one-hot shortcut and one with every Dense block on the
    dense path, from the same weights and RNG state, give the same metrics and the same weights."""
    obs, act = obs_space(image=image, vector=0 if image else 4), act_space(size=3)
    torch.manual_seed(0)
    fast = Agent(tiny_config(), obs, act)
    plain = copy.deepcopy(fast)
    for module in plain.modules():
        if isinstance(module, Dense):
            module.layout = None
    assert any(isinstance(m, Dense) and m.layout for m in fast.modules())
    batch = random_batch(obs, act, batch=2, length=5)
    results = []
    for agent in (fast, plain):
        torch.manual_seed(1)
        results.append(agent.train(batch))
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == pytest.approx(results[1][key], rel=1e-4, abs=1e-5), key
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_one_backward_for_actor_and_critic_equals_two():
    """The behavior update backpropagates actor + critic loss once; the parts share no parameter,
    so each gets the gradient its own loss gives."""
    obs, act = obs_space(image=False, vector=4), act_space(size=3)
    agent = Agent(tiny_config(), obs, act)
    post, _ = agent.train_world_model(random_batch(obs, act, batch=2, length=5))
    start = post.detach().map(lambda x: x.flatten(0, 1))
    cont = torch.ones(start.deter.shape[0])
    norm = copy.deepcopy(agent.behavior.return_norm.state_dict())
    torch.manual_seed(2)
    actor_loss, critic_loss, _ = agent.behavior.loss(agent.wm, start, cont)
    (actor_loss + critic_loss).backward()
    together = [p.grad.clone() for p in agent.behavior.parameters() if p.grad is not None]
    agent.behavior.zero_grad(set_to_none=True)
    agent.behavior.return_norm.load_state_dict(norm)
    torch.manual_seed(2)
    actor_loss, critic_loss, _ = agent.behavior.loss(agent.wm, start, cont)
    actor_loss.backward(retain_graph=True)
    critic_loss.backward()
    apart = [p.grad.clone() for p in agent.behavior.parameters() if p.grad is not None]
    assert len(together) == len(apart) > 0
    for a, b in zip(together, apart):
        torch.testing.assert_close(a, b)
