"""Building blocks: normed dense layers, MLPs, the image encoder and decoder, initialisation.

Every hidden Linear or convolution has no bias and is followed by LayerNorm (eps 1e-3) and SiLU
(design section 4). Weights start from a truncated normal scaled to fan_avg.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

NORM_EPS = 1e-3
TRUNC = 2.0  # truncation of the normal initialiser, in standard deviations


def _truncated_std(bound: float) -> float:
    """Standard deviation of a unit normal truncated to [-bound, bound]."""
    mass = math.erf(bound / math.sqrt(2))
    density = math.exp(-(bound**2) / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(1 - 2 * bound * density / mass)


def init_fan_avg_(weight: Tensor, fan_in: int, fan_out: int, scale: float = 1.0) -> Tensor:
    """Truncated normal with variance scale / mean(fan_in, fan_out) (the P1 reference init)."""
    std = math.sqrt(scale / ((fan_in + fan_out) / 2)) / _truncated_std(TRUNC)
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, 0.0, std, -TRUNC * std, TRUNC * std)


class Float32:
    """Mixin: the layer computes in fp32 even under autocast. For output layers whose result feeds
    fp32 maths (two-hot softmaxes, logits, pixels): rounding it to bf16 first would cost up to 6%
    of a peaked 255-bin value. Keeps the parameter names of the plain layer."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())  # type: ignore[misc]


class Float32Linear(Float32, nn.Linear):
    pass


class Float32ConvTranspose2d(Float32, nn.ConvTranspose2d):
    pass


def linear(fan_in: int, fan_out: int, bias: bool = True, zero: bool = False, output: bool = False) -> nn.Linear:
    """A Linear with fan_avg init; `zero=True` starts its weights and bias at zero (output heads);
    `output=True` makes it an fp32 output layer (see `Float32`)."""
    layer = (Float32Linear if output else nn.Linear)(fan_in, fan_out, bias=bias)
    if zero:
        nn.init.zeros_(layer.weight)
    else:
        init_fan_avg_(layer.weight, fan_in, fan_out)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class Dense(nn.Sequential):
    """Linear (no bias) -> LayerNorm -> SiLU."""

    def __init__(self, fan_in: int, units: int):
        super().__init__(linear(fan_in, units, bias=False), nn.LayerNorm(units, eps=NORM_EPS), nn.SiLU())


class MLP(nn.Sequential):
    """`layers` Dense blocks of `units`; `out_dim` is `units` (or `fan_in` when layers == 0)."""

    def __init__(self, fan_in: int, units: int, layers: int):
        blocks = [Dense(fan_in if i == 0 else units, units) for i in range(layers)]
        super().__init__(*blocks)
        self.out_dim = units if layers else fan_in


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _stages(image_size: int, min_res: int) -> int:
    stages = int(round(math.log2(image_size / min_res)))
    if image_size <= 0 or min_res * 2**stages != image_size:
        raise ValueError(f"image size {image_size} must be min_res ({min_res}) times a power of 2")
    return stages


def _conv(cin: int, cout: int, transpose: bool, bias: bool, output: bool = False) -> nn.Module:
    kind = (Float32ConvTranspose2d if output else nn.ConvTranspose2d) if transpose else nn.Conv2d
    conv = kind(cin, cout, kernel_size=4, stride=2, padding=1, bias=bias)
    fan_in, fan_out = 16 * cin, 16 * cout
    init_fan_avg_(conv.weight, fan_in, fan_out)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


class ConvEncoder(nn.Module):
    """(N, H, W, C) uint8 -> (N, min_res^2 * depth * 2^(stages-1)) features.

    x / 255 - 0.5, then `stages` convs of kernel 4 stride 2 with channels depth * (1, 2, 4, 8, ...).
    """

    def __init__(self, image_shape: tuple[int, int, int], depth: int, min_res: int):
        super().__init__()
        size, _, channels = image_shape
        layers: list[nn.Module] = []
        cin = channels
        for i in range(_stages(size, min_res)):
            cout = depth * 2**i
            layers += [_conv(cin, cout, False, bias=False), ChannelNorm(cout, eps=NORM_EPS), nn.SiLU()]
            cin = cout
        self.net = nn.Sequential(*layers)
        self.out_dim = cin * min_res**2

    def forward(self, image: Tensor) -> Tensor:
        x = rearrange(image, "n h w c -> n c h w").float() / 255.0 - 0.5
        x = self.net(x.contiguous(memory_format=torch.channels_last))
        return rearrange(x, "n c h w -> n (h w c)")


class ConvDecoder(nn.Module):
    """(N, F) features -> (N, H, W, C) image in [0, 1] units (output + 0.5; the last layer and the
    shift in fp32)."""

    def __init__(self, fan_in: int, image_shape: tuple[int, int, int], depth: int, min_res: int):
        super().__init__()
        size, _, channels = image_shape
        stages = _stages(size, min_res)
        self.min_res = min_res
        self.top = depth * 2 ** (stages - 1)
        self.project = linear(fan_in, min_res**2 * self.top)  # has a bias: no norm follows
        layers: list[nn.Module] = []
        cin = self.top
        for i in reversed(range(stages)):
            last = i == 0
            cout = channels if last else depth * 2 ** (i - 1)
            layers.append(_conv(cin, cout, True, bias=last, output=last))
            if not last:
                layers += [ChannelNorm(cout, eps=NORM_EPS), nn.SiLU()]
            cin = cout
        self.net = nn.Sequential(*layers)

    def forward(self, feat: Tensor) -> Tensor:
        x = self.project(feat)  # (N, r*r*top)
        x = rearrange(x, "n (h w c) -> n c h w", h=self.min_res, w=self.min_res)
        x = self.net(x.contiguous(memory_format=torch.channels_last))
        return rearrange(x, "n c h w -> n h w c") + 0.5
