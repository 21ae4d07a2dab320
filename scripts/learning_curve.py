"""Learning curves from runs' `episodes.jsonl`: mean return of the last K episodes against env steps.

    python scripts/learning_curve.py runs/a runs/b [--window 20] [--every 2000] [--target 400]
        [--plot curves.png --title TITLE --label a=NAME ...]
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


def plot(logdirs: list[Path], labels: dict[str, str], window: int, every: int, title: str, out: Path) -> None:
    """The curves of `logdirs` on one axis, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for logdir in logdirs:
        points = curve(logdir, window, every)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3,
                label=labels.get(str(logdir), labels.get(logdir.name, logdir.name)))
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"episode return (mean of the last {window})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdirs", nargs="+", type=Path)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--target", type=float)
    parser.add_argument("--plot", type=Path, help="also draw the curves into this PNG")
    parser.add_argument("--title", default="")
    parser.add_argument("--label", action="append", default=[], metavar="FOLDER=NAME",
                        help="legend name of a run; FOLDER is its path as given or its last part")
    args = parser.parse_args()
    if args.plot:
        labels = dict(item.split("=", 1) for item in args.label)
        plot(args.logdirs, labels, args.window, args.every, args.title, args.plot)
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
