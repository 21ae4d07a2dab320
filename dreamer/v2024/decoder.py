"""The 2024 recipe's decoder (design-2024.md 4.2).

Image: a 4 x 4 x 4k bottleneck (for 64 x 64 frames: H/16) as the sum of a block-linear map of h
(block g writes its 4k/8 channels of every pixel) and a dense branch from flat(z), then
SiLU(RMSNorm(.)); three stages of nearest 2x upsampling -> Conv 5x5 -> RMSNorm -> SiLU with
channels 4k, 3k, 2k; a last 2x upsampling -> Conv 5x5 to the image channels -> sigmoid.
Loss: sum over pixels and channels of (prediction - x / 255)^2.
Vectors: [flat(z), h] -> `layers` x [Linear -> RMSNorm -> SiLU] -> one Linear; loss: sum of
squared errors in symlog space.
"""

from __future__ import annotations

import gymnasium as gym
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dreamer.nets.dists import symlog
from dreamer.v2024.encoder import KERNEL
from dreamer.v2024.layers import BlockLinear, Linear, NormedLinear, RMSNorm, conv, mlp, norm_silu_channels
from dreamer.world_model import split_keys

UP_MULTS = (4, 3, 2)  # channels of the upsampling stages, times depth
BOTTLENECK = 4  # times depth: the bottleneck's channels
STRIDE = 16  # image side / bottleneck side


class UpStage(nn.Module):
    """Nearest 2x upsampling -> Conv 5x5 -> RMSNorm(channels) -> SiLU."""

    def __init__(self, cin: int, cout: int, eps: float):
        super().__init__()
        self.conv = conv(cin, cout, KERNEL)
        self.norm = RMSNorm(cout, eps)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C', 2H, 2W)
        return norm_silu_channels(self.norm, self.conv(F.interpolate(x, scale_factor=2, mode="nearest")))


class Decoder(nn.Module):
    def __init__(self, obs_space: gym.spaces.Dict, deter: int, stoch_flat: int, depth: int, units: int,
                 layers: int, blocks: int, eps: float):
        super().__init__()
        images, vectors = split_keys(obs_space)
        self.image_keys, self.vector_keys = sorted(images), sorted(vectors)
        self.blocks = blocks
        if self.image_keys:
            side = obs_space[self.image_keys[0]].shape[0]
            self.side, self.channels = side // STRIDE, [obs_space[k].shape[2] for k in self.image_keys]
            top = BOTTLENECK * depth
            cells = self.side**2 * top
            self.from_deter = BlockLinear(deter, cells, blocks)  # block g: h_g -> (side, side, top / G)
            self.from_stoch = nn.Sequential(NormedLinear(stoch_flat, 2 * units, eps), Linear(2 * units, cells))
            self.bottleneck_norm = RMSNorm(top, eps)
            widths = [top] + [m * depth for m in UP_MULTS]
            self.up = nn.Sequential(*[UpStage(cin, cout, eps) for cin, cout in zip(widths, widths[1:])])
            self.out = conv(widths[-1], sum(self.channels), KERNEL)
        if self.vector_keys:
            self.sizes = [obs_space[k].shape[0] for k in self.vector_keys]
            fan_in = stoch_flat + deter
            self.mlp = mlp(fan_in, units, layers, eps)
            self.vector_out = Linear(units if layers else fan_in, sum(self.sizes))

    def images(self, deter: Tensor, stoch_flat: Tensor) -> Tensor:
        """(N, D), (N, S*C) -> (N, H, W, C) predictions in [0, 1]."""
        a = self.from_deter(rearrange(deter, "n (g k) -> n g k", g=self.blocks))  # (N, G, side*side*top/G)
        a = rearrange(a, "n g (h w c) -> n h w (g c)", h=self.side, w=self.side)
        b = rearrange(self.from_stoch(stoch_flat), "n (h w c) -> n h w c", h=self.side, w=self.side)
        x = F.silu(self.bottleneck_norm(a + b))
        x = rearrange(x, "n h w c -> n c h w").contiguous(memory_format=torch.channels_last)
        x = F.interpolate(self.up(x), scale_factor=2, mode="nearest")
        return rearrange(torch.sigmoid(self.out(x)), "n c h w -> n h w c")

    def predict(self, deter: Tensor, stoch_flat: Tensor) -> dict[str, Tensor]:
        """Predicted observations: images in [0, 1] (N, H, W, C), vectors in symlog space (N, D)."""
        out: dict[str, Tensor] = {}
        if self.image_keys:
            pred = self.images(deter, stoch_flat).float()
            out.update(zip(self.image_keys, pred.split(self.channels, -1)))
        if self.vector_keys:
            pred = self.vector_out(self.mlp(torch.cat([stoch_flat, deter], -1))).float()
            out.update(zip(self.vector_keys, pred.split(self.sizes, -1)))
        return out

    def loss(self, deter: Tensor, stoch_flat: Tensor, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per observation key, the reconstruction loss (N,) of design-2024.md 4.2."""
        losses = {}
        for key, pred in self.predict(deter, stoch_flat).items():
            if key in self.image_keys:
                losses[key] = (pred - obs[key].float() / 255.0).square().sum((-3, -2, -1))
            else:
                losses[key] = (pred - symlog(obs[key].float())).square().sum(-1)
        return losses
