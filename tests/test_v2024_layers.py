"""Layers of the 2024 recipe against numbers worked out by hand and dense equivalents."""

import math

import pytest
import torch

from dreamer.v2024.layers import BlockLinear, Linear, RMSNorm, init_fan_in_


def test_rms_norm_by_hand():
    norm = RMSNorm(2, eps=1e-4)
    with torch.no_grad():
        norm.scale.copy_(torch.tensor([1.0, 2.0]))
    x = torch.tensor([[3.0, 4.0]])  # mean(x^2) = 12.5
    want = torch.tensor([[3.0, 8.0]]) / math.sqrt(12.5 + 1e-4)
    torch.testing.assert_close(norm(x), want)


def test_rms_norm_runs_in_fp32_and_returns_the_input_dtype():
    norm = RMSNorm(8, eps=1e-4)
    x = torch.randn(4, 8) * 100
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), norm(x.bfloat16().float()).bfloat16().float(), rtol=0, atol=0)


def test_fan_in_init_std_and_outscale():
    torch.manual_seed(0)
    w = init_fan_in_(torch.empty(1000, 400), fan_in=400)
    assert w.std().item() == pytest.approx(1 / math.sqrt(400), rel=0.02)
    assert w.abs().max().item() <= 2 * 1.1368 / math.sqrt(400)
    layer = Linear(400, 10, outscale=0.0)
    assert not layer.weight.any() and not layer.bias.any()
    small = init_fan_in_(torch.empty(1000, 400), fan_in=400, outscale=0.01)
    assert small.std().item() == pytest.approx(0.01 / math.sqrt(400), rel=0.02)


def test_block_linear_equals_a_dense_linear_with_block_diagonal_weights():
    torch.manual_seed(0)
    blocks, fan_in, fan_out = 4, 12, 8
    layer = BlockLinear(fan_in, fan_out, blocks)
    with torch.no_grad():
        layer.bias.normal_()
    dense = torch.zeros(fan_out, fan_in)  # (out, in), zero outside the diagonal blocks
    i, o = fan_in // blocks, fan_out // blocks
    for g in range(blocks):
        dense[g * o:(g + 1) * o, g * i:(g + 1) * i] = layer.weight[g].T
    x = torch.randn(5, 3, fan_in)
    got = layer(x.unflatten(-1, (blocks, i))).flatten(-2)
    torch.testing.assert_close(got, x @ dense.T + layer.bias)


def test_block_linear_init_uses_the_total_fan_in():
    torch.manual_seed(0)
    layer = BlockLinear(4096, 4096, blocks=8)
    assert layer.weight.shape == (8, 512, 512)
    assert layer.weight.std().item() == pytest.approx(1 / math.sqrt(4096), rel=0.02)
    with pytest.raises(ValueError, match="must divide into 8 blocks"):
        BlockLinear(100, 64, blocks=8)
