"""`dreamer report DIR`: tables and plots of a sweep's runs.

Writes `summary.csv` and `summary.md` (one row per run) and PNG plots:
  returns_vs_steps.png   score against env steps, a panel per train ratio, a line per size (mean and
                         95% t interval over seeds, the random-action level as a line);
  final_heatmap.png      final score as a size x ratio heatmap (mean over seeds);
  returns_vs_flops.png   score against training FLOPs, every run, with the compute-efficient frontier;
  intrinsic_performance.png  for each score level the least compute any size needs to reach it, and
                         the power-law fit of the compute-optimal size against compute (Hilton et
                         al. 2023, "Scaling laws for single-agent reinforcement learning").
The score of a set of episodes is their mean return, or for Crafter runs (episodes that log
achievements) the Crafter score of their success rates, in %: the curves, the final score (the last
`window` episodes of a run) and the random-action level are all in that one unit. Spreads over
seeds are sample standard deviations (ddof=1) in the tables and the bands alike.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from dreamer.checkpoint import atomic_write
from dreamer.envs.crafter_env import crafter_score, success_rates
from dreamer.logging import read_jsonl
from dreamer.replay import TrainRatio
from dreamer.sweep import wall_clock

FIELDS = ("run", "size", "train_ratio", "seed", "params", "policy_steps", "updates", "episodes",
          "final_score", "flops_per_update", "flops_per_policy_step", "total_flops", "wall_clock_s", "device")


def score(episodes: list[dict]) -> float:
    """The score of `episodes`: the Crafter score (%) of their success rates where they log
    achievements, else their mean return; NaN for none."""
    if not episodes:
        return float("nan")
    rates = success_rates(episodes)
    if rates:
        return crafter_score(np.array(list(rates.values())))
    return float(np.mean([ep["return"] for ep in episodes]))


def final_score(episodes: list[dict], window: int) -> float:
    """The score of the last `window` episodes (Crafter: the Crafter score over them)."""
    return score(episodes[-window:])


def collect(out: Path, window: int) -> list[dict]:
    """One record per finished run (a folder with `compute.json`), with its episodes and log."""
    runs = []
    for compute_path in sorted(out.glob("*/compute.json")):
        run = compute_path.parent
        compute = json.loads(compute_path.read_text())
        episodes = read_jsonl(run / "episodes.jsonl")
        runs.append({
            "run": run.name, **compute, "episodes": len(episodes), "wall_clock_s": wall_clock(run),
            "final_score": final_score(episodes, window), "_episodes": episodes,
        })
    return runs


def score_curve(run: dict, grid: np.ndarray, window: int) -> np.ndarray:
    """The score at each step of `grid`: that of the last `window` episodes ended by then."""
    episodes = run["_episodes"]
    steps = np.array([ep["step"] for ep in episodes])
    curve = np.full(len(grid), np.nan)
    for i, step in enumerate(grid):
        done = [ep for ep, s in zip(episodes, steps) if s <= step]
        if done:
            curve[i] = final_score(done, window)
    return curve


def training_start(run: dict) -> int:
    """The env step after which the train ratio counts steps: the run's steps less those it counted
    (`counted_steps`; recipe 2023: the prefill, recipe 2024: the steps before the replay held its
    first batch); the prefill for a `compute.json` written before `counted_steps` was recorded."""
    if "counted_steps" in run:
        return int(run["policy_steps"] - run["counted_steps"])
    return int(run.get("prefill", 0))


def random_steps(run: dict) -> int:
    """Env steps taken with random actions (the prefill), which run no policy network."""
    return int(run.get("random_steps", run.get("prefill", 0)))


def updates_at(run: dict, steps: np.ndarray) -> np.ndarray:
    """Updates made by each env step of `steps`: the exact train-ratio schedule from `training_start`."""
    schedule, start = TrainRatio(run["train_ratio"], run["replayed_per_update"]), training_start(run)
    return np.array([schedule.total_after(max(int(s) - start, 0)) for s in steps], dtype=float)


def first_update_step(run: dict) -> int:
    """The env step whose iteration made the run's first update: the episodes that ended by then
    were played before any update (the update is launched after that step's actions are chosen)."""
    schedule = TrainRatio(run["train_ratio"], run["replayed_per_update"])
    return training_start(run) + math.ceil(Fraction(schedule.per_update) / schedule.ratio)


def flops_at(run: dict, steps: np.ndarray) -> np.ndarray:
    """Training FLOPs spent by each env step: the updates made by then, and a policy step for each
    env step after the random prefill (random actions run no network)."""
    policy_steps = np.maximum(np.asarray(steps, dtype=float) - random_steps(run), 0.0)
    return updates_at(run, steps) * run["flops_per_update"] + policy_steps * run["flops_per_policy_step"]


def cell_curves(runs: list[dict], grid: np.ndarray, window: int) -> list[dict]:
    """Per (size, train ratio), in that order: its seed-mean score curve on the steps of `grid` that
    all its seeds reached, with the training FLOPs at those steps."""
    curves = []
    for key in sorted({(r["size"], r["train_ratio"]) for r in runs}):
        group = [r for r in runs if (r["size"], r["train_ratio"]) == key]
        steps = grid[grid <= min(r["policy_steps"] for r in group)]
        with warnings.catch_warnings():  # steps before any seed's first episode are NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            scores = np.nanmean([score_curve(r, steps, window) for r in group], 0)
        curves.append({"size": key[0], "train_ratio": key[1], "params": group[0]["params"], "steps": steps,
                       "flops": flops_at(group[0], steps), "scores": scores})
    return curves


def flops_frontier(curves: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The compute-efficient frontier of `cell_curves`: at each FLOPs value of any curve, the best
    seed-mean score any curve reached with at most that compute (a running maximum over seed means,
    so it ends at the top level of `intrinsic_performance`)."""
    points = sorted((f, v) for c in curves for f, v in zip(c["flops"], c["scores"]) if np.isfinite(v))
    if not points:
        return np.array([]), np.array([])
    flops, scores = np.array(points).T
    return flops, np.maximum.accumulate(scores)


def intrinsic_performance(runs: list[dict], grid: np.ndarray, window: int, levels: int | list[float] = 20) -> dict:
    """Compute-optimal size per score level (Hilton et al. 2023).

    Each (size, ratio) gets its seed-mean score curve against training FLOPs. `levels` evenly spaced
    score levels run from the random-play level (`random_level`; from the lowest score where no
    episode ended before a first update) to the best score, the random level itself excluded. For each level,
    C*(level) is the least FLOPs at which any of them first reaches the level and N*(level) the
    parameter count of that size. A least-squares line through (log C*, log N*) gives the power law
    N* = a C*^b; the exponent's uncertainty is the standard error of that slope.
    """
    curves = [(c["params"], c["flops"], c["scores"]) for c in cell_curves(runs, grid, window)]
    finite = np.concatenate([s[np.isfinite(s)] for _, _, s in curves])
    result = {"levels": [], "compute": [], "params": [], "exponent": None, "exponent_se": None, "coefficient": None}
    if finite.size == 0:
        return result
    if isinstance(levels, int):
        chance = random_level(runs)
        if chance is None:
            levels = list(np.linspace(finite.min(), finite.max(), levels))
        else:  # only levels above random play: those below it take no training to reach
            levels = [level for level in np.linspace(chance, finite.max(), levels + 1)[1:] if level > chance]
    for level in levels:
        best = None
        for params, flops, scores in curves:
            reached = np.flatnonzero(scores >= level)
            if reached.size and (best is None or flops[reached[0]] < best[0]):
                best = (float(flops[reached[0]]), params)
        if best:
            result["levels"].append(float(level))
            result["compute"].append(best[0])
            result["params"].append(best[1])
    trained = np.array(result["compute"]) > 0  # a level reached before any update has no log C*
    x, y = np.log10(np.array(result["compute"])[trained]), np.log10(np.array(result["params"])[trained])
    if len(x) >= 3 and np.ptp(x) > 0:
        (slope, intercept), cov = np.polyfit(x, y, 1, cov=True)
        result.update(exponent=float(slope), exponent_se=float(np.sqrt(cov[0, 0])), coefficient=float(10**intercept))
    return result


def describe_fit(fit: dict) -> str:
    if fit["exponent"] is None:
        return (f"compute-optimal size vs compute: too few distinct points to fit a power law "
                f"({len(fit['compute'])} levels reached)")
    return (f"compute-optimal size vs compute: N* = {fit['coefficient']:.3g} * C^b with "
            f"b = {fit['exponent']:.3f} +- {fit['exponent_se']:.3f} (standard error, {len(fit['compute'])} levels)")


def write_tables(runs: list[dict], out: Path, fit: dict) -> None:
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
    lines += ["", "Final score, mean +- sample std (ddof=1) over seeds:", "",
              "| size | train ratio | seeds | final score |", "|---|---:|---:|---:|"]
    for (size, ratio), scores in grouped.items():
        spread = f"{np.std(scores, ddof=1):.2g}" if len(scores) > 1 else "n/a"
        lines.append(f"| {size} | {ratio:g} | {len(scores)} | {np.mean(scores):.4g} +- {spread} |")
    lines += ["", "Intrinsic performance (Hilton et al. 2023): " + describe_fit(fit), "",
              "| score level | least training FLOPs | compute-optimal parameters |", "|---:|---:|---:|"]
    lines += [f"| {lv:.4g} | {c:.4g} | {p:,} |" for lv, c, p in zip(fit["levels"], fit["compute"], fit["params"])]
    atomic_write(out / "summary.md", lambda f: f.write(("\n".join(lines) + "\n").encode()))


def save_png(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


CONFIDENCE = 0.95  # of the bands around the mean over seeds


def mean_and_band(curves: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seeds, points) -> the mean over seeds and its Student-t confidence interval at each point
    (mean +- t * std / sqrt(n), with n the seeds that have a value there); the band is the mean
    itself where fewer than two seeds have one."""
    from scipy.stats import t as student_t

    count = np.sum(np.isfinite(curves), 0)
    with warnings.catch_warnings():  # points before any episode ended are NaN for every seed
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, 0)
        std = np.nanstd(curves, 0, ddof=1)
    quantile = student_t.ppf(0.5 + confidence / 2, np.maximum(count - 1, 1))
    half = np.where(count >= 2, quantile * std / np.sqrt(np.maximum(count, 1)), 0.0)
    return mean, mean - half, mean + half


def plot_seeds(ax, runs: list[dict], grid: np.ndarray, window: int, label: str) -> list[float]:
    """The mean score curve of `runs` (seeds of one setting) with its t band on `ax`; returns every
    run's finite scores, for `clip_to_runs`."""
    curves = np.array([score_curve(r, grid, window) for r in runs])
    mean, low, high = mean_and_band(curves)
    ax.plot(grid, mean, label=label)
    ax.fill_between(grid, low, high, alpha=0.2)
    return list(curves[np.isfinite(curves)])


def clip_to_runs(ax, values: list[float]) -> None:
    """The y range of `ax` from what the runs scored (and the random level), not from the bands: with
    two seeds a 95% t interval is 12.7 standard errors wide and would flatten every curve."""
    values = [v for v in values if np.isfinite(v)]
    if values:
        pad = 0.05 * (max(values) - min(values)) or 1.0
        ax.set_ylim(min(values) - pad, max(values) + pad)


def untrained_episodes(run: dict) -> list[dict]:
    """The episodes of `run` that ended by its first update (`first_update_step`)."""
    first = first_update_step(run)
    return [ep for ep in run["_episodes"] if ep["step"] <= first]


def random_level(runs: list[dict]) -> float | None:
    """The random-play level: the score (`score`, so a Crafter score for Crafter runs) of all runs'
    episodes that ended before any update was made (`untrained_episodes`). Under recipe 2023 they
    are the prefill's random actions (and the few steps to the first update); recipe 2024 has no
    prefill, and its untrained policy acts until the replay holds a batch: its actor's output layer
    starts at 0.01 of the usual scale (`v2024.actor_outscale`), so its actions are close to uniform.
    None where no run has such an episode."""
    episodes = [ep for run in runs for ep in untrained_episodes(run)]
    return score(episodes) if episodes else None


def _score_label(runs: list[dict], window: int) -> str:
    crafter = any(success_rates(run["_episodes"]) for run in runs)
    return "Crafter score (%)" if crafter else f"episode return (mean of the last {window})"


def _plot_curves(plt, runs: list[dict], sizes: list[str], ratios: list[float], grid: np.ndarray, window: int):
    fig, axes = plt.subplots(1, len(ratios), figsize=(4 * len(ratios), 3.2), squeeze=False, sharey=True)
    chance = random_level(runs)
    seen = [] if chance is None else [chance]
    for ax, ratio in zip(axes[0], ratios):
        for size in sizes:
            group = [r for r in runs if r["size"] == size and r["train_ratio"] == ratio]
            if not group:
                continue
            seen += plot_seeds(ax, group, grid, window, f"{size} ({len(group)} seed{'s' if len(group) > 1 else ''})")
        if chance is not None:
            ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="random actions")
        ax.set_title(f"train ratio {ratio:g}")
        ax.set_xlabel("env steps (policy steps, all envs)")
    clip_to_runs(axes[0, 0], seen)
    axes[0, 0].set_ylabel(_score_label(runs, window))
    axes[0, 0].legend(title=f"mean, {CONFIDENCE:.0%} CI over seeds (clipped to the runs' range)", fontsize=7,
                      title_fontsize=7)
    return fig


