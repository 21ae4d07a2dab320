"""The 2024 two-hot head output (design-2024.md 5.1): 255 bins in raw space, symexp-spaced and
exactly symmetric, weights linear in raw space, the mean summed centre-out."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dreamer.nets.dists import one_hot, symexp


class RawTwoHot(nn.Module):
    def __init__(self, bins: int, limit: float):
        super().__init__()
        if bins % 2 == 0:
            raise ValueError(f"twohot bins must be odd (a bin exactly at 0), got {bins}")
        half = symexp(torch.linspace(-limit, 0.0, bins // 2 + 1, dtype=torch.float64))  # b_0 .. b_mid = 0
        self.register_buffer("bins", torch.cat([half, -half[:-1].flip(0)]).float(), persistent=False)
        self.mid = bins // 2

    def encode(self, y: Tensor) -> Tensor:
        """(...,) raw targets -> (..., K) weights on the two bins around y, linear in raw space;
        all weight on the edge bin beyond the range."""
        k = self.bins.numel()
        below = ((self.bins <= y[..., None]).sum(-1) - 1).clamp(0, k - 1)
        above = (k - (self.bins > y[..., None]).sum(-1)).clamp(0, k - 1)
        dist_below = (self.bins[below] - y).abs()
        dist_above = (self.bins[above] - y).abs()
        total = dist_below + dist_above
        same = below == above
        w_below = torch.where(same, torch.ones_like(y), dist_above / torch.where(same, torch.ones_like(y), total))
        w_above = torch.where(same, torch.zeros_like(y), 1 - w_below)
        return one_hot(below, k) * w_below[..., None] + one_hot(above, k) * w_above[..., None]

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of (..., K) logits against the two-hot of sg(y), in fp32."""
        return -(self.encode(y.detach().float()) * torch.log_softmax(logits.float(), -1)).sum(-1)

    def mean(self, logits: Tensor) -> Tensor:
        """sum_i p_i b_i, centre-out: p_mid b_mid plus the pairs (p_{mid-j} b_{mid-j} + p_{mid+j} b_{mid+j}),
        each pair added first, so equal probabilities give exactly 0. (..., K) -> (...,)"""
        weighted = torch.softmax(logits.float(), -1) * self.bins
        pairs = weighted[..., : self.mid].flip(-1) + weighted[..., self.mid + 1 :]  # (..., K//2), j = 1..mid
        return weighted[..., self.mid] + pairs.sum(-1)
