"""The 2024 optimizer (`dreamer/v2024/laprop.py`) against steps worked out by hand."""

import math

import pytest
import torch

from dreamer.v2024.laprop import LaProp

B1, B2, EPS = 0.9, 0.999, 1e-20


def _optimizer(params, lr=0.1, warmup=1):
    return LaProp(params, lr=lr, beta1=B1, beta2=B2, eps=EPS, agc=0.3, pmin=1e-3, warmup=warmup)


def _step(opt, params, grads):
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    opt.step()


def test_agc_then_laprop_on_a_two_parameter_problem():
    theta = torch.tensor([3.0, 4.0], requires_grad=True)  # |theta| = 5: the gradient cap is 0.3 * 5 = 1.5
    opt = _optimizer([theta])

    # Update 1: |g| = 50 is clipped to 1.5, g' = (0.9, 1.2). v = 0.001 g'^2, v_hat = g'^2, u = (1, 1),
    # m = 0.1 u, m_hat = (1, 1); the learning rate of the first update is 0, so theta stays.
    _step(opt, [theta], [[30.0, 40.0]])
    assert theta.tolist() == [3.0, 4.0]
    state = opt.state[theta]
    torch.testing.assert_close(state["v"], torch.tensor([0.001 * 0.81, 0.001 * 1.44]))
    torch.testing.assert_close(state["m"], torch.tensor([0.1, 0.1]))

    # Update 2: |g| = 0.5 < 1.5, not clipped. Worked out component by component:
    g = [0.3, -0.4]
    v = [B2 * 0.001 * 0.81 + 0.001 * g[0] ** 2, B2 * 0.001 * 1.44 + 0.001 * g[1] ** 2]
    u = [g[i] / (math.sqrt(v[i] / (1 - B2**2)) + EPS) for i in range(2)]
    m = [B1 * 0.1 + 0.1 * u[i] for i in range(2)]
    want = [[3.0, 4.0][i] - 0.1 * m[i] / (1 - B1**2) for i in range(2)]  # lr 0.1 after 1 warm-up update
    _step(opt, [theta], [g])
    torch.testing.assert_close(theta.detach(), torch.tensor(want))
    assert want[0] == pytest.approx(3.0 - 0.1 * (0.09 + 0.1 * u[0]) / 0.19)


def test_zero_initialised_tensor_gets_the_pmin_cap():
    """A zero tensor's gradient norm is capped at 0.3 * 1e-3 = 3e-4 (design-2024.md 1.2.1)."""
    bias = torch.zeros(4, requires_grad=True)
    opt = _optimizer([bias])
    _step(opt, [bias], [[1.0, 0.0, 0.0, 0.0]])
    # clipped g = (3e-4, 0, 0, 0); v = 0.001 g^2
    torch.testing.assert_close(opt.state[bias]["v"], torch.tensor([0.001 * 9e-8, 0.0, 0.0, 0.0]))
    assert bias.tolist() == [0.0] * 4  # the first update's learning rate is 0


def test_each_tensor_is_clipped_and_normalised_on_its_own_and_warmup_is_linear():
    a = torch.tensor([1.0], requires_grad=True)
    b = torch.tensor([100.0], requires_grad=True)
    opt = _optimizer([a, b], lr=1.0, warmup=4)
    assert [opt.learning_rate(opt.param_groups[0], t) for t in (1, 2, 3, 5, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    _step(opt, [a, b], [[10.0], [10.0]])
    # a: cap 0.3, g' = 0.3; b: cap 30, g' = 10 -- each v holds its own clipped gradient
    torch.testing.assert_close(opt.state[a]["v"], torch.tensor([0.001 * 0.09]))
    torch.testing.assert_close(opt.state[b]["v"], torch.tensor([0.001 * 100.0]))
    _step(opt, [a, b], [[1.0], [1.0]])  # lr 0.25
    # a: clipped to 0.3 again, so u = 1 twice and m_hat = 1: a moves by 0.25
    assert 1.0 - a.item() == pytest.approx(0.25)
    # b: not clipped; v = 0.999 * 0.1 + 0.001 = 0.1009, u = 1 / sqrt(0.1009 / 0.001999),
    # m_hat = (0.9 * 0.1 + 0.1 u) / 0.19
    u = 1.0 / math.sqrt(0.1009 / (1 - B2**2))
    assert 100.0 - b.item() == pytest.approx(0.25 * (0.09 + 0.1 * u) / 0.19, rel=1e-4)  # b is float32 near 100


def test_zero_gradient_leaves_a_zero_step():
    theta = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = _optimizer([theta])
    _step(opt, [theta], [[0.0, 0.0]])
    _step(opt, [theta], [[0.0, 0.0]])
    assert theta.tolist() == [1.0, 2.0] and torch.isfinite(opt.state[theta]["m"]).all()


def test_a_skipped_step_leaves_parameters_and_moments_unchanged():
    theta = torch.tensor([3.0, 4.0], requires_grad=True)
    opt = _optimizer([theta], warmup=0)
    _step(opt, [theta], [[0.3, 0.4]])
    before = (theta.detach().clone(), opt.state[theta]["m"].clone(), opt.state[theta]["v"].clone())
    theta.grad = torch.tensor([float("nan"), 1.0])
    opt.step(skip=torch.tensor(1.0))
    after = (theta.detach(), opt.state[theta]["m"], opt.state[theta]["v"])
    for old, new in zip(before, after):
        assert torch.equal(old, new)


def test_skip_zero_is_the_plain_step():
    plain, flagged = (torch.tensor([3.0, 4.0], requires_grad=True) for _ in range(2))
    _step(_optimizer([plain], warmup=0), [plain], [[0.3, 0.4]])
    opt = _optimizer([flagged], warmup=0)
    flagged.grad = torch.tensor([0.3, 0.4])
    opt.step(skip=torch.tensor(0.0))
    assert torch.equal(plain, flagged) and not torch.equal(plain, torch.tensor([3.0, 4.0]))
