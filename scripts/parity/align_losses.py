#!/usr/bin/env python3
"""Both codes' world-model loss terms over the same updates: each of our log lines holds the mean
over the updates since the line before (`perf/updates` counts them), and the official per-update
records are averaged over exactly those updates, seed by seed.

    python scripts/parity/align_losses.py --runs RUNS --recipe 2024 --task crafter [--setting fast]

The harness's verdicts compare windows of env steps; this checks a difference found there against
update-for-update alignment (the two codes can be an update apart at a given env step).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dreamer.logging import read_jsonl

TERMS = ("image", "reward", "cont", "dyn")


def our_windows(logdir: Path) -> list[tuple[int, int, dict[str, float]]]:
    """(first update, last update, {term: mean}) of each of our log lines that holds losses."""
    out, before = [], 0
    for line in read_jsonl(logdir / "metrics.jsonl"):
        updates = int(line.get("perf/updates", 0))
        if updates > before and "loss/reward" in line:
            out.append((before + 1, updates, {t: float(line[f"loss/{t}"]) for t in TERMS if f"loss/{t}" in line}))
        before = max(before, updates)
    return out


def official_means(logdir: Path, first: int, last: int) -> dict[str, float]:
    lines = [line for line in read_jsonl(logdir / "losses.jsonl") if first <= int(line["update"]) <= last]
    return {t: float(np.mean([line[t] for line in lines])) for t in TERMS if lines and t in lines[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--task", default="crafter")
    parser.add_argument("--setting", default="fast")
    args = parser.parse_args()
    ours = sorted(p for p in args.runs.glob(f"ours-{args.recipe}-{args.task}-{args.setting}-s*") if p.is_dir())
    theirs = sorted(p for p in args.runs.glob(f"official-{args.recipe}-{args.task}-{args.setting}-s*") if p.is_dir())
    windows = our_windows(ours[0])  # the same update counts in every seed of ours
    print(f"{args.recipe} {args.task} {args.setting}: mean of each term over the same updates, per seed")
    for term in TERMS:
        print(f"\n{term}\n| updates | ours | official |\n|---|---|---|")
        for i, (first, last, _) in enumerate(windows):
            a = [our_windows(run)[i][2][term] for run in ours]
            b = [official_means(run, first, last).get(term, np.nan) for run in theirs]
            print(f"| {first}-{last} | {np.mean(a):.3f} ({', '.join(f'{v:.3f}' for v in a)}) | "
                  f"{np.mean(b):.3f} ({', '.join(f'{v:.3f}' for v in b)}) |")


if __name__ == "__main__":
    main()
