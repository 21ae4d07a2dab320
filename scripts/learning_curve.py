"""Learning curves from runs' `episodes.jsonl`: mean return of the last K episodes against env steps.

    python scripts/learning_curve.py runs/a runs/b [--window 20] [--every 2000] [--target 400]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dreamer.logging import read_jsonl


def curve(logdir: Path, window: int, every: int) -> list[tuple[int, float, int]]:
    """(step, mean return of the last `window` episodes ended by then, episodes so far) per `every` steps."""
    episodes = read_jsonl(logdir / "episodes.jsonl")
    if not episodes:
        return []
    steps = np.array([ep["step"] for ep in episodes])
    returns = np.array([ep["return"] for ep in episodes])
    points = []
    for step in range(every, int(steps.max()) + every, every):
        done = returns[steps <= step]
        if len(done):
            points.append((step, float(done[-window:].mean()), len(done)))
    return points


def first_reaching(logdir: Path, window: int, target: float) -> int | None:
    """The first env step at which the mean of the last `window` episodes reaches `target`."""
    episodes = read_jsonl(logdir / "episodes.jsonl")
    returns = [ep["return"] for ep in episodes]
    for i in range(window, len(returns) + 1):
        if np.mean(returns[i - window:i]) >= target:
            return episodes[i - 1]["step"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdirs", nargs="+", type=Path)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--target", type=float)
    args = parser.parse_args()
    for logdir in args.logdirs:
        print(f"## {logdir}")
        print(f"| env steps | mean return (last {args.window}) | episodes |\n|---:|---:|---:|")
        for step, mean, count in curve(logdir, args.window, args.every):
            print(f"| {step} | {mean:.1f} | {count} |")
        if args.target is not None:
            hit = first_reaching(logdir, args.window, args.target)
            print(f"\nfirst reaches {args.target:g}: {'never' if hit is None else f'step {hit}'}\n")


if __name__ == "__main__":
    main()
