"""Layers of the 2024 recipe (design-2024.md section 2): RMSNorm in fp32, biases everywhere,
fan-in truncated-normal init with output scales, and the block-diagonal linear of the block GRU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import Tensor, nn

TRUNC_NORMAL_GAIN = 1.1368  # 1 / std of a unit normal truncated to [-2, 2]: std(w) = outscale / sqrt(fan_in)


def init_fan_in_(weight: Tensor, fan_in: int, outscale: float = 1.0) -> Tensor:
    """w = outscale * 1.1368 / sqrt(fan_in) * zeta, zeta ~ N(0, 1) truncated to [-2, 2]
    (design-2024.md 2.4; `trunc_normal_in`)."""
    std = TRUNC_NORMAL_GAIN / math.sqrt(fan_in)
    with torch.no_grad():
        nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)
        return weight.mul_(outscale)


class RMSNorm(nn.Module):
    """y = x * rsqrt(mean(x^2) + eps) * scale over the last axis, computed in fp32 and returned in
    the input's dtype; no shift (design-2024.md 2.2)."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(size))

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x32 = x.float()
            y = x32 * torch.rsqrt(x32.square().mean(-1, keepdim=True) + self.eps) * self.scale
        return y.to(x.dtype)


class Linear(nn.Linear):
    """A Linear with a zero bias and the fan-in init scaled by `outscale` (0 gives zero weights)."""

    def __init__(self, fan_in: int, fan_out: int, outscale: float = 1.0):
        super().__init__(fan_in, fan_out)
        init_fan_in_(self.weight, fan_in, outscale)
        nn.init.zeros_(self.bias)


class BlockLinear(nn.Module):
    """G independent Linears, block g mapping its inputs (..., g, :) to its outputs (..., g, :):
    (..., G, in/G) -> (..., G, out/G), plus a bias of size `out` in block-major order. The init's
    fan-in is the total input width `in`, not the per-block one (design-2024.md 2.4)."""

    def __init__(self, fan_in: int, fan_out: int, blocks: int, outscale: float = 1.0):
        super().__init__()
        if fan_in % blocks or fan_out % blocks:
            raise ValueError(f"widths {fan_in} -> {fan_out} must divide into {blocks} blocks")
        self.blocks = blocks
        weight = torch.empty(blocks, fan_in // blocks, fan_out // blocks)  # (G, in/G, out/G)
        self.weight = nn.Parameter(init_fan_in_(weight, fan_in, outscale))
        self.bias = nn.Parameter(torch.zeros(fan_out))

    def forward(self, x: Tensor) -> Tensor:
        out = einsum(x, self.weight, "... g i, g i o -> ... g o")
        return out + self.bias.view(self.blocks, -1)  # (..., G, out/G)


class NormedLinear(nn.Sequential):
    """Linear (with bias) -> RMSNorm -> SiLU: the 2024 hidden layer (design-2024.md 2.1)."""

    def __init__(self, fan_in: int, units: int, eps: float):
        super().__init__(Linear(fan_in, units), RMSNorm(units, eps), nn.SiLU())


def mlp(fan_in: int, units: int, layers: int, eps: float) -> nn.Sequential:
    """`layers` NormedLinear of `units` (the identity when layers == 0)."""
    return nn.Sequential(*[NormedLinear(fan_in if i == 0 else units, units, eps) for i in range(layers)])


def conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    """Conv `kernel` x `kernel`, stride 1, `same` padding, zero bias, fan-in init over kernel^2 cin."""
    layer = nn.Conv2d(cin, cout, kernel, padding="same")
    init_fan_in_(layer.weight, kernel * kernel * cin)
    nn.init.zeros_(layer.bias)
    return layer


def norm_silu_channels(norm: RMSNorm, x: Tensor) -> Tensor:
    """SiLU(RMSNorm over the channels) of an (N, C, H, W) map."""
    return rearrange(F.silu(norm(rearrange(x, "n c h w -> n h w c"))), "n h w c -> n c h w")
