"""`dreamer report DIR`: tables and plots of a sweep's runs.

Writes `summary.csv` and `summary.md` (one row per run, the final score per size and ratio, the
compute frontier and its fit) and PNG plots:
  returns_vs_steps.png   score against env steps, a panel per train ratio, a line per size (mean and
                         95% t interval over seeds, the random-play level as a line);
  final_heatmap.png      final score as a size x ratio heatmap (mean over seeds);
  returns_vs_flops.png   score against training FLOPs, every run, with the compute-efficient frontier
                         of the seed means;
  intrinsic_performance.png  for each score level the least compute any size needs to reach it, and
                         the power-law fit of the compute-optimal size against compute (Hilton et
                         al. 2023, "Scaling laws for single-agent reinforcement learning").
The score of a set of episodes is their mean return, or for Crafter runs (episodes that log
achievements) the Crafter score of their success rates, in %: the curves, the final score and the
random-play level are all in that one unit. The curves (plots and fit) smooth over a window of env
steps (`SMOOTHING_SHARE` of the longest run), the same for every run; a run's final score in the
tables and the heatmap is the score of its last `window` episodes. Spreads over seeds are sample
standard deviations (ddof=1) in the tables and the bands alike.
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

SMOOTHING_SHARE = 0.1  # the curves' window of env steps, as a share of the longest run's steps
GRID_POINTS = 40  # evaluation points along the runs, evenly spaced in env steps
LEVELS = 20  # score levels of the compute frontier
MIN_FRONTIER_SIZES = 3  # distinct compute-optimal sizes below which no power law is fitted
CONFIDENCE = 0.95  # of the bands around the mean over seeds and of the bootstrap intervals

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


def smoothing_window(runs: list[dict]) -> float:
    """The curves' window of env steps: `SMOOTHING_SHARE` of the longest run."""
    return SMOOTHING_SHARE * max(run["policy_steps"] for run in runs)


def evaluation_grid(runs: list[dict]) -> np.ndarray:
    """`GRID_POINTS` env steps evenly spaced up to the longest run's last step."""
    last = max(run["policy_steps"] for run in runs)
    return np.linspace(last / GRID_POINTS, last, GRID_POINTS)


def score_curve(run: dict, grid: np.ndarray, window_steps: float) -> np.ndarray:
    """The score at each step s of `grid`: that of the episodes that ended in the window of env
    steps (s - window_steps, s]; NaN where none did. A window of steps lags every run's curve by as
    many steps whatever its episodes' lengths; a count of episodes would span a few steps of short,
    failed episodes and thousands of long, good ones."""
    episodes = sorted(run["_episodes"], key=lambda ep: ep["step"])
    ends = np.array([ep["step"] for ep in episodes], dtype=float)
    grid = np.asarray(grid, dtype=float)
    starts, stops = np.searchsorted(ends, grid - window_steps, "right"), np.searchsorted(ends, grid, "right")
    return np.array([score(episodes[a:b]) for a, b in zip(starts, stops)])


