"""The 2024 imagination and replay-value losses on a hand-made rollout (H = 2)."""

import math

import pytest
import torch

from dreamer.behavior import ReturnNorm
from dreamer.v2024.behavior import imagination_losses, policy_loss, replay_value_loss
from dreamer.v2024.twohot import RawTwoHot

TWOHOT = RawTwoHot(255, 20.0)


def test_imagination_losses_by_hand():
    reward = torch.tensor([[0.0, 1.0, 2.0]])
    cont = torch.tensor([[0.5, 0.8, 0.5]])  # c_0 is the start state's predicted continue probability
    value = torch.tensor([[0.0, 2.0, 4.0]], requires_grad=True)
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    entropy = torch.tensor([[0.5, 1.0]])
    critic_logits = torch.zeros(1, 3, 255, requires_grad=True)
    norm = ReturnNorm(0.99, 0.05, 0.95, 1.0)  # starts at 0: S = max(1, ~0) = 1
    terms, value_loss, returns = imagination_losses(
        reward, cont, value, torch.zeros(1, 2), critic_logits, logp, entropy, TWOHOT, lam=0.5, eta=0.1, slow_reg=1.0)
    # the terms before scaling: -mean(w A logp) and -mean(w 0.1 H)
    assert terms[0].item() == pytest.approx(-(0.5 * -3.4 + 0.4 * -4.0) / 2)
    assert terms[1].item() == pytest.approx(-(0.5 * 0.05 + 0.4 * 0.1) / 2)
    policy, _ = policy_loss(terms, returns, norm)
    # R_1 = 2 + 0.5 (0.5 * 4 + 0.5 * 4) = 4; R_0 = 1 + 0.8 (0.5 * 2 + 0.5 * 4) = 3.4
    torch.testing.assert_close(returns, torch.tensor([[3.4, 4.0]]))
    # w = (0.5, 0.5 * 0.8); A = (3.4 - 0, 4 - 2); -mean(w (A logp + 0.1 H))
    assert policy.item() == pytest.approx(-(0.5 * (-3.4 + 0.05) + 0.4 * (-4.0 + 0.1)) / 2)
    # uniform critic: each cross-entropy is log 255, for the return and the slow target alike
    assert value_loss.item() == pytest.approx((0.5 + 0.4) / 2 * 2 * math.log(255), rel=1e-6)

    policy.backward(retain_graph=True)  # REINFORCE: the gradient reaches log pi only
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.5 * 3.4 / 2, -0.4 * 2.0 / 2]]))
    assert value.grad is None and critic_logits.grad is None
    value_loss.backward()
    assert value.grad is None and critic_logits.grad[0, :2].abs().sum() > 0 and not critic_logits.grad[0, 2].any()


def test_replay_value_loss_keeps_masked_steps_in_the_denominator():
    logits = torch.zeros(1, 4, 255)
    weight = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    loss = replay_value_loss(logits, torch.zeros(1, 4), torch.zeros(1, 4), weight, TWOHOT, slow_reg=1.0)
    assert loss.item() == pytest.approx(3 / 4 * 2 * math.log(255), rel=1e-6)


def test_the_policy_loss_divides_by_the_scale_of_the_returns_percentiles():
    """S = max(1, EMA of the 95th - 5th percentile): with decay 0 the EMA is this batch's range."""
    returns = torch.linspace(0.0, 100.0, 101)[None]  # percentiles 5 and 95: 5 and 95, S = 90
    objective_term = torch.tensor(9.0, requires_grad=True)
    policy, scale = policy_loss((objective_term, torch.tensor(0.5)), returns, ReturnNorm(0.0, 0.05, 0.95, 1.0))
    assert scale.item() == pytest.approx(90.0)
    assert policy.item() == pytest.approx(9.0 / 90 + 0.5)
    policy.backward()
    assert objective_term.grad.item() == pytest.approx(1 / 90)  # S is a constant: no gradient through it
