"""A markdown table of logged metrics at the steps two or more runs share, one row per step.

    python scripts/metric_table.py runs/a runs/b --keys loss/world_model,loss/image [--every 500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamer.logging import read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--keys", required=True, help="comma-separated metric names")
    parser.add_argument("--every", type=int, default=0, help="only steps that are multiples of this")
    args = parser.parse_args()
    keys = args.keys.split(",")
    records = {run: {r["step"]: r for r in read_jsonl(run / "metrics.jsonl")} for run in args.runs}
    steps = sorted(set.intersection(*(set(s for s, r in recs.items() if keys[0] in r) for recs in records.values())))
    steps = [s for s in steps if not args.every or s % args.every == 0]
    header = ["step"] + [f"{key} ({run.name})" for key in keys for run in args.runs]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" + "---:|" * (len(header) - 1))
    for step in steps:
        cells = [f"{records[run][step].get(key, float('nan')):.3f}" for key in keys for run in args.runs]
        print(f"| {step:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