def _plot_heatmap(plt, runs: list[dict], sizes: list[str], ratios: list[float]):
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
    return fig


def _plot_flops(plt, runs: list[dict], grid: np.ndarray, window: int):
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        steps = grid[grid <= run["policy_steps"]]
        ax.plot(flops_at(run, steps), score_curve(run, steps, window), alpha=0.5, label=run["run"])
    flops, best = flops_frontier(cell_curves(runs, grid, window))
    if flops.size:
        ax.plot(flops, best, color="black", lw=2, label="frontier (seed means)")
    chance = random_level(runs)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="random actions")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs (matmuls and convolutions)")
    ax.set_ylabel(_score_label(runs, window))
    ax.legend(fontsize=6)
    return fig


def _plot_intrinsic(plt, fit: dict):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(fit["compute"], fit["levels"], marker="o")
    left.set_xscale("log")
    left.set_xlabel("least training FLOPs to reach the level (any size)")
    left.set_ylabel("score level")
    right.scatter(fit["compute"], fit["params"], label="compute-optimal size")
    if fit["exponent"] is not None:
        line = np.array([min(fit["compute"]), max(fit["compute"])])
        label = f"N* = {fit['coefficient']:.3g} C^({fit['exponent']:.3f} +- {fit['exponent_se']:.3f})"
        right.plot(line, fit["coefficient"] * line ** fit["exponent"], color="black", label=label)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("training FLOPs")
    right.set_ylabel("parameters")
    right.legend(fontsize=7)
    return fig