def training_start(run: dict) -> int:
    """The env step after which the train ratio counts steps: the run's steps less those it counted
    (`counted_steps`; recipe 2023: the prefill, recipe 2024: the steps before the replay held its
    first batch; a run that paused training to refill a damaged replay reads as starting later);
    the prefill for a `compute.json` written before `counted_steps` was recorded."""
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
    were played before any update (the update is launched after that step's actions are chosen).
    With several envs an iteration takes several steps and the update may come a few steps later;
    the episodes that ended in between are left out."""
    schedule = TrainRatio(run["train_ratio"], run["replayed_per_update"])
    return training_start(run) + math.ceil(Fraction(schedule.per_update) / schedule.ratio)


def flops_at(run: dict, steps: np.ndarray) -> np.ndarray:
    """Training FLOPs spent by each env step: the updates made by then, and a policy step for each
    env step after the random prefill (random actions run no network)."""
    policy_steps = np.maximum(np.asarray(steps, dtype=float) - random_steps(run), 0.0)
    return updates_at(run, steps) * run["flops_per_update"] + policy_steps * run["flops_per_policy_step"]


def seed_mean(curves: np.ndarray) -> np.ndarray:
    """(seeds, points) -> the mean over the seeds with a value at each point (NaN where none has)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(curves, 0)


def cell_curves(runs: list[dict], grid: np.ndarray, window_steps: float) -> list[dict]:
    """Per (size, train ratio), in that order: its seeds' score curves (`seeds`, one row per run) and
    their mean (`scores`) on the steps of `grid` that all its seeds reached, with the training
    FLOPs at those steps."""
    curves = []
    for key in sorted({(r["size"], r["train_ratio"]) for r in runs}):
        group = [r for r in runs if (r["size"], r["train_ratio"]) == key]
        steps = grid[grid <= min(r["policy_steps"] for r in group)]
        seeds = np.array([score_curve(r, steps, window_steps) for r in group]).reshape(len(group), len(steps))
        curves.append({"size": key[0], "train_ratio": key[1], "params": group[0]["params"], "steps": steps,
                       "flops": flops_at(group[0], steps), "seeds": seeds, "scores": seed_mean(seeds)})
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


def crossings(flops: np.ndarray, scores: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per level, where a curve first reaches it: the FLOPs, linearly interpolated between the last
    point below the level and the first at or above it (that first point itself where no value
    precedes it), NaN where the curve never reaches it; and whether that first point is the curve's
    last, so that the run's budget ended as it got there (censored)."""
    levels = np.asarray(levels, dtype=float)
    if scores.size == 0:
        return np.full(len(levels), np.nan), np.zeros(len(levels), bool)
    above = scores[None, :] >= levels[:, None]  # NaN compares False: no value, not reached
    reached, first = above.any(1), above.argmax(1)
    before = np.maximum(first - 1, 0)
    low, high = scores[before], scores[first]
    between = reached & (first > 0) & np.isfinite(low)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(between, (levels - low) / (high - low), 1.0)
    compute = np.where(reached, flops[before] + share * (flops[first] - flops[before]), np.nan)
    return compute, reached & (first == scores.size - 1)


def frontier(curves: list[dict], levels: np.ndarray) -> dict[str, np.ndarray]:
    """Per level, the curve of `cell_curves` that reaches it with the least FLOPs: `compute` (C*,
    NaN where no curve reaches the level), `cell` (its index, -1 for none), `params` (N*) and
    `censored` (whether it got there at its last point)."""
    hits = [crossings(c["flops"], c["scores"], levels) for c in curves]
    compute = np.array([h[0] for h in hits]).reshape(len(curves), len(levels))
    censored = np.array([h[1] for h in hits]).reshape(len(curves), len(levels))
    ranked = np.where(np.isnan(compute), np.inf, compute)
    best, columns = ranked.argmin(0), np.arange(len(levels))
    reached = np.isfinite(ranked[best, columns])
    params = np.array([c["params"] for c in curves], dtype=float)
    return {"compute": np.where(reached, ranked[best, columns], np.nan), "cell": np.where(reached, best, -1),
            "params": np.where(reached, params[best], np.nan), "censored": reached & censored[best, columns]}


def power_law(compute: np.ndarray, params: np.ndarray) -> tuple[float | None, float | None, str | None]:
    """(b, a, None) of the least-squares line log10 N* = log10 a + b log10 C* through the levels
    reached with some training (C* > 0), or (None, None, why) where the frontier holds fewer than
    `MIN_FRONTIER_SIZES` distinct sizes: the levels then repeat two or one N*, and the slope says
    where the frontier switches size, not how N* grows with compute (one size alone gives b = 0)."""
    compute, params = np.asarray(compute, dtype=float), np.asarray(params, dtype=float)
    keep = np.isfinite(compute) & (compute > 0)
    sizes = len(set(params[keep]))
    if sizes < MIN_FRONTIER_SIZES:
        return None, None, (f"no exponent: {sizes} distinct size{'' if sizes == 1 else 's'} on the frontier, "
                            f"a power law needs at least {MIN_FRONTIER_SIZES}")
    slope, intercept = np.polyfit(np.log10(compute[keep]), np.log10(params[keep]), 1)
    return float(slope), float(10**intercept), None


def score_levels(curves: list[dict], chance: float | None, count: int) -> np.ndarray:
    """`count` evenly spaced levels from above the random-play level `chance` to the best seed-mean
    score (levels at or below random play take no training to reach); from the lowest score to the
    best where `chance` is None."""
    finite = np.concatenate([c["scores"][np.isfinite(c["scores"])] for c in curves])
    if finite.size == 0:
        return np.array([])
    if chance is None:
        return np.linspace(finite.min(), finite.max(), count)
    levels = np.linspace(chance, finite.max(), count + 1)[1:]
    return levels[levels > chance]


def interval(values: np.ndarray, discrete: bool = False) -> tuple[float, float] | None:
    """The central `CONFIDENCE` percentile interval of the finite `values` (None where there are
    none); `discrete` takes its ends from the values themselves (a parameter count that exists)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = 50 * (1 - CONFIDENCE)
    if discrete:
        return float(np.percentile(values, tail, method="lower")), float(np.percentile(values, 100 - tail,
                                                                                        method="higher"))
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_frontier(curves: list[dict], levels: np.ndarray, samples: int, seed: int = 0) -> dict:
    """The frontier and the exponent refitted on `samples` bootstrap resamples of the seeds: each
    (size, ratio) draws as many of its seed curves as it has, with replacement, and averages them.
    Per level the `CONFIDENCE` interval of C* and of N* over the resamples that reach the level and
    the share that do; the exponent's interval over the resamples with `MIN_FRONTIER_SIZES` sizes
    on the frontier, and their share. A cell with one seed adds no spread."""
    rng = np.random.default_rng(seed)
    compute, params = np.full((samples, len(levels)), np.nan), np.full((samples, len(levels)), np.nan)
    exponents = np.full(samples, np.nan)
    for i in range(samples):
        drawn = [{**c, "scores": seed_mean(c["seeds"][rng.integers(0, len(c["seeds"]), len(c["seeds"]))])}
                 for c in curves]
        point = frontier(drawn, levels)
        compute[i], params[i] = point["compute"], point["params"]
        exponent = power_law(point["compute"], point["params"])[0]
        exponents[i] = np.nan if exponent is None else exponent
    return {"compute_ci": [interval(column) for column in compute.T],
            "params_ci": [interval(column, discrete=True) for column in params.T],
            "reached_share": list(np.isfinite(compute).mean(0)),
            "exponent_ci": interval(exponents), "exponent_share": float(np.isfinite(exponents).mean())}


def intrinsic_performance(runs: list[dict], grid: np.ndarray, window_steps: float, levels: int | list[float] = LEVELS,
                          samples: int | None = None, seed: int = 0) -> dict:
    """Compute-optimal size per score level (Hilton et al. 2023), with bootstrap intervals.

    Each (size, ratio) gets its seed-mean score curve (`cell_curves`, smoothed over `window_steps`
    env steps) against training FLOPs. `levels` evenly spaced score levels run from above the
    random-play level (`random_level`) to the best seed-mean score (`score_levels`). For each level
    reached, C* is the least FLOPs at which any curve reaches it, interpolated between grid points
    (`crossings`), N* the parameter count of that curve's size, and `size`, `train_ratio` name the
    curve; `censored` marks a level that curve first reached at its last evaluation point, where
    its runs' budget ended, so that the level lies at the edge of what the budget measured. A
    least-squares line through (log C*, log N*) over the levels gives the power law N* = a C*^b
    (`power_law`; none, with `why`, from fewer than `MIN_FRONTIER_SIZES` distinct sizes).
    Intervals: `bootstrap_frontier` over `samples` resamples of the seeds (default: dreamer.protocols'
    BOOTSTRAP_SAMPLES); the fit's levels stay those of the full data.
    """
    from dreamer.protocols import BOOTSTRAP_SAMPLES

    curves = cell_curves(runs, grid, window_steps)
    chance = random_level(runs)
    levels = score_levels(curves, chance, levels) if isinstance(levels, int) else np.asarray(levels, dtype=float)
    point = frontier(curves, levels)
    reached = np.isfinite(point["compute"])
    exponent, coefficient, why = power_law(point["compute"], point["params"])
    spread = bootstrap_frontier(curves, levels[reached], BOOTSTRAP_SAMPLES if samples is None else samples, seed)
    cells = [curves[i] for i in point["cell"][reached]]
    return {"levels": [float(v) for v in levels[reached]], "compute": [float(v) for v in point["compute"][reached]],
            "params": [int(c["params"]) for c in cells], "size": [c["size"] for c in cells],
            "train_ratio": [c["train_ratio"] for c in cells], "censored": [bool(v) for v in point["censored"][reached]],
            "random_level": chance, "window_steps": float(window_steps), "exponent": exponent,
            "coefficient": coefficient, "why": why if reached.any() else "no level above random play was reached",
            **spread}


def _span(bounds: tuple[float, float] | None, form: str) -> str:
    return "n/a" if bounds is None else f"[{bounds[0]:{form}}, {bounds[1]:{form}}]"


def describe_fit(fit: dict) -> str:
    """One line: the power law with its bootstrap interval, or why there is none."""
    head = "compute-optimal size vs compute: "
    if fit["exponent"] is None:
        return head + fit["why"]
    return (head + f"N* = {fit['coefficient']:.3g} * C^b with b = {fit['exponent']:.3f}, {CONFIDENCE:.0%} "
            f"bootstrap interval {_span(fit['exponent_ci'], '.3f')} (seeds resampled within each size and ratio; "
            f"{fit['exponent_share']:.0%} of resamples had {MIN_FRONTIER_SIZES} or more sizes on the frontier); "
            f"{len(fit['compute'])} levels, {len(set(fit['params']))} sizes")


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
    lines += ["", "Intrinsic performance (Hilton et al. 2023): " + describe_fit(fit), "", *frontier_table(fit)]
    atomic_write(out / "summary.md", lambda f: f.write(("\n".join(lines) + "\n").encode()))


def frontier_table(fit: dict) -> list[str]:
    """The frontier's levels as markdown rows: C* and N* with their bootstrap intervals, the size and
    train ratio whose seed-mean curve reaches the level first, and the censoring mark."""
    chance = "unknown (no episode ended before a first update)" if fit["random_level"] is None else \
        f"{fit['random_level']:.4g}"
    lines = [f"Curves smoothed over windows of {fit['window_steps']:,.0f} env steps; random play scores {chance}. "
             f"Intervals: {CONFIDENCE:.0%} bootstrap over seeds; censored: reached only at the run's last "
             f"evaluation point, where its budget ended.", "",
             "| score level | C* (training FLOPs) | C* interval | N* (parameters) | N* interval | size | "
             "train ratio | resamples reaching it | censored |", "|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for i, level in enumerate(fit["levels"]):
        lines.append(f"| {level:.4g} | {fit['compute'][i]:.4g} | {_span(fit['compute_ci'][i], '.3g')} | "
                     f"{fit['params'][i]:,} | {_span(fit['params_ci'][i], ',.0f')} | {fit['size'][i]} | "
                     f"{fit['train_ratio'][i]:g} | {fit['reached_share'][i]:.0%} | {'yes' if fit['censored'][i] else ''} |")
    return lines


def save_png(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))



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


def plot_seeds(ax, runs: list[dict], grid: np.ndarray, window_steps: float, label: str) -> list[float]:
    """The mean score curve of `runs` (seeds of one setting, smoothed over `window_steps` env steps)
    with its t band on `ax`; returns every run's finite scores, for `clip_to_runs`."""
    curves = np.array([score_curve(r, grid, window_steps) for r in runs])
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


def score_label(runs: list[dict], window_steps: float) -> str:
    """The y label of a score curve: what is averaged, over which window of env steps."""
    crafter = any(success_rates(run["_episodes"]) for run in runs)
    measure = "Crafter score (%)" if crafter else "mean episode return"
    return f"{measure},\nepisodes ending in the last {window_steps:,.0f} steps"


def _plot_curves(plt, runs: list[dict], sizes: list[str], ratios: list[float], grid: np.ndarray,
                 window_steps: float):
    fig, axes = plt.subplots(1, len(ratios), figsize=(4 * len(ratios), 3.2), squeeze=False, sharey=True)
    chance = random_level(runs)
    seen = [] if chance is None else [chance]
    for ax, ratio in zip(axes[0], ratios):
        for size in sizes:
            group = [r for r in runs if r["size"] == size and r["train_ratio"] == ratio]
            if not group:
                continue
            seen += plot_seeds(ax, group, grid, window_steps, f"{size} ({len(group)} seed{'s' if len(group) > 1 else ''})")
        if chance is not None:
            ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="random actions")
        ax.set_title(f"train ratio {ratio:g}")
        ax.set_xlabel("env steps (policy steps, all envs)")
    clip_to_runs(axes[0, 0], seen)
    axes[0, 0].set_ylabel(score_label(runs, window_steps))
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


def _plot_flops(plt, runs: list[dict], grid: np.ndarray, window_steps: float):
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        steps = grid[grid <= run["policy_steps"]]
        ax.plot(flops_at(run, steps), score_curve(run, steps, window_steps), alpha=0.5, label=run["run"])
    flops, best = flops_frontier(cell_curves(runs, grid, window_steps))
    if flops.size:
        ax.plot(flops, best, color="black", lw=2, label="frontier (seed means)")
    chance = random_level(runs)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="random actions")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs (matmuls and convolutions)")
    ax.set_ylabel(score_label(runs, window_steps))
    ax.legend(fontsize=6)
    return fig


