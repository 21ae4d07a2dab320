"""Time one full `Agent.train` update per size preset on Crafter shapes (batch 16 x 64).

Each size runs in its own process so peak memory is its own. Usage:
    python scripts/bench_update.py [--sizes xs,s,m,l,xl] [--updates 3] [--device cpu] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch


def one(size: str, updates: int, device: str) -> dict:
    from dreamer.agent import Agent, resolve_device
    from dreamer.bench import peak_memory_gb, random_batch, time_learner
    from dreamer.config import load_config
    from dreamer.envs import spaces

    cfg = load_config([], {"env": "crafter", "size": size, "device": device})
    obs_space, act_space = spaces(cfg.env, cfg.environment)
    torch.manual_seed(0)
    agent = Agent(cfg, obs_space, act_space).to(resolve_device(device))
    batch = agent.to_tensors(random_batch(obs_space, act_space, cfg.replay.batch_size, cfg.replay.batch_length))
    seconds = time_learner(agent, batch, updates)
    return {"size": size, "device": device, "threads": torch.get_num_threads(), **agent.parameter_counts(),
            "seconds_per_update": seconds["update_seconds"], "peak_rss_gb": peak_memory_gb(agent.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="xs,s,m,l,xl")
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: a single size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.updates, args.device)))
        return
    rows = []
    print(f"{'size':<5} {'params':>12} {'s/update':>9} {'peak RSS GB':>12}")
    for size in args.sizes.split(","):
        out = subprocess.run([sys.executable, __file__, "--one", size, "--updates", str(args.updates),
                              "--device", args.device], check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(f"{size:<5} {row['total']:>12,} {row['seconds_per_update']:>9.2f} {row['peak_rss_gb']:>12.2f}",
              flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
