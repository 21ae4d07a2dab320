"""`dreamer bench` for every size preset, each in its own process, as one Markdown table.

Speed-ups are against the per-update times of the most used PyTorch port measured on this machine
kind (2 threads, Crafter shapes, batch 16 x 64; `../shared/reference/peers.md`). Usage:
    python scripts/bench_sizes.py [--env crafter] [--sizes xs,s,m,l,xl] [--updates 3] [--device cpu] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess

REFERENCE_SECONDS = {"xs": 6.1, "s": 8.8, "m": 23.1, "l": 39.7, "xl": 97.5}  # NM512/dreamerv3-torch, CPU


def bench(env: str, size: str, updates: int, device: str) -> dict:
    cmd = ["dreamer", "bench", "--env", env, "--size", size, "--updates", str(updates), "--device", device, "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="crafter")
    parser.add_argument("--sizes", default="xs,s,m,l,xl")
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="write the raw results as JSON here")
    args = parser.parse_args()
    print("| size | parameters | ms / update | world model | actor-critic | GFLOP / update | GFLOP/s "
          "| of matmul peak | reference ms | speed-up | peak memory GB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for size in args.sizes.split(","):
        r = bench(args.env, size, args.updates, args.device)
        rows.append(r)
        ref = REFERENCE_SECONDS.get(size) if args.env == "crafter" and r["device"] == "cpu" else None
        speedup = f"{1000 * ref / r['update_ms']:.2f}x" if ref else "-"
        print(f"| {size} | {r['total']:,} | {r['update_ms']:,.0f} | {r['world_model_ms']:,.0f} "
              f"| {r['actor_critic_ms']:,.0f} | {r['flops_per_update'] / 1e9:,.0f} "
              f"| {r['achieved_flops_per_second'] / 1e9:.0f} | {100 * r['fraction_of_peak']:.0f}% "
              f"| {f'{1000 * ref:,.0f}' if ref else '-'} | {speedup} | {r['peak_memory_gb']:.1f} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
