"""The 2024 recipe's encoder (design-2024.md 4.1).

Vectors (keys sorted): symlog, concatenated, then `layers` x [Linear(units) -> RMSNorm -> SiLU].
Images (keys sorted, stacked on channels): x / 255 - 0.5, then per stage Conv 5x5 stride 1 `same`
(with bias) -> 2x2 max-pool -> RMSNorm over channels -> SiLU, channels depth * mults; the last map
is flattened in (H, W, C) order. tokens = [vector features, image features].
"""

from __future__ import annotations

import gymnasium as gym
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dreamer.nets.dists import symlog
from dreamer.v2024.layers import RMSNorm, conv, mlp, norm_silu_channels
from dreamer.world_model import split_keys

KERNEL = 5


class ConvStage(nn.Module):
    """Conv 5x5 `same` -> 2x2 max-pool -> RMSNorm(channels) -> SiLU on channels-last maps."""

    def __init__(self, cin: int, cout: int, eps: float):
        super().__init__()
        self.conv = conv(cin, cout, KERNEL)
        self.norm = RMSNorm(cout, eps)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) channels-last -> (N, C', H/2, W/2)
        return norm_silu_channels(self.norm, F.max_pool2d(self.conv(x), 2))


class Encoder(nn.Module):
    def __init__(self, obs_space: gym.spaces.Dict, depth: int, mults: tuple[int, ...], units: int, layers: int,
                 eps: float):
        super().__init__()
        images, vectors = split_keys(obs_space)
        self.image_keys, self.vector_keys = sorted(images), sorted(vectors)
        self.out_dim = 0
        if self.vector_keys:
            size = sum(obs_space[k].shape[0] for k in self.vector_keys)
            self.mlp = mlp(size, units, layers, eps)
            self.out_dim += units if layers else size
        if self.image_keys:
            height = obs_space[self.image_keys[0]].shape[0]
            channels = [sum(obs_space[k].shape[2] for k in self.image_keys)] + [depth * m for m in mults]
            self.cnn = nn.Sequential(*[ConvStage(cin, cout, eps) for cin, cout in zip(channels, channels[1:])])
            self.out_dim += (height // 2 ** len(mults)) ** 2 * channels[-1]

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        """obs (N, ...) -> tokens (N, out_dim)."""
        parts = []
        if self.vector_keys:
            parts.append(self.mlp(symlog(torch.cat([obs[k].float() for k in self.vector_keys], -1))))
        if self.image_keys:
            x = torch.cat([obs[k] for k in self.image_keys], -1).float() / 255.0 - 0.5  # (N, H, W, C)
            x = rearrange(x, "n h w c -> n c h w").contiguous(memory_format=torch.channels_last)
            parts.append(rearrange(self.cnn(x), "n c h w -> n (h w c)"))
        return torch.cat(parts, -1)
