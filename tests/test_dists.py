"""Distributions and transforms against values worked out by hand."""

import math

import pytest
import torch

from dreamer.nets.dists import (
    BoundedNormal,
    OneHotDist,
    TwoHot,
    bernoulli_nll,
    categorical_kl,
    symexp,
    symlog,
    unimix_logits,
)


def test_symlog_values():
    x = torch.tensor([0.0, math.e - 1, -(math.e**2 - 1), 1e6])
    expected = torch.tensor([0.0, 1.0, -2.0, math.log(1e6 + 1)])
    torch.testing.assert_close(symlog(x), expected)


def test_symlog_symexp_round_trip():
    x = torch.tensor([-1e6, -123.4, -1.0, -1e-4, 0.0, 1e-4, 0.5, 7.0, 1e6], dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x)
    torch.testing.assert_close(symlog(symexp(torch.tensor([-5.0, 0.0, 3.0]))), torch.tensor([-5.0, 0.0, 3.0]))


@pytest.fixture
def five_bins():
    return TwoHot(bins=5, limit=2.0)  # bins at -2, -1, 0, 1, 2 in symlog space


@pytest.mark.parametrize(
    "symlog_value, expected",
    [
        (0.25, [0, 0, 0.75, 0.25, 0]),  # between bins 0 and 1: 3/4 on 0, 1/4 on 1
        (-1.5, [0.5, 0.5, 0, 0, 0]),
        (1.0, [0, 0, 0, 1.0, 0]),  # exactly on a bin
        (2.0, [0, 0, 0, 0, 1.0]),  # the upper edge
        (5.0, [0, 0, 0, 0, 1.0]),  # beyond the range: all weight on the edge bin
        (-7.0, [1.0, 0, 0, 0, 0]),
    ],
)
def test_twohot_encode(five_bins, symlog_value, expected):
    y = symexp(torch.tensor(symlog_value))
    torch.testing.assert_close(five_bins.encode(y), torch.tensor(expected), atol=1e-6, rtol=0)


def test_twohot_decode(five_bins):
    weights = torch.tensor([0.0, 0.0, 0.75, 0.25, 0.0])
    assert five_bins.mean(torch.log(weights)).item() == pytest.approx(math.expm1(0.25), rel=1e-5)
    assert five_bins.mean(torch.zeros(5)).item() == pytest.approx(0.0, abs=1e-6)  # uniform -> centre


def test_twohot_round_trip_default_bins():
    twohot = TwoHot(bins=255, limit=20.0)
    y = torch.tensor([-3000.0, -12.5, -0.3, 0.0, 0.01, 1.0, 42.0, 1e5])
    torch.testing.assert_close(twohot.mean(torch.log(twohot.encode(y))), y, rtol=1e-4, atol=1e-5)
    # beyond symexp(20) the prediction saturates at the edge
    edge = twohot.mean(torch.log(twohot.encode(torch.tensor(1e12))))
    assert edge.item() == pytest.approx(math.expm1(20.0), rel=1e-4)


