"""`dreamer bench` for every size preset, each in its own process, as one Markdown table.

Our numbers only: a comparison with another implementation is measured side by side, alternating
in one sitting (BENCHMARKS.md, "Against the reference port, side by side"), never against
figures from another day. Usage:
    python scripts/bench_sizes.py [--env crafter] [--sizes xs,s,m,l,xl] [--updates 3] [--device cpu]
        [--precision auto|fp32|tf32|bf16] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess

def bench(env: str, size: str, updates: int, device: str, precision: str) -> dict:
    cmd = ["dreamer", "bench", "--env", env, "--size", size, "--updates", str(updates), "--device", device,
           "--precision", precision, "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="crafter")
    parser.add_argument("--sizes", default="xs,s,m,l,xl")
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="auto (bf16 where the device has it natively), fp32, tf32, bf16")
    parser.add_argument("--out", help="write the raw results as JSON here")
    args = parser.parse_args()
    print("| size | precision | parameters | ms / update | world model | actor-critic | GFLOP / update | GFLOP/s "
          "| of matmul peak | peak memory GB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for size in args.sizes.split(","):
        r = bench(args.env, size, args.updates, args.device, args.precision)
        rows.append(r)
        print(f"| {size} | {r['precision']} | {r['total']:,} | {r['update_ms']:,.0f} | {r['world_model_ms']:,.0f} "
              f"| {r['actor_critic_ms']:,.0f} | {r['flops_per_update'] / 1e9:,.0f} "
              f"| {r['achieved_flops_per_second'] / 1e9:.0f} | {100 * r['fraction_of_peak']:.0f}% "
              f"| {r['peak_memory_gb']:.1f} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