def _plot_intrinsic(plt, fit: dict):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(fit["compute"], fit["levels"], marker="o")
    left.set_xscale("log")
    left.set_xlabel("least training FLOPs to reach the level (any size)")
    left.set_ylabel("score level")
    censored = np.array(fit["censored"], dtype=bool)
    compute, params = np.array(fit["compute"]), np.array(fit["params"])
    right.scatter(compute[~censored], params[~censored], label="compute-optimal size")
    if censored.any():
        right.scatter(compute[censored], params[censored], marker="x", label="reached at a run's last point")
    if fit["exponent"] is not None:
        line = np.array([min(fit["compute"]), max(fit["compute"])])
        label = f"N* = {fit['coefficient']:.3g} C^{fit['exponent']:.3f}, b in {_span(fit['exponent_ci'], '.3f')}"
        right.plot(line, fit["coefficient"] * line ** fit["exponent"], color="black", label=label)
    else:
        right.set_title(fit["why"], fontsize=8)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("training FLOPs")
    right.set_ylabel("parameters")
    right.legend(fontsize=7)
    return fig


def write_plots(runs: list[dict], out: Path) -> dict:
    """The four PNG plots; returns the intrinsic-performance fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(run["size"] for run in sorted(runs, key=lambda run: run["params"])))
    ratios = sorted({run["train_ratio"] for run in runs})
    grid, window_steps = evaluation_grid(runs), smoothing_window(runs)
    fit = intrinsic_performance(runs, grid, window_steps)
    figures = {
        "returns_vs_steps.png": _plot_curves(plt, runs, sizes, ratios, grid, window_steps),
        "final_heatmap.png": _plot_heatmap(plt, runs, sizes, ratios),
        "returns_vs_flops.png": _plot_flops(plt, runs, grid, window_steps),
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
    fit = write_plots(runs, out)
    write_tables(runs, out, fit)
    return runs, fit
