"""The 2024 two-hot, soft continue target and replay value returns, worked out by hand."""

import math

import pytest
import torch

from dreamer.v2024.returns import replay_value_returns, replay_value_weight, soft_continue_target
from dreamer.v2024.twohot import RawTwoHot

TWOHOT = RawTwoHot(255, 20.0)


def test_bins_are_symexp_spaced_symmetric_with_an_exact_zero():
    bins = TWOHOT.bins
    assert bins.shape == (255,) and bins[127].item() == 0.0
    assert torch.equal(bins, -bins.flip(0))
    assert bins[-1].item() == pytest.approx(math.exp(20) - 1, rel=1e-6)
    assert bins[128].item() == pytest.approx(math.exp(20 / 127) - 1, rel=1e-5)  # 0.1706
    assert bins[128].item() == pytest.approx(0.1706, abs=1e-4)


def test_encode_is_linear_in_raw_space():
    b1, b2 = TWOHOT.bins[128].item(), TWOHOT.bins[129].item()
    y = b1 + 0.25 * (b2 - b1)
    weights = TWOHOT.encode(torch.tensor([y]))[0]
    assert weights[128].item() == pytest.approx(0.75, abs=1e-5) and weights[129].item() == pytest.approx(0.25, abs=1e-5)
    assert weights.sum().item() == pytest.approx(1.0)
    on_bin = TWOHOT.encode(torch.tensor([0.0]))[0]  # exactly on the centre bin
    assert on_bin[127].item() == 1.0 and on_bin.sum().item() == 1.0
    beyond = TWOHOT.encode(torch.tensor([1e10, -1e10]))
    assert beyond[0, 254].item() == 1.0 and beyond[1, 0].item() == 1.0


def test_mean_is_exactly_zero_for_equal_logits_and_decodes_a_two_hot():
    assert TWOHOT.mean(torch.zeros(3, 255)).tolist() == [0.0, 0.0, 0.0]
    target = torch.tensor([2.5, -7.0])
    logits = torch.log(TWOHOT.encode(target).clamp(min=1e-30))
    torch.testing.assert_close(TWOHOT.mean(logits), target, rtol=1e-5, atol=1e-5)


def test_loss_is_the_cross_entropy_of_the_two_hot():
    logits = torch.zeros(1, 255)  # uniform: CE = log 255 for any target
    assert TWOHOT.loss(logits, torch.tensor([3.0])).item() == pytest.approx(math.log(255), rel=1e-6)


def test_soft_continue_target():
    gamma = 1 - 1 / 333
    torch.testing.assert_close(soft_continue_target(torch.tensor([False, True]), gamma), torch.tensor([gamma, 0.0]))


def test_replay_value_returns_on_a_hand_made_window():
    """Steps 0..4: step 2 is terminal (its episode ends there, is_last too), step 3 starts a new
    episode, step 4 is the window's end. gamma 0.5, lambda 0.5."""
    reward = torch.tensor([[0.0, 1.0, 2.0, 0.0, 4.0]])
    boot = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0]])
    term = torch.tensor([[0, 0, 1, 0, 0]])
    last = torch.tensor([[0, 0, 1, 0, 0]])
    got = replay_value_returns(reward, boot, term, last, gamma=0.5, lam=0.5)
    g3 = 4.0 + 0.5 * (0.5 * 50.0 + 0.5 * 50.0)  # G_4 = boot_4 = 50
    g2 = 0.0 + 0.5 * (0.5 * 40.0 + 0.5 * g3)  # from the terminal step 2 the next episode's step 3 (masked below)
    g1 = 2.0 + 0.0  # step 2 is terminal: no future after r_2
    g0 = 1.0 + 0.5 * (0.5 * 20.0 + 0.5 * g1)
    torch.testing.assert_close(got, torch.tensor([[g0, g1, g2, g3]]))
    torch.testing.assert_close(replay_value_weight(last), torch.tensor([[1.0, 1.0, 0.0, 1.0]]))


def test_time_limit_cuts_lambda_but_keeps_the_bootstrap():
    """An episode cut by a time limit at step 1 (is_last without is_terminal): G_0 bootstraps fully
    on boot_1, with the discount."""
    reward = torch.tensor([[0.0, 1.0, 5.0]])
    boot = torch.tensor([[0.0, 8.0, 100.0]])
    got = replay_value_returns(reward, boot, torch.tensor([[0, 0, 0]]), torch.tensor([[0, 1, 0]]), gamma=0.5, lam=0.9)
    assert got[0, 0].item() == pytest.approx(1.0 + 0.5 * 8.0)
