"""`dreamer report DIR`: tables and plots of a sweep's runs.

Writes `summary.csv` and `summary.md` (one row per run) and PNG plots:
  returns_vs_steps.png   score against env steps, a panel per train ratio, a line per size (mean and
                         min-max over seeds);
  final_heatmap.png      final score as a size x ratio heatmap (mean over seeds);
  returns_vs_flops.png   score against training FLOPs, every run, with the compute-efficient frontier.
The score is the return, or the Crafter score for Crafter runs. The final score of a run is the
mean return of its last `window` episodes (Crafter: its score over all its episodes).
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np

from dreamer.checkpoint import atomic_write
from dreamer.envs.crafter_env import crafter_score
from dreamer.sweep import wall_clock

FIELDS = ("run", "size", "train_ratio", "seed", "params", "policy_steps", "updates", "episodes",
          "final_score", "flops_per_update", "flops_per_policy_step", "total_flops", "wall_clock_s", "device")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def final_score(episodes: list[dict], window: int) -> float:
    """Mean return of the last `window` episodes, or the Crafter score over all episodes."""
    if not episodes:
        return float("nan")
    names = [k for k in episodes[0] if k.startswith("achievement_")]
    if names:
        rates = [100.0 * np.mean([ep[k] > 0 for ep in episodes]) for k in names]
        return crafter_score(np.array(rates))
    return float(np.mean([ep["return"] for ep in episodes[-window:]]))


def collect(out: Path, window: int) -> list[dict]:
    """One record per finished run (a folder with `compute.json`), with its episodes and log."""
    runs = []
    for compute_path in sorted(out.glob("*/compute.json")):
        run = compute_path.parent
        compute = json.loads(compute_path.read_text())
        episodes = _jsonl(run / "episodes.jsonl")
        runs.append({
            "run": run.name, **compute, "episodes": len(episodes), "wall_clock_s": wall_clock(run),
            "final_score": final_score(episodes, window), "_episodes": episodes,
        })
    return runs


def score_curve(run: dict, grid: np.ndarray, window: int) -> np.ndarray:
    """The score at each step of `grid`: mean return of the last `window` episodes ended by then
    (Crafter: the score over the episodes so far)."""
    episodes = run["_episodes"]
    steps = np.array([ep["step"] for ep in episodes])
    curve = np.full(len(grid), np.nan)
    for i, step in enumerate(grid):
        done = [ep for ep, s in zip(episodes, steps) if s <= step]
        if done:
            curve[i] = final_score(done, window)
    return curve


def flops_at(run: dict, steps: np.ndarray) -> np.ndarray:
    """Training FLOPs spent by each env step: the ratio schedule fixes the updates made by then
    (floor((step - prefill) * ratio / replayed steps per update), design section 6)."""
    updates = np.floor(np.maximum(steps - run["prefill"], 0) * run["train_ratio"] / run["replayed_per_update"])
    return updates * run["flops_per_update"] + steps * run["flops_per_policy_step"]


def write_tables(runs: list[dict], out: Path) -> None:
    rows = [{k: run.get(k) for k in FIELDS} for run in runs]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "summary.csv", lambda f: f.write(buffer.getvalue().encode()))
    lines = ["| " + " | ".join(FIELDS) + " |", "|" + "---|" * len(FIELDS)]
    for row in rows:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    grouped: dict[tuple, list[float]] = {}
    for run in runs:
        grouped.setdefault((run["size"], run["train_ratio"]), []).append(run["final_score"])
    lines += ["", "Final score, mean +- std over seeds:", "", "| size | train ratio | seeds | final score |",
              "|---|---:|---:|---:|"]
    for (size, ratio), scores in grouped.items():
        lines.append(f"| {size} | {ratio:g} | {len(scores)} | {np.mean(scores):.4g} +- {np.std(scores):.2g} |")
    atomic_write(out / "summary.md", lambda f: f.write(("\n".join(lines) + "\n").encode()))


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def write_plots(runs: list[dict], out: Path, window: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(run["size"] for run in runs))
    ratios = sorted({run["train_ratio"] for run in runs})
    last = max(run["policy_steps"] for run in runs)
    grid = np.linspace(last / 20, last, 20)
    paths = [out / "returns_vs_steps.png", out / "final_heatmap.png", out / "returns_vs_flops.png"]

    fig, axes = plt.subplots(1, len(ratios), figsize=(4 * len(ratios), 3.2), squeeze=False, sharey=True)
    for ax, ratio in zip(axes[0], ratios):
        for size in sizes:
            group = [r for r in runs if r["size"] == size and r["train_ratio"] == ratio]
            if not group:
                continue
            curves = np.array([score_curve(r, grid, window) for r in group])
            with warnings.catch_warnings():  # bins before any episode ended are NaN for every seed
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, low, high = np.nanmean(curves, 0), np.nanmin(curves, 0), np.nanmax(curves, 0)
            ax.plot(grid, mean, label=size)
            ax.fill_between(grid, low, high, alpha=0.2)
        ax.set_title(f"train ratio {ratio:g}")
        ax.set_xlabel("env steps")
    axes[0, 0].set_ylabel("score")
    axes[0, 0].legend()
    fig.tight_layout()
    _save(fig, paths[0])

    heat = np.array([[np.mean([r["final_score"] for r in runs if r["size"] == s and r["train_ratio"] == q] or [np.nan])
                      for q in ratios] for s in sizes])
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(ratios), 1.2 + 0.8 * len(sizes)))
    image = ax.imshow(heat, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(ratios)), [f"{q:g}" for q in ratios])
    ax.set_yticks(range(len(sizes)), sizes)
    ax.set_xlabel("train ratio")
    ax.set_ylabel("size")
    for i in range(len(sizes)):
        for j in range(len(ratios)):
            ax.text(j, i, f"{heat[i, j]:.3g}", ha="center", va="center", color="white")
    fig.colorbar(image, label="final score")
    fig.tight_layout()
    _save(fig, paths[1])

    fig, ax = plt.subplots(figsize=(6, 4))
    points = []
    for run in runs:
        steps = grid[grid <= run["policy_steps"]]
        flops, scores = flops_at(run, steps), score_curve(run, steps, window)
        ax.plot(flops, scores, alpha=0.5, label=run["run"])
        points += [(f, s) for f, s in zip(flops, scores) if np.isfinite(s)]
    if points:
        points.sort()
        frontier = np.maximum.accumulate([s for _, s in points])
        ax.plot([f for f, _ in points], frontier, color="black", lw=2, label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("score")
    ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, paths[2])
    plt.close("all")
    return paths


def report(out: Path, window: int = 20) -> list[dict]:
    runs = collect(out, window)
    if not runs:
        from dreamer.config import ConfigError

        raise ConfigError(f"no finished runs (*/compute.json) in {out}")
    write_tables(runs, out)
    write_plots(runs, out, window)
    return runs