def write_plots(runs: list[dict], out: Path, window: int) -> dict:
    """The four PNG plots; returns the intrinsic-performance fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(run["size"] for run in sorted(runs, key=lambda run: run["params"])))
    ratios = sorted({run["train_ratio"] for run in runs})
    last = max(run["policy_steps"] for run in runs)
    grid = np.linspace(last / 20, last, 20)  # 20 evaluation points along the runs
    fit = intrinsic_performance(runs, grid, window)
    figures = {
        "returns_vs_steps.png": _plot_curves(plt, runs, sizes, ratios, grid, window),
        "final_heatmap.png": _plot_heatmap(plt, runs, sizes, ratios),
        "returns_vs_flops.png": _plot_flops(plt, runs, grid, window),
        "intrinsic_performance.png": _plot_intrinsic(plt, fit),
    }
    for name, fig in figures.items():
        fig.tight_layout()
        save_png(fig, out / name)
    plt.close("all")
    return fit


def report(out: Path, window: int = 20) -> tuple[list[dict], dict]:
    """Tables and plots of the finished runs in `out`; returns the runs and the power-law fit."""
    runs = collect(out, window)
    if not runs:
        from dreamer.config import ConfigError

        raise ConfigError(f"no finished runs in {out}: no sweep runs (*/compute.json), no atari100k runs with "
                          f"eval.json, no crafter or dmc runs with episodes")
    fit = write_plots(runs, out, window)
    write_tables(runs, out, fit)
    return runs, fit
