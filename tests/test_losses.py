"""Each loss on its own, with numbers worked out by hand."""

import math

import pytest
import torch

from dreamer.behavior import ReturnNorm, actor_loss, advantage, critic_loss, lambda_return
from dreamer.nets.dists import TwoHot, symexp
from dreamer.world_model import kl_loss

HALF_LN_4_3 = 0.5 * math.log(4 / 3)  # KL[(0.5, 0.5) || (0.25, 0.75)]


def _kl_logits(latents: int):
    post = torch.log(torch.tensor([0.5, 0.5])).repeat(latents, 1).requires_grad_(True)
    prior = torch.log(torch.tensor([0.25, 0.75])).repeat(latents, 1).requires_grad_(True)
    return post, prior


def test_free_bits_below_one_nat():
    post, prior = _kl_logits(4)  # KL summed over 4 latents = 4 * 0.1438 = 0.575 < 1
    dyn, rep, raw = kl_loss(post, prior, free_nats=1.0)
    assert raw.item() == pytest.approx(4 * HALF_LN_4_3, rel=1e-5)
    assert dyn.item() == 1.0 and rep.item() == 1.0
    dyn.backward(retain_graph=True)
    rep.backward()
    assert torch.all(post.grad == 0) and torch.all(prior.grad == 0)  # clipped: no gradient


def test_free_bits_above_one_nat_and_balancing():
    post, prior = _kl_logits(10)  # sum = 1.438 > 1: passes through
    dyn, rep, _ = kl_loss(post, prior, free_nats=1.0)
    assert dyn.item() == pytest.approx(10 * HALF_LN_4_3, rel=1e-5)
    assert rep.item() == pytest.approx(10 * HALF_LN_4_3, rel=1e-5)
    (grad_post_dyn, grad_prior_dyn) = torch.autograd.grad(dyn, (post, prior), retain_graph=True, allow_unused=True)
    (grad_post_rep, grad_prior_rep) = torch.autograd.grad(rep, (post, prior), allow_unused=True)
    # dyn trains only the prior, rep only the posterior
    assert grad_post_dyn is None and grad_prior_dyn.abs().sum() > 0
    assert grad_prior_rep is None and grad_post_rep.abs().sum() > 0


def test_free_bits_exactly_one_nat():
    # one latent with KL exactly 1 nat: q = (1, 0) against p = (1/e, 1 - 1/e) gives ln(e) = 1
    post = torch.log(torch.tensor([[1.0, 1e-30]]))
    prior = torch.log(torch.tensor([[1 / math.e, 1 - 1 / math.e]]))
    dyn, _, raw = kl_loss(post, prior, free_nats=1.0)
    assert raw.item() == pytest.approx(1.0, abs=1e-6)
    assert dyn.item() == pytest.approx(1.0, abs=1e-6)


def test_lambda_return_by_hand():
    reward = torch.tensor([[0.0, 1.0, 2.0]])  # r at s_0 is never used
    value = torch.tensor([[0.0, 10.0, 20.0]])
    cont = torch.tensor([[1.0, 0.9, 0.5]])
    # lam = 0.5: R_2 = 20; R_1 = 2 + 0.5 (0.5*20 + 0.5*20) = 12; R_0 = 1 + 0.9 (0.5*10 + 0.5*12) = 10.9
    torch.testing.assert_close(lambda_return(reward, value, cont, 0.5), torch.tensor([[10.9, 12.0]]))
    # lam = 1 (Monte Carlo with bootstrap at the end): R_1 = 12, R_0 = 1 + 0.9*12 = 11.8
    torch.testing.assert_close(lambda_return(reward, value, cont, 1.0), torch.tensor([[11.8, 12.0]]))
    # lam = 0 (one-step TD): R_0 = 1 + 0.9*10 = 10, R_1 = 2 + 0.5*20 = 12
    torch.testing.assert_close(lambda_return(reward, value, cont, 0.0), torch.tensor([[10.0, 12.0]]))


def test_lambda_return_shape_and_terminal():
    reward, value = torch.ones(4, 16), torch.full((4, 16), 100.0)
    cont = torch.ones(4, 16)
    cont[:, 1] = 0.0  # terminal at s_1: R_0 = r_1 only
    out = lambda_return(reward, value, cont, 0.95)
    assert out.shape == (4, 15)
    torch.testing.assert_close(out[:, 0], torch.ones(4))


def test_return_norm_percentile_ema_and_floor():
    norm = ReturnNorm(decay=0.99, low=0.05, high=0.95, floor=1.0)
    returns = torch.arange(101.0)  # 5th percentile 5, 95th percentile 95
    norm.update(returns)
    assert norm.low.item() == pytest.approx(0.05) and norm.high.item() == pytest.approx(0.95)
    assert norm.scale().item() == 1.0  # 0.9 < 1: floored
    norm.update(returns)
    low, high = 0.99 * 0.05 + 0.01 * 5, 0.99 * 0.95 + 0.01 * 95
    assert norm.low.item() == pytest.approx(low) and norm.high.item() == pytest.approx(high)
    assert norm.scale().item() == pytest.approx(high - low)  # 1.791 > 1