def test_twohot_loss_is_cross_entropy(five_bins):
    # uniform logits: CE = -sum(w log(1/5)) = log 5 for any target
    loss = five_bins.loss(torch.zeros(2, 5), symexp(torch.tensor([0.25, -9.0])))
    torch.testing.assert_close(loss, torch.full((2,), math.log(5)))
    # logits equal to log of the target weights: CE = entropy of the target = H(0.75, 0.25)
    target = symexp(torch.tensor(0.25))
    logits = torch.log(five_bins.encode(target).clamp(min=1e-30))
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert five_bins.loss(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_unimix_probabilities():
    logits = torch.tensor([0.0, math.log(3.0)])  # softmax = [0.25, 0.75]
    probs = unimix_logits(logits, 0.01).exp()
    torch.testing.assert_close(probs, torch.tensor([0.99 * 0.25 + 0.005, 0.99 * 0.75 + 0.005]))
    # a near-deterministic softmax keeps at least unimix / K on every class
    probs = unimix_logits(torch.tensor([100.0, -100.0, -100.0, -100.0]), 0.01).exp()
    torch.testing.assert_close(probs, torch.tensor([0.9925, 0.0025, 0.0025, 0.0025]))
    torch.testing.assert_close(unimix_logits(logits, 0.0).exp(), torch.tensor([0.25, 0.75]))


def test_straight_through_sample():
    torch.manual_seed(0)
    logits = torch.randn(64, 6, requires_grad=True)
    dist = OneHotDist(torch.log_softmax(logits, -1))
    sample = dist.sample()
    # forward: exact one-hots
    assert torch.equal(sample.detach().sum(-1), torch.ones(64))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    # backward: the gradient of the probabilities
    coeff = torch.randn(6)
    (grad_st,) = torch.autograd.grad((sample * coeff).sum(), logits)
    (grad_probs,) = torch.autograd.grad((torch.softmax(logits, -1) * coeff).sum(), logits)
    torch.testing.assert_close(grad_st, grad_probs)


def test_samples_follow_the_probabilities():
    torch.manual_seed(0)
    probs = torch.tensor([0.05, 0.6, 0.0, 0.35])
    samples = OneHotDist(torch.log(probs).expand(200_000, 4)).sample()
    freq = samples.mean(0)
    torch.testing.assert_close(freq, probs, atol=0.005, rtol=0)  # 4 sigma of a 200k-sample mean
    assert freq[2] == 0.0  # a class of probability zero is never drawn


def test_onehot_mode_log_prob_entropy():
    dist = OneHotDist(torch.log(torch.tensor([0.2, 0.5, 0.3])))
    assert torch.equal(dist.mode(), torch.tensor([0.0, 1.0, 0.0]))
    assert dist.log_prob(torch.tensor([0.0, 0.0, 1.0])).item() == pytest.approx(math.log(0.3))
    expected = -(0.2 * math.log(0.2) + 0.5 * math.log(0.5) + 0.3 * math.log(0.3))
    assert dist.entropy().item() == pytest.approx(expected)


def test_categorical_kl():
    q = torch.log(torch.tensor([0.5, 0.5]))
    p = torch.log(torch.tensor([0.25, 0.75]))
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3)
    assert categorical_kl(q, p).item() == pytest.approx(0.5 * math.log(4 / 3))
    assert categorical_kl(q, q).item() == pytest.approx(0.0)


def test_bernoulli_nll():
    nll = bernoulli_nll(torch.tensor([0.0, math.log(3.0)]), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(nll, torch.tensor([math.log(2.0), math.log(4.0)]))


def test_bounded_normal():
    dist = BoundedNormal(torch.zeros(3, 4), min_std=0.1, max_std=1.0)  # 2 action dims
    std = 0.9 / (1 + math.exp(-2.0)) + 0.1  # (max - min) sigmoid(0 + 2) + min
    torch.testing.assert_close(dist.mean, torch.zeros(3, 2))
    torch.testing.assert_close(dist.std, torch.full((3, 2), std))
    entropy = 2 * (0.5 + 0.5 * math.log(2 * math.pi) + math.log(std))
    torch.testing.assert_close(dist.entropy(), torch.full((3,), entropy))
    log_prob = 2 * (-math.log(std) - 0.5 * math.log(2 * math.pi))
    torch.testing.assert_close(dist.log_prob(torch.zeros(3, 2)), torch.full((3,), log_prob))
    raw = torch.tensor([[10.0, -10.0, 50.0, -50.0]])
    wide = BoundedNormal(raw, 0.1, 1.0)
    torch.testing.assert_close(wide.mean, torch.tensor([[math.tanh(10.0), math.tanh(-10.0)]]))
    assert 0.1 <= wide.std.min().item() and wide.std.max().item() <= 1.0
