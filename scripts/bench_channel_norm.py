"""The channel LayerNorm + SiLU of the P1 image encoder and decoder, forward and backward, four ways:
the layers as the package runs them, the same maths written as plain ops, and that maths under
`torch.compile` (one fused kernel per direction), each in fp32 and under bf16 autocast.

    python scripts/bench_channel_norm.py [--channels 24] [--side 32] [--batch 1024] [--reps 3]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from dreamer.nets.layers import NORM_EPS, ChannelNorm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=24)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    norm = ChannelNorm(args.channels, eps=NORM_EPS)

    def layers(x):
        return F.silu(norm(x))

    def plain(x):
        xf = x.float()
        mean = xf.mean(1, keepdim=True)
        var = (xf * xf).mean(1, keepdim=True) - mean * mean
        y = (xf - mean) * torch.rsqrt(var + NORM_EPS) * norm.weight[:, None, None] + norm.bias[:, None, None]
        return F.silu(y).to(x.dtype)

    shape = (args.batch, args.channels, args.side, args.side)
    base = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    for name, fn in [("layers", layers), ("plain ops", plain), ("compiled", torch.compile(plain, dynamic=False))]:
        for dtype in (torch.float32, torch.bfloat16):
            x = base.to(dtype).requires_grad_()
            grad = torch.randn_like(x)
            forward = backward = 0.0
            for rep in range(args.reps + 1):  # the first is a warm-up (and the compilation)
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                    y = fn(x)
                middle = time.perf_counter()
                y.backward(grad)
                end = time.perf_counter()
                if rep:
                    forward, backward = forward + middle - start, backward + end - middle
            print(f"{name:<10} {str(dtype)[6:]:<9} forward {1000 * forward / args.reps:6.0f} ms  "
                  f"backward {1000 * backward / args.reps:6.0f} ms")


if __name__ == "__main__":
    main()
