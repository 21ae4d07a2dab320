"""Where one learner update spends its time: torch.profiler's operator table (with input shapes).

    python scripts/profile_update.py --env crafter --size s [--updates 2] [--rows 25] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse

from torch.profiler import profile

from dreamer.bench import agent_and_batch
from dreamer.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="crafter")
    parser.add_argument("--size", default="s")
    parser.add_argument("--updates", type=int, default=2, help="profiled updates, after one warm-up")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = load_config(args.overrides, {"env": args.env, "size": args.size, "device": args.device})
    agent, batch = agent_and_batch(cfg)
    agent.train(batch)
    with profile(record_shapes=True) as prof:
        for _ in range(args.updates):
            agent.train(batch)
    sort = "self_cuda_time_total" if agent.device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=args.rows,
                                                             max_name_column_width=40, max_shapes_column_width=70))


if __name__ == "__main__":
    main()
