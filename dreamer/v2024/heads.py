"""The 2024 recipe's heads (design-2024.md 5): `layers` x [Linear -> RMSNorm -> SiLU] on the
features, then an output Linear whose init is scaled by `outscale` (0 for reward and value: zero
weights and bias, so uniform bins and an expected value of exactly 0; 1 for continue; 0.01 for
the policy)."""

from __future__ import annotations

import gymnasium as gym
from torch import Tensor, nn

from dreamer.nets.dists import BoundedNormal, OneHotDist, unimix_logits
from dreamer.v2024.layers import Linear, mlp


class MLPHead(nn.Module):
    def __init__(self, fan_in: int, units: int, layers: int, out: int, outscale: float, eps: float):
        super().__init__()
        self.mlp = mlp(fan_in, units, layers, eps)
        self.out = Linear(units if layers else fan_in, out, outscale)

    def forward(self, feat: Tensor) -> Tensor:
        return self.out(self.mlp(feat))


class Actor(nn.Module):
    """Discrete: a categorical on the logits, without unimix (the reference code at H). Continuous:
    Normal(tanh(mu), 0.9 sigmoid(x + 2) + 0.1), log-prob and entropy summed over dimensions."""

    def __init__(self, fan_in: int, units: int, layers: int, act_space: gym.spaces.Space, min_std: float,
                 max_std: float, outscale: float, eps: float):
        super().__init__()
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        size = int(act_space.n) if self.discrete else int(act_space.shape[0])
        self.min_std, self.max_std = min_std, max_std
        self.head = MLPHead(fan_in, units, layers, size if self.discrete else 2 * size, outscale, eps)

    def forward(self, feat: Tensor) -> OneHotDist | BoundedNormal:
        raw = self.head(feat)
        if self.discrete:
            return OneHotDist(unimix_logits(raw, 0.0))
        return BoundedNormal(raw, self.min_std, self.max_std)
