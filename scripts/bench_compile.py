"""`torch.compile` on and off for the image encoder and decoder (forward and backward), the part of
an update that compilation could fuse most (convolution, LayerNorm, SiLU).

    python scripts/bench_compile.py [--size s] [--rows 1024] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from dreamer.agent import resolve_device
from dreamer.bench import median_seconds
from dreamer.config import load_config
from dreamer.nets.layers import ConvDecoder, ConvEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="s")
    parser.add_argument("--rows", type=int, default=1024, help="images per call (batch x length)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    cfg = load_config([], {"env": "crafter", "size": args.size})
    device = resolve_device(args.device)
    shape = (cfg.environment.size, cfg.environment.size, 3)
    feat_dim = cfg.rssm.deter + cfg.rssm.stoch * cfg.rssm.classes
    encoder = ConvEncoder(shape, cfg.encoder.cnn_depth, cfg.encoder.min_res).to(device)
    decoder = ConvDecoder(feat_dim, shape, cfg.decoder.cnn_depth, cfg.decoder.min_res).to(device)
    images = torch.randint(0, 256, (args.rows, *shape), dtype=torch.uint8, device=device)
    feat = torch.randn(args.rows, feat_dim, device=device)

    def step(enc, dec):
        return lambda: (enc(images).square().mean() + (dec(feat) - 0.5).square().mean()).backward()

    eager_step = step(encoder, decoder)
    eager_step()  # warm-up
    eager = median_seconds(eager_step, device, args.repeats)
    start = time.perf_counter()
    compiled_step = step(torch.compile(encoder), torch.compile(decoder))
    compiled_step()
    compile_s = time.perf_counter() - start
    compiled = median_seconds(compiled_step, device, args.repeats)
    print(f"size {args.size} on {device} ({torch.get_num_threads()} threads), {args.rows} images: "
          f"eager {1000 * eager:.0f} ms, compiled {1000 * compiled:.0f} ms ({eager / compiled:.2f}x), "
          f"compilation {compile_s:.0f} s")


if __name__ == "__main__":
    main()