def test_return_norm_large_returns():
    norm = ReturnNorm(decay=0.0, low=0.05, high=0.95, floor=1.0)  # decay 0: the batch's own percentiles
    norm.update(torch.linspace(-1000.0, 1000.0, 2001))
    assert norm.scale().item() == pytest.approx(1800.0)


def test_actor_loss_by_hand():
    objective = torch.tensor([[2.0, -1.0]])
    entropy = torch.tensor([[1.0, 3.0]])
    weight = torch.tensor([[1.0, 0.5]])
    # -mean(w (obj + eta H)) with eta = 0.1: -((2 + 0.1) + 0.5 (-1 + 0.3)) / 2 = -(2.1 - 0.35) / 2
    assert actor_loss(objective, entropy, weight, 0.1).item() == pytest.approx(-0.875)


def test_advantage_keeps_the_baselines_gradient():
    """-mean((R_t - v(s_t)) / S) for dynamics backprop: the gradient reaches v(s_t) as 1/(S H) (P1
    reference), R_t as -1/(S H); S divides the objective's mean (`actor_loss`)."""
    returns = torch.tensor([[3.0, 5.0]], requires_grad=True)
    value = torch.tensor([[1.0, 2.0, 4.0]], requires_grad=True)
    adv = advantage(returns, value)
    torch.testing.assert_close(adv, torch.tensor([[2.0, 3.0]]), rtol=0, atol=0)
    loss = actor_loss(adv, torch.zeros(1, 2), torch.ones(1, 2), 0.0, scale=torch.tensor(2.0))
    assert loss.item() == pytest.approx(-(2.0 + 3.0) / 2 / 2)  # -mean(A / S)
    loss.backward()
    torch.testing.assert_close(value.grad, torch.tensor([[0.25, 0.25, 0.0]]))  # v(s_H) only through R
    torch.testing.assert_close(returns.grad, torch.tensor([[-0.25, -0.25]]))


def test_reinforce_gradient_is_advantage_times_score():
    logits = torch.zeros(1, 3, requires_grad=True)
    logp = torch.log_softmax(logits, -1)[:, 1]  # log pi(a = 1) = -ln 3
    adv = torch.tensor([2.0])
    loss = actor_loss((adv * logp)[:, None], torch.zeros(1, 1), torch.ones(1, 1), 0.0)
    (grad,) = torch.autograd.grad(loss, logits)
    # d/dlogits of -adv log softmax_1 = -adv (onehot_1 - p) = -2 (e_1 - 1/3)
    torch.testing.assert_close(grad, torch.tensor([[2 / 3, -4 / 3, 2 / 3]]))


def test_critic_loss_by_hand():
    twohot = TwoHot(bins=5, limit=2.0)
    logits = torch.zeros(1, 1, 5)  # uniform: every CE term is ln 5
    returns, slow = symexp(torch.tensor([[0.25]])), symexp(torch.tensor([[1.0]]))
    loss = critic_loss(twohot, logits, returns, slow, torch.tensor([[0.5]]), slow_reg=1.0)
    assert loss.item() == pytest.approx(0.5 * 2 * math.log(5))
    # with logits at the return's two-hot, the first CE is H(0.75, 0.25) and the second is
    # -log p(bin of slow) = -ln 0.25
    logits = torch.log(twohot.encode(returns).clamp(min=1e-30))
    loss = critic_loss(twohot, logits, returns, slow, torch.ones(1, 1), slow_reg=1.0)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) - math.log(0.25)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_decoder_losses_by_hand(monkeypatch):
    """Image: MSE summed over pixels in [0, 1] units; vector: MSE in symlog space summed over dims."""
    from dreamer.world_model import Decoder
    from tests.conftest import obs_space, tiny_config

    decoder = Decoder(tiny_config().decoder, 8, obs_space(image=True, vector=3))
    monkeypatch.setattr(decoder, "predict", lambda feat: {
        "image": torch.full((2, 64, 64, 3), 0.5), "vector": torch.zeros(2, 3)})
    obs = {"image": torch.full((2, 64, 64, 3), 255, dtype=torch.uint8),
           "vector": torch.full((2, 3), math.e - 1)}  # symlog(e - 1) = 1
    losses = decoder.loss(torch.zeros(2, 8), obs)
    torch.testing.assert_close(losses["image"], torch.full((2,), 0.25 * 64 * 64 * 3))
    torch.testing.assert_close(losses["vector"], torch.full((2,), 3.0))


def test_world_model_loss_weights():
    """total = 1.0 (image + reward + cont) + 0.5 dyn + 0.1 rep, each averaged over B x T."""
    from dreamer.agent import Agent
    from tests.conftest import act_space, obs_space, random_batch, tiny_config

    agent = Agent(tiny_config(), obs_space(image=True), act_space(True, 3))
    with torch.no_grad():
        total, _, metrics = agent.wm.loss(random_batch(agent.obs_space, agent.act_space))
    parts = metrics["loss/image"] + metrics["loss/reward"] + metrics["loss/cont"]
    expected = parts + 0.5 * metrics["loss/dyn"] + 0.1 * metrics["loss/rep"]
    torch.testing.assert_close(total, expected)
    assert metrics["loss/dyn"] >= 1.0 and metrics["loss/rep"] >= 1.0  # free bits floor
