"""`dreamer report DIR`: tables and plots of a sweep's runs.

Writes `summary.csv` and `summary.md` (one row per run, the final score per size and ratio, the
compute frontier and its fit) and PNG plots:
  returns_vs_steps.png   score against env steps, a panel per train ratio, a colour per size: each
                         seed thin, the mean over seeds thick with a band of +- 1 standard error, the
                         random-play level as a dashed line;
  final_heatmap.png      final score as a size x ratio heatmap: the mean over seeds and each seed's
                         score, cells at or below random play hatched;
  returns_vs_flops.png   score against training FLOPs from shortly before the frontier rises: per size
                         and ratio (colour by size, line style by ratio) the seeds thin and their
                         mean, with the compute-efficient frontier of the seed means;
  intrinsic_performance.png  for each score level the least compute any size needs to reach it
                         (coloured by that size), and the compute-optimal size against compute with
                         the frontier's power law and each ratio's N_opt(C) from the joint fit (Hilton
                         et al. 2023, "Scaling laws for single-agent reinforcement learning");
  joint_fit.png          per train ratio with a joint fit, its points and Eq. 1's curve for each size;
  data_efficiency.png    env steps to reach three target scores against train ratio, a line per size;
  ratio_frontiers.png    per target score, env steps against FLOPs of the cheapest size at each ratio;
  returns_vs_wall_clock.png  score against wall-clock seconds, where the runs log their timing.
The paper's own method, intrinsic performance fitted as a joint power law in parameters and env
steps (its Eq. 1) per train ratio with the compute-optimal size derived from it, is `joint_fit`;
`summary.md` tables it above the frontier's simpler fit, and the analyses of the plots above.
The score of a set of episodes is their mean return, or for Crafter runs (episodes that log
achievements) the Crafter score of their success rates, in %: the curves, the final score and the
random-play level are all in that one unit. The curves (plots and fit) smooth over a window of env
steps (`SMOOTHING_SHARE` of the longest run), the same for every run; a run's final score in the
tables and the heatmap is the score of its last `window` episodes. Spreads over seeds are sample
standard deviations (ddof=1) in the tables and the standard errors of the bands alike.
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

ENV_RATE, UPDATE_RATE = "perf/env_steps_per_second", "perf/updates_per_second"  # metrics.jsonl's timings
SMOOTHING_SHARE = 0.1  # the curves' window of env steps, as a share of the longest run's steps
GRID_POINTS = 40  # evaluation points along the runs, evenly spaced in env steps
LEVELS = 20  # score levels of the compute frontier
MIN_FRONTIER_SIZES = 3  # distinct compute-optimal sizes below which no power law is fitted
CONFIDENCE = 0.95  # of the bands around the mean over seeds and of the bootstrap intervals

SEED_WIDTH, MEAN_WIDTH = 0.6, 1.8  # line widths of one seed's curve and of the mean over seeds
SEED_ALPHA, BAND_ALPHA = 0.45, 0.18  # opacity of one seed's curve and of the band around the mean
SHOWN_SEEDS = 4  # the heatmap lists each seed's score up to this many seeds, their spread beyond
LIGHT_CELL = 1.6  # a heatmap colour whose R + G + B exceeds this takes black text, else white
DENSE_DECADES = 2  # a log axis spanning up to this many decades gets ticks at 1, 2 and 5 of each
MAX_TICKS = 8  # at most this many major ticks on a log axis
RISE_SHARE = 0.05  # the frontier has risen once it gained this share of its whole rise
LEAD_IN = 10.0  # the FLOPs axis starts this factor below the FLOPs where the frontier first rises
FLOPS_MARGIN = 1.5  # the FLOPs axis runs from the first update / this to the largest FLOPs * this
LEGEND_ROWS = 14  # legend entries per column outside a plot
RATIO_MARGIN = 1.4  # a train-ratio axis runs from the least ratio / this to the largest * this
NOTE_BELOW = -0.22  # height of a note under a panel's x label, in axes fractions
DODGE = 1.06  # factor along a log x axis between neighbouring sizes' markers at one ratio
LAW_POINTS = 50  # points along a fitted power law
SIZE_COLOURS = "viridis"  # colormap sampled evenly along the sizes, smallest (dark) to largest
SIZE_COLOUR_RANGE = (0.0, 0.85)  # the part of it used: its light yellow end is hard to see on white
LEVEL_COLOURS = "plasma"  # colormap of the target scores in the ratio-frontier plot
RATIO_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 4)), (0, (8, 2)))  # line style per ratio
RATIO_MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # marker per ratio where ratios are points
FONT = 8  # legend and annotation font size (points)

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
        seconds = wall_clock(run)
        runs.append({
            "run": run.name, **compute, "episodes": len(episodes), "wall_clock_s": seconds,
            "final_score": final_score(episodes, window), "_episodes": episodes,
            "_clock": clock_curve(read_jsonl(run / "metrics.jsonl"), seconds),
        })
    return runs


def clock_curve(records: list[dict], total: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, seconds): the wall clock at each record of a run's `metrics.jsonl` that logs its
    interval's env-step and update rates. An interval took its env steps over the env rate plus its
    updates over the update rate; those seconds leave out logging and checkpoints (and count twice
    what overlapped), so they are scaled to sum to the run's `total` (all its attempts). None where
    no record logs the rates or `total` is not positive."""
    timed = [r for r in records if r.get(ENV_RATE)]
    if not timed or total <= 0:
        return None
    steps = np.array([0.0] + [r["step"] for r in timed])
    updates = np.array([0.0] + [r.get("perf/updates", 0.0) for r in timed])
    rates = [(r[ENV_RATE], r.get(UPDATE_RATE)) for r in timed]
    seconds = np.cumsum([0.0] + [ds / env + (du / learn if learn else 0.0)
                                 for ds, du, (env, learn) in zip(np.diff(steps), np.diff(updates), rates)])
    return steps, seconds * (total / seconds[-1]) if seconds[-1] > 0 else seconds


def wall_clock_at(run: dict, steps: np.ndarray) -> np.ndarray | None:
    """The run's wall-clock seconds by each of `steps` (`clock_curve`, interpolated), None unlogged."""
    clock = run.get("_clock")
    return None if clock is None else np.interp(np.asarray(steps, dtype=float), *clock)


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
    FLOPs at those steps and the seeds' mean wall clock there (`seconds`, None unless every seed
    logged it, `wall_clock_at`)."""
    curves = []
    for key in sorted({(r["size"], r["train_ratio"]) for r in runs}):
        group = [r for r in runs if (r["size"], r["train_ratio"]) == key]
        steps = grid[grid <= min(r["policy_steps"] for r in group)]
        seeds = np.array([score_curve(r, steps, window_steps) for r in group]).reshape(len(group), len(steps))
        clocks = [wall_clock_at(r, steps) for r in group]
        curves.append({"size": key[0], "train_ratio": key[1], "params": group[0]["params"], "steps": steps,
                       "flops": flops_at(group[0], steps), "seeds": seeds, "scores": seed_mean(seeds),
                       "window": float(window_steps),
                       "seconds": None if any(c is None for c in clocks) else np.mean(clocks, 0)})
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


def resample(curves: list[dict], rng: np.random.Generator) -> list[dict]:
    """`curves` with each (size, ratio)'s seed-mean score recomputed from as many of its seed curves
    as it has, drawn with replacement (one bootstrap resample of the seeds)."""
    return [{**c, "scores": seed_mean(c["seeds"][rng.integers(0, len(c["seeds"]), len(c["seeds"]))])}
            for c in curves]


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
        point = frontier(resample(curves, rng), levels)
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

    This frontier fit is a simple second view. The paper's own method, Eq. 1 fitted per train ratio
    with N_opt(C) derived from it, is `joint` (`joint_fits`, `samples` or `JOINT_SAMPLES` resamples).
    """
    from dreamer.protocols import BOOTSTRAP_SAMPLES

    curves = cell_curves(runs, grid, window_steps)
    chance = random_level(runs)
    joint = joint_fits(curves, chance, levels, JOINT_SAMPLES if samples is None else samples, seed)
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
            "joint": joint, **spread}


# The joint fit of Hilton, Tang and Schulman (2023), "Scaling laws for single-agent reinforcement
# learning" (arXiv 2301.13442): intrinsic performance I as a power law in parameters N and env steps E.
EARLY_SHARE = 1 / 64  # App. A: at least the first 1/64 of a run's training is left out of the fit
EXPONENT_BOUNDS = (0.01, 10.0)  # range searched for alpha_N and alpha_E; a fit ending at either end is refused
EDGE_TOLERANCE = 1e-3  # how close (in log) an exponent may come to EXPONENT_BOUNDS before it counts as there
MIN_SHARED_LEVELS = 3  # levels reached by two or more sizes, below which Eq. 1 is not fitted
JOINT_SAMPLES = 200  # bootstrap resamples of the joint fit (each a nonlinear least-squares fit)
MIN_TERM_SHARE = 0.1  # share of I^-beta each term of Eq. 1 must hold at some data point for its exponent to count
STARTS = (0.3, 1.0, 3.0)  # starting values tried for each exponent of the full data's fit
DIFFERENCE_STEP = 1e-7  # forward-difference step in the log constants for the fit's Jacobian
MAX_EVALUATIONS = 500  # model evaluations one least-squares fit may take before it counts as failed
JOINT_KEYS = ("alpha_n", "alpha_e", "n_c", "e_c", "beta", "exponent", "coefficient")


def flops_per_step(curves: list[dict]) -> tuple[float, float]:
    """(k, gamma) of the least-squares line log f = log k + gamma log N through the cells' training
    FLOPs per env step f (FLOPs at a cell's last evaluation point over its steps there). The paper
    takes compute proportional to N E (Sec. 2.2, Lemma 1); here C = k N^gamma E is measured, since an
    update's FLOPs need not grow in proportion to the parameters (convolutions, the replayed batch)."""
    sizes = np.log([c["params"] for c in curves])
    rates = np.log([c["flops"][-1] / c["steps"][-1] for c in curves])
    if len(set(sizes)) < 2:
        return float(np.exp(rates.mean())), 1.0
    gamma, log_k = np.polyfit(sizes, rates, 1)
    return float(np.exp(log_k)), float(gamma)


def lemma_beta(alpha_n: float, alpha_e: float, gamma: float = 1.0) -> float:
    """beta of Eq. 1 (Lemma 1): the one value for which the least compute C = k N^gamma E reaching
    intrinsic performance I grows in proportion to I, as the definition (I = C on the
    compute-efficient frontier, Sec. 2.1) requires; alpha_N alpha_E / (alpha_N + alpha_E) at gamma 1."""
    return alpha_n * alpha_e / (gamma * alpha_e + alpha_n)


def _shares(alpha_n: float, alpha_e: float, gamma: float) -> tuple[float, float, float]:
    """(p, q, w) = (gamma / alpha_N, 1 / alpha_E, p + q): on the frontier the two terms of Eq. 1 hold
    the shares p / w and q / w of I^-beta."""
    p, q = gamma / alpha_n, 1.0 / alpha_e
    return p, q, p + q


def critical_steps(alpha_n: float, alpha_e: float, n_c: float, k: float, gamma: float = 1.0) -> float:
    """E_c of Eq. 1 that makes the least compute reaching I equal I itself (Lemma 1's constant):
    minimising k N^gamma E over Eq. 1 puts the shares p/w, q/w (`_shares`) on its two terms, and
    k N_c^gamma E_c (p/w)^-p (q/w)^-q = 1."""
    p, q, w = _shares(alpha_n, alpha_e, gamma)
    return (p / w) ** p * (q / w) ** q / (k * n_c**gamma)


def log_intrinsic(params: np.ndarray, steps: np.ndarray, alpha_n: float, alpha_e: float, n_c: float,
                  e_c: float, beta: float) -> np.ndarray:
    """log I of Eq. 1 (Sec. 2.2): I^-beta = (N_c / N)^alpha_N + (E_c / E)^alpha_E."""
    terms = np.logaddexp(alpha_n * (np.log(n_c) - np.log(params)), alpha_e * (np.log(e_c) - np.log(steps)))
    return -terms / beta


def optimal_size(alpha_n: float, alpha_e: float, n_c: float, gamma: float = 1.0) -> tuple[float, float]:
    """(coefficient, exponent) of the compute-optimal size N_opt(C) = coefficient * C^exponent that
    Eq. 1 implies (Sec. 2.2): on the frontier I = C and (N_c / N)^alpha_N = (p/w) C^-beta, so
    N_opt = N_c (p/w)^(-1/alpha_N) C^(beta/alpha_N), an exponent alpha_E / (alpha_N + alpha_E) at gamma 1."""
    p, _, w = _shares(alpha_n, alpha_e, gamma)
    beta = lemma_beta(alpha_n, alpha_e, gamma)
    return n_c * (p / w) ** (-1 / alpha_n), beta / alpha_n


def window_centres(curve: dict) -> np.ndarray:
    """The env step each point of a `cell_curves` curve speaks for: the centre of its smoothing
    window (s - window, s] (of (0, s] early on). The mean of the episodes in a trailing window is the
    score half a window back, and a crossing placed at the window's end would lag by that much: by
    a large share of E early in a run and a small one late, which steepens the fitted E dependence."""
    steps = np.asarray(curve["steps"], dtype=float)
    return steps - np.minimum(curve.get("window", 0.0), steps) / 2


def level_steps(curve: dict, levels: np.ndarray) -> np.ndarray:
    """Per level, the env steps at which the seed-mean curve of `curve` first reaches it, linearly
    interpolated between its points' window centres (`window_centres`); NaN where it never does,
    where no earlier point lies below it (when it got there is unknown), or before `EARLY_SHARE` of
    the cell's last evaluated step (App. A leaves early training out)."""
    steps, scores = window_centres(curve), curve["scores"]
    reached, _ = crossings(steps, scores, levels)
    if scores.size == 0:
        return reached
    first = (scores[None, :] >= np.asarray(levels, dtype=float)[:, None]).argmax(1)
    unknown = (first == 0) | ~np.isfinite(scores[np.maximum(first - 1, 0)])
    return np.where(unknown | (reached < EARLY_SHARE * steps[-1]), np.nan, reached)


def _unpack(theta: np.ndarray, k: float, gamma: float) -> dict:
    alpha_n, alpha_e, n_c = np.exp(theta[:3])
    return {"alpha_n": alpha_n, "alpha_e": alpha_e, "n_c": n_c, "e_c": critical_steps(alpha_n, alpha_e, n_c, k, gamma),
            "beta": lemma_beta(alpha_n, alpha_e, gamma)}


def _solve(params: np.ndarray, steps: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: float, gamma: float,
           start: np.ndarray):
    """Least squares in log I over theta = (log alpha_N, log alpha_E, log N_c, log I per level); the
    Jacobian is one per point for its level's log I, and by forward differences (`DIFFERENCE_STEP`)
    for the three constants."""
    from scipy.optimize import least_squares

    level = np.searchsorted(np.unique(cols), cols)
    points = np.arange(rows.size)

    def model(theta):
        return log_intrinsic(params[rows], steps[rows, cols], **_unpack(theta, k, gamma))

    def jacobian(theta):
        base, grad = model(theta), np.zeros((rows.size, theta.size))
        grad[points, 3 + level] = 1.0
        for i in range(3):
            shifted = theta.copy()
            shifted[i] += DIFFERENCE_STEP
            grad[:, i] = (base - model(shifted)) / DIFFERENCE_STEP
        return grad

    low, high = np.full(start.size, -np.inf), np.full(start.size, np.inf)
    low[:2], high[:2] = np.log(EXPONENT_BOUNDS)
    return least_squares(lambda theta: theta[3:][level] - model(theta), np.clip(start, low + EDGE_TOLERANCE,
                         high - EDGE_TOLERANCE), jac=jacobian, bounds=(low, high), max_nfev=MAX_EVALUATIONS)


def term_shares(theta: np.ndarray, params: np.ndarray, steps: np.ndarray, k: float, gamma: float) -> np.ndarray:
    """The largest share of I^-beta that the size term and the steps term of Eq. 1 hold at any of the
    points (`params`, `steps`): a term below `MIN_TERM_SHARE` everywhere leaves its exponent free
    (every size far from its plateau, or every run on it)."""
    constants = _unpack(theta, k, gamma)
    size = constants["alpha_n"] * (np.log(constants["n_c"]) - np.log(params))
    data = constants["alpha_e"] * (np.log(constants["e_c"]) - np.log(steps))
    total = np.logaddexp(size, data)
    return np.array([np.exp(size - total).max(), np.exp(data - total).max()])


def _starts(params: np.ndarray, steps: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: float, gamma: float,
            start: np.ndarray | None) -> list[np.ndarray]:
    """Starting points: each level's I at most the least compute any size spent reaching it (the
    definition, Sec. 2.1), N_c the smallest size, and `STARTS` for the exponents (or `start`'s)."""
    spent = np.log(k * params[rows] ** gamma * steps[rows, cols])
    levels = np.array([spent[cols == j].min() for j in np.unique(cols)])
    if start is not None:
        return [np.concatenate([start[:3], levels])]
    return [np.concatenate([np.log([a, b, params.min()]), levels]) for a in STARTS for b in STARTS]


def joint_fit(curves: list[dict], levels: np.ndarray, start: np.ndarray | None = None) -> dict:
    """Eq. 1 of Hilton et al. (2023, Sec. 2.2) fitted to the cells of `curves` (one train ratio: the
    family of sizes whose intrinsic performance is defined, Sec. 2.1).

    Intrinsic performance is the least training compute any size of the family needs to reach a
    return (Sec. 2.1); the paper fits Eq. 1 jointly with a monotonic map from return to I (App. A).
    Here each score level j gets a free log I_j (the map, on the levels), and every size n that
    reaches level j after `EARLY_SHARE` of its run, at env step E_nj (`level_steps`), gives one
    residual log I_j - log I(N_n, E_nj) of Eq. 1; least squares over alpha_N, alpha_E, N_c and the
    log I_j. beta and E_c are not free: Lemma 1 sets beta, and E_c makes I equal compute on the
    frontier, with compute C = k N^gamma E from the runs' FLOPs (`flops_per_step`). Only levels that two
    or more sizes reach constrain the constants (one size's point is matched by its level's I_j).
    From the constants, N_opt(C) (`optimal_size`); `data` holds each point's size, N, E and fitted I_j.
    `why` is set, and nothing fitted, with fewer than
    `MIN_FRONTIER_SIZES` sizes or `MIN_SHARED_LEVELS` shared levels, with an exponent at the edge
    of `EXPONENT_BOUNDS`, or with a term of Eq. 1 that stays below `MIN_TERM_SHARE` at every point
    (`term_shares`): the data do not determine that exponent."""
    k, gamma = flops_per_step(curves)
    params = np.array([c["params"] for c in curves], dtype=float)
    steps = np.array([level_steps(c, levels) for c in curves]).reshape(len(curves), len(levels))
    shared = np.isfinite(steps).sum(0) >= 2
    rows, cols = np.nonzero(np.isfinite(steps) & shared[None, :])
    sizes = len(set(params[rows]))
    counts = {"k": k, "gamma": gamma, "points": int(rows.size), "sizes": sizes, "levels": int(shared.sum())}
    if sizes < MIN_FRONTIER_SIZES or shared.sum() < MIN_SHARED_LEVELS:
        return {**counts, "why": (f"no joint fit: {sizes} size{'' if sizes == 1 else 's'} and {int(shared.sum())} "
                                  f"score level{'' if shared.sum() == 1 else 's'} reached by two or more sizes; Eq. 1 "
                                  f"needs at least {MIN_FRONTIER_SIZES} sizes and {MIN_SHARED_LEVELS} such levels")}
    best = min((_solve(params, steps, rows, cols, k, gamma, s) for s in _starts(params, steps, rows, cols, k, gamma,
                                                                                  start)), key=lambda r: r.cost)
    edge = np.abs(best.x[:2, None] - np.log(EXPONENT_BOUNDS)[None, :]).min() < 2 * EDGE_TOLERANCE
    if not best.success or edge:
        return {**counts, "why": "no joint fit: an exponent ran to the edge of the searched range "
                                 f"{EXPONENT_BOUNDS} (the data do not determine it)"}
    shares = term_shares(best.x, params[rows], steps[rows, cols], k, gamma)
    if shares.min() < MIN_TERM_SHARE:
        term = ("size term (N_c/N)^alpha_N: no size nears its plateau", "steps term (E_c/E)^alpha_E: every run is on "
                "its plateau")[int(shares.argmin())]
        return {**counts, "why": f"no joint fit: the {term} (at most {shares.min():.1%} of I^-beta at any point, "
                                 f"{MIN_TERM_SHARE:.0%} needed), so the data do not determine its exponent"}
    constants = _unpack(best.x, k, gamma)
    coefficient, exponent = optimal_size(constants["alpha_n"], constants["alpha_e"], constants["n_c"], gamma)
    fitted = np.exp(best.x[3:][np.searchsorted(np.unique(cols), cols)])
    return {**counts, **{key: float(v) for key, v in constants.items()}, "coefficient": float(coefficient),
            "exponent": float(exponent), "rms": float(np.sqrt(2 * best.cost / rows.size)), "theta": best.x,
            "data": {"size": np.array([curves[r]["size"] for r in rows]), "params": params[rows],
                     "steps": steps[rows, cols], "intrinsic": fitted}, "why": None}


def bootstrap_joint(curves: list[dict], levels: np.ndarray, point: dict, samples: int, seed: int = 0) -> dict:
    """`CONFIDENCE` intervals of `JOINT_KEYS` over `samples` refits of `joint_fit` on bootstrap
    resamples of the seeds (`resample`), each started from the full data's constants; `share`: the
    resamples that gave a fit."""
    rng = np.random.default_rng(seed)
    values = np.full((samples, len(JOINT_KEYS)), np.nan)
    for i in range(samples):
        fit = joint_fit(resample(curves, rng), levels, start=point["theta"])
        if fit["why"] is None:
            values[i] = [fit[key] for key in JOINT_KEYS]
    return {"ci": {key: interval(column) for key, column in zip(JOINT_KEYS, values.T)},
            "share": float(np.isfinite(values[:, 0]).mean())}


def joint_fits(curves: list[dict], chance: float | None, levels: int | np.ndarray, samples: int,
               seed: int = 0) -> list[dict]:
    """`joint_fit` with bootstrap intervals (`bootstrap_joint`) for each train ratio's sizes, on
    `levels` (a count: evenly spaced from above random play, `score_levels`, per ratio)."""
    fits = []
    for ratio in sorted({c["train_ratio"] for c in curves}):
        family = [c for c in curves if c["train_ratio"] == ratio]
        marks = score_levels(family, chance, levels) if isinstance(levels, int) else np.asarray(levels, dtype=float)
        fit = joint_fit(family, marks)
        spread = bootstrap_joint(family, marks, fit, samples, seed) if fit["why"] is None else {}
        fits.append({"train_ratio": ratio, **fit, **spread})
    return fits


# The analyses scaling studies report beside the frontier: data efficiency (env steps to reach a
# score against size and ratio, as DreamerV3's scaling figures) and, per train ratio, the env steps
# and compute the cheapest size needs (the data-compute trade-off across ratios of Rybkin et al. 2025).
EFFICIENCY_SHARES = (0.25, 0.5, 0.75)  # target scores: these shares of the way from random play to the best


def efficiency_levels(curves: list[dict], chance: float | None) -> np.ndarray:
    """The scores `EFFICIENCY_SHARES` of the way from random play (the lowest seed-mean score where
    `chance` is None) to the best seed-mean score of `curves`."""
    finite = np.concatenate([c["scores"][np.isfinite(c["scores"])] for c in curves])
    if finite.size == 0:
        return np.array([])
    base = finite.min() if chance is None else chance
    return base + np.array(EFFICIENCY_SHARES) * (finite.max() - base)


def steps_to_reach(curve: dict, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per level, the env step at which the seed-mean curve of `curve` first reaches it (`crossings`
    on its window centres, `window_centres`; NaN where never) and whether at its last point."""
    return crossings(window_centres(curve), curve["scores"], levels)


def data_efficiency(curves: list[dict], levels: np.ndarray, samples: int, seed: int = 0) -> list[dict]:
    """Per (size, ratio): `steps` to reach each of `levels` (`steps_to_reach`), `censored`, and over
    `samples` bootstrap resamples of the seeds (`resample`) the `CONFIDENCE` interval of the steps
    among the resamples that reach the level (`interval`) and the share that do (`reached_share`)."""
    rng = np.random.default_rng(seed)
    drawn = np.array([[steps_to_reach(c, levels)[0] for c in resample(curves, rng)] for _ in range(samples)])
    drawn = drawn.reshape(samples, len(curves), len(levels))
    rows = []
    for i in sorted(range(len(curves)), key=lambda i: (curves[i]["params"], curves[i]["train_ratio"])):
        curve = curves[i]
        steps, censored = steps_to_reach(curve, levels)
        rows.append({"size": curve["size"], "train_ratio": curve["train_ratio"], "params": curve["params"],
                     "steps": steps, "censored": censored, "ci": [interval(column) for column in drawn[:, i].T],
                     "reached_share": np.isfinite(drawn[:, i]).mean(0)})
    return rows


def ratio_frontiers(curves: list[dict], levels: np.ndarray) -> list[dict]:
    """Per train ratio and level, the size whose seed-mean curve reaches the level with the least
    training FLOPs (`frontier` over that ratio's sizes): the env `steps` it took (`steps_to_reach`)
    and its training FLOPs by then (`compute`), NaN where no size reaches the level, and `censored`
    where that was at its last point."""
    rows = []
    for ratio in sorted({c["train_ratio"] for c in curves}):
        family = [c for c in curves if c["train_ratio"] == ratio]
        point = frontier(family, levels)
        steps = np.array([steps_to_reach(family[cell], [level])[0][0] if cell >= 0 else np.nan
                          for cell, level in zip(point["cell"], levels)])
        compute = np.array([np.interp(e, family[cell]["steps"], family[cell]["flops"]) if cell >= 0 else np.nan
                            for cell, e in zip(point["cell"], steps)])
        rows.append({"train_ratio": ratio, "compute": compute, "steps": steps,
                     "size": [family[cell]["size"] if cell >= 0 else None for cell in point["cell"]],
                     "censored": point["censored"]})
    return rows


def study_analyses(runs: list[dict], grid: np.ndarray, window_steps: float, samples: int | None = None,
                   seed: int = 0) -> dict:
    """`data_efficiency` and `ratio_frontiers` at the `efficiency_levels` of `runs`."""
    from dreamer.protocols import BOOTSTRAP_SAMPLES

    curves = cell_curves(runs, grid, window_steps)
    levels = efficiency_levels(curves, random_level(runs))
    return {"efficiency_levels": levels, "ratio_frontiers": ratio_frontiers(curves, levels),
            "efficiency": data_efficiency(curves, levels, BOOTSTRAP_SAMPLES if samples is None else samples, seed),
            "clock_frontier": clock_frontier(curves, levels)}


def clock_frontier(curves: list[dict], levels: np.ndarray) -> dict | None:
    """Per level, the (size, ratio) whose seed-mean curve reaches it soonest in wall-clock seconds
    (`frontier` with seconds for FLOPs): `seconds` (NaN where none does), `size`, `train_ratio`,
    `censored`. Over the cells whose runs all logged their timing; None where none did."""
    timed = [{**c, "flops": c["seconds"]} for c in curves if c["seconds"] is not None]
    if not timed:
        return None
    point = frontier(timed, levels)
    cells = [timed[i] if i >= 0 else None for i in point["cell"]]
    return {"seconds": point["compute"], "censored": point["censored"],
            "size": [c and c["size"] for c in cells], "train_ratio": [c and c["train_ratio"] for c in cells]}


def _steps_cell(steps: float, censored: bool, bounds: tuple[float, float] | None = None) -> str:
    if not np.isfinite(steps):
        return "not reached"
    return f"{steps:,.0f}" + (f" {_span(bounds, ',.0f')}" if bounds is not None else "") + (" (censored)" if censored
                                                                                        else "")


def efficiency_table(study: dict) -> list[str]:
    """Markdown: env steps each (size, ratio) needs to reach each target score, with intervals; then per
    ratio the cheapest size's steps and FLOPs at each target."""
    levels = study["efficiency_levels"]
    heads = [f"{share:.0%} ({level:.4g})" for share, level in zip(EFFICIENCY_SHARES, levels)]
    lines = [f"Data efficiency: env steps to reach a score {', '.join(f'{s:.0%}' for s in EFFICIENCY_SHARES)} of the "
             f"way from random play to the best seed-mean score (seed-mean curves, at the centres of their "
             f"smoothing windows; {CONFIDENCE:.0%} bootstrap intervals over seeds; censored: at the run's last point).",
             "", "| size | train ratio | " + " | ".join(heads) + " |", "|---|---:|" + "---:|" * len(levels)]
    for row in study["efficiency"]:
        cells = [_steps_cell(s, c, b) for s, c, b in zip(row["steps"], row["censored"], row["ci"])]
        lines.append(f"| {row['size']} | {row['train_ratio']:g} | " + " | ".join(cells) + " |")
    lines += ["", "Per train ratio, the size that reaches each score with the least training FLOPs: its env steps "
              "and FLOPs there (the data-compute trade-off across ratios).", "",
              "| train ratio | " + " | ".join(heads) + " |", "|---:|" + "---|" * len(levels)]
    for row in study["ratio_frontiers"]:
        cells = [f"{_steps_cell(s, c)} steps, {f:.3g} FLOPs ({size})" if np.isfinite(f) else "not reached"
                 for s, f, size, c in zip(row["steps"], row["compute"], row["size"], row["censored"])]
        lines.append(f"| {row['train_ratio']:g} | " + " | ".join(cells) + " |")
    clock = study.get("clock_frontier")
    if clock is None:
        return lines + ["", "Wall clock: no run logged its env-step and update rates (metrics.jsonl)."]
    cells = [f"{t:,.0f} s ({size} r{ratio:g}{', censored' if late else ''})" if np.isfinite(t) else "not reached"
             for t, size, ratio, late in zip(clock["seconds"], clock["size"], clock["train_ratio"], clock["censored"])]
    return lines + ["", "Wall clock: the size and ratio whose seed-mean curve reaches each score soonest (the "
                    "runs' seconds spread over their steps as metrics.jsonl's env-step and update rates say).", "",
                    "| " + " | ".join(heads) + " |", "|" + "---|" * len(levels), "| " + " | ".join(cells) + " |"]


def _span(bounds: tuple[float, float] | None, form: str) -> str:
    return "n/a" if bounds is None else f"[{bounds[0]:{form}}, {bounds[1]:{form}}]"


def describe_fit(fit: dict) -> str:
    """A line per train ratio for the joint fit of Eq. 1 (`describe_joint`), then one for the
    frontier's power law with its bootstrap interval, or why there is none."""
    head = "frontier (second view), compute-optimal size vs compute: "
    if fit["exponent"] is None:
        line = head + fit["why"]
    else:
        line = (head + f"N* = {fit['coefficient']:.3g} * C^b with b = {fit['exponent']:.3f}, {CONFIDENCE:.0%} "
                f"bootstrap interval {_span(fit['exponent_ci'], '.3f')} (seeds resampled within each size and ratio; "
                f"{fit['exponent_share']:.0%} of resamples had {MIN_FRONTIER_SIZES} or more sizes on the frontier); "
                f"{len(fit['compute'])} levels, {len(set(fit['params']))} sizes")
    return "\n".join([*(describe_joint(joint) for joint in fit.get("joint", [])), line])


def describe_joint(joint: dict) -> str:
    """One line: a train ratio's fit of Eq. 1 with bootstrap intervals and N_opt(C), or why there is none."""
    head = f"joint fit of Eq. 1 (Hilton et al. 2023), train ratio {joint['train_ratio']:g}: "
    if joint["why"] is not None:
        return head + joint["why"]
    ci = joint["ci"]
    return (head + f"alpha_N = {joint['alpha_n']:.3g} {_span(ci['alpha_n'], '.3g')}, alpha_E = {joint['alpha_e']:.3g} "
            f"{_span(ci['alpha_e'], '.3g')}, N_c = {joint['n_c']:.3g}, E_c = {joint['e_c']:.3g}, beta = "
            f"{joint['beta']:.3g} (Lemma 1); N_opt = {joint['coefficient']:.3g} * C^{joint['exponent']:.3f}, "
            f"exponent {_span(ci['exponent'], '.3f')} ({CONFIDENCE:.0%} bootstrap over seeds, "
            f"{joint['share']:.0%} of resamples fitted); {joint['points']} points, {joint['sizes']} sizes, "
            f"{joint['levels']} levels, rms {joint['rms']:.2g} in ln I")


def joint_table(fit: dict) -> list[str]:
    """The joint fits as markdown rows, one per train ratio, each constant with its bootstrap interval."""
    lines = [f"Joint fit of intrinsic performance, I^-beta = (N_c/N)^alpha_N + (E_c/E)^alpha_E (Hilton et al. 2023, "
             f"Sec. 2.2, Eq. 1), per train ratio; beta and E_c from Lemma 1 with compute C = k N^gamma E measured; "
             f"runs' first {EARLY_SHARE:.4g} left out (App. A). Intervals: {CONFIDENCE:.0%} bootstrap over seeds.", "",
             "| train ratio | alpha_N | alpha_E | N_c | E_c | beta | N_opt exponent | N_opt coefficient | "
             "C = k N^gamma E | points, sizes, levels | resamples fitted |",
             "|---:|---|---|---|---|---|---|---|---|---|---:|"]
    for joint in fit.get("joint", []):
        if joint["why"] is not None:
            lines.append(f"| {joint['train_ratio']:g} | {joint['why']} |" + " |" * 9)
            continue
        cells = [f"{joint[key]:.3g} {_span(joint['ci'][key], '.3g')}" for key in JOINT_KEYS]
        lines.append(f"| {joint['train_ratio']:g} | " + " | ".join(cells) + f" | {joint['k']:.3g} "
                     f"N^{joint['gamma']:.3g} E | {joint['points']}, {joint['sizes']}, {joint['levels']} | "
                     f"{joint['share']:.0%} |")
    return lines


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
    lines += ["", *joint_table(fit), "", describe_fit({**fit, "joint": []}), "", *frontier_table(fit)]
    if "efficiency" in fit:
        lines += ["", *efficiency_table(fit)]
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
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
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
    """Score against env steps, a panel per train ratio, a colour per size: each seed thin, the mean
    over seeds thick with a band of one standard error of that mean."""
    from matplotlib import ticker
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(ratios), figsize=(3.8 * len(ratios) + 1.6, 3.4), squeeze=False, sharey=True)
    chance, colours = random_level(runs), size_colours(plt, sizes)
    seen = [] if chance is None else [chance]
    for ax, ratio in zip(axes[0], ratios):
        for size in sizes:
            group = [r for r in runs if r["size"] == size and r["train_ratio"] == ratio]
            if group:
                seen += draw_seeds(ax, np.array([score_curve(r, grid, window_steps) for r in group]), grid,
                                   colours[size])
        if chance is not None:
            ax.axhline(chance, color="gray", linestyle="--", linewidth=1)
        ax.set_title(f"train ratio {ratio:g}", fontsize=10)
        ax.set_xlabel("env steps (policy steps, all envs)")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: human(value)))
    clip_to_runs(axes[0, 0], seen)
    axes[0, 0].set_ylabel(score_label(runs, window_steps))
    handles = [Line2D([], [], color=colours[s], lw=2, label=f"{s} ({seed_count(runs, s)})") for s in sizes]
    handles += [Line2D([], [], color="gray", lw=0.7, label="thin: one seed"),
                Line2D([], [], color="gray", lw=6, alpha=0.2, label="band: mean +- 1 s.e.")]
    if chance is not None:
        handles.append(Line2D([], [], color="gray", linestyle="--", label="random actions"))
    axes[0, -1].legend(handles=handles, fontsize=FONT, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       title="size (seeds)", title_fontsize=FONT)
    return fig


def seed_count(runs: list[dict], size: str) -> str:
    """'3 seeds', or '2-3 seeds' where the ratios of `size` ran different numbers."""
    counts = sorted({sum(1 for r in runs if r["size"] == size and r["train_ratio"] == q)
                     for q in {r["train_ratio"] for r in runs if r["size"] == size}})
    text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{text} seed{'' if text == '1' else 's'}"


def mean_and_error(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, points) -> the mean over the seeds with a value at each point and its standard error
    (sample std / sqrt(n)); the error is 0 where fewer than two seeds have a value. With two seeds
    mean +- 1 s.e. spans exactly the two."""
    count = np.sum(np.isfinite(curves), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(curves, 0), np.nanstd(curves, 0, ddof=1)
    return mean, np.where(count >= 2, std / np.sqrt(np.maximum(count, 1)), 0.0)


def draw_seeds(ax, curves: np.ndarray, x: np.ndarray, colour, linestyle="-", label: str | None = None) -> list[float]:
    """Each seed's curve thin, their mean thick with a band of +- 1 standard error (`mean_and_error`);
    returns the finite values drawn, for `clip_to_runs`."""
    for curve in curves:
        ax.plot(x, curve, color=colour, linestyle=linestyle, lw=SEED_WIDTH, alpha=SEED_ALPHA)
    mean, error = mean_and_error(curves)
    ax.plot(x, mean, color=colour, linestyle=linestyle, lw=MEAN_WIDTH, label=label)
    ax.fill_between(x, mean - error, mean + error, color=colour, alpha=BAND_ALPHA, lw=0)
    return list(curves[np.isfinite(curves)])


def _plot_heatmap(plt, runs: list[dict], sizes: list[str], ratios: list[float]):
    """Final score per size and ratio: the mean over seeds as the colour and the first line of text,
    each seed's score below it (their spread where more than `SHOWN_SEEDS`), and a hatched cell where
    the mean is at or below random play."""
    chance = random_level(runs)
    finals = {(s, q): [r["final_score"] for r in runs if r["size"] == s and r["train_ratio"] == q]
              for s in sizes for q in ratios}
    heat = np.array([[np.mean(finals[s, q]) if finals[s, q] else np.nan for q in ratios] for s in sizes])
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(ratios), 1.4 + 0.9 * len(sizes)))
    image = ax.imshow(heat, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(ratios)), [f"{q:g}" for q in ratios])
    ax.set_yticks(range(len(sizes)), sizes)
    ax.set_xlabel("train ratio")
    ax.set_ylabel("size")
    for (i, size), (j, ratio) in ((a, b) for a in enumerate(sizes) for b in enumerate(ratios)):
        scores = finals[size, ratio]
        if not scores:
            continue
        low = chance is not None and heat[i, j] <= chance
        if low:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="red", lw=1.5))
        seeds = ", ".join(f"{v:.3g}" for v in scores) if len(scores) <= SHOWN_SEEDS else \
            f"sd {np.std(scores, ddof=1):.2g}"
        colour = "black" if sum(image.cmap(image.norm(heat[i, j]))[:3]) > LIGHT_CELL else "white"
        ax.text(j, i, f"{heat[i, j]:.3g}{' (random or worse)' if low else ''}\n({seeds})", ha="center", va="center",
                color=colour, fontsize=FONT)
    note = "" if chance is None else f"; hatched: mean at or below random play ({chance:.3g})"
    ax.set_title(f"final score: mean over seeds (each seed){note}", fontsize=9)
    fig.colorbar(image, label="final score (mean over seeds)")
    return fig


def tidy_log_axis(axis, low: float, high: float) -> None:
    """Log ticks a reader can read: 1, 2 and 5 of each decade over up to `DENSE_DECADES` decades, one
    per decade beyond, labelled 2e11 (`power_label`; no minor labels that overlap the major ones)."""
    from matplotlib import ticker

    decades = np.log10(max(high, low * 10) / low) if low > 0 else np.inf
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0) if decades <= DENSE_DECADES else (1.0,),
                                             numticks=MAX_TICKS))
    axis.set_minor_formatter(ticker.NullFormatter())
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: power_label(value)))


def power_label(value: float) -> str:
    """2e11 for 2 x 10^11, 1e-3 for 10^-3."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def flops_axis_start(runs: list[dict], flops: np.ndarray, best: np.ndarray) -> float:
    """Where the FLOPs axis starts: `LEAD_IN` times below the FLOPs at which the frontier (`flops`,
    `best`) first rises by `RISE_SHARE` of its range, and not before any run's first update. Left
    of that lie the prefill's and the untrained policy's steps at random play, which a log axis
    would stretch over decades."""
    first = min(float(flops_at(r, [first_update_step(r)])[0]) for r in runs)
    rises = flops[best >= best[0] + RISE_SHARE * (best[-1] - best[0])] if best.size else flops
    return max(first, float(rises[0]) / LEAD_IN) if rises.size else first


def _plot_flops(plt, runs: list[dict], grid: np.ndarray, window_steps: float, sizes: list[str], ratios: list[float]):
    """Score against training FLOPs from the first update on: per (size, ratio) its seeds thin and
    their mean, colour by size and line style by ratio, and the frontier of the seed means."""
    curves = sorted(cell_curves(runs, grid, window_steps), key=lambda c: (c["params"], c["train_ratio"]))
    flops, best = flops_frontier(curves)
    colours, start = size_colours(plt, sizes), flops_axis_start(runs, flops, best)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for c in curves:
        shown = c["flops"] >= start
        draw_seeds(ax, c["seeds"][:, shown], c["flops"][shown], colours[c["size"]],
                   ratio_style(ratios, c["train_ratio"]), f"{c['size']} r{c['train_ratio']:g}")
    if flops.size:
        ax.plot(flops, best, color="black", lw=2.5, alpha=0.4, label="frontier (seed means)")
    chance = random_level(runs)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="random actions")
    ax.set_xscale("log")
    high = max(float(c["flops"][-1]) for c in curves)
    ax.set_xlim(start / FLOPS_MARGIN, high * FLOPS_MARGIN)
    tidy_log_axis(ax.xaxis, start, high)
    ax.set_xlabel("training FLOPs (matmuls and convolutions), from the first update")
    ax.set_ylabel(score_label(runs, window_steps))
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.02, 1.0), ncol=1 + len(curves) // LEGEND_ROWS,
              title="size, train ratio (thin: seeds)", title_fontsize=FONT)
    return fig


def _plot_intrinsic(plt, fit: dict, sizes: list[str], ratios: list[float]):
    """Left: each score level against the least FLOPs reaching it, coloured by the size that does,
    joined only between levels the same size reaches first (no line across a switch of size);
    hollow where reached at a run's last point. Right: that size against the FLOPs, the frontier's
    power law and the compute-optimal size of each train ratio's joint fit of Eq. 1."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    colours = size_colours(plt, sizes)
    compute, levels, late = np.array(fit["compute"]), np.array(fit["levels"]), np.array(fit["censored"], dtype=bool)
    for size in sizes:
        mine = np.array([s == size for s in fit["size"]], dtype=bool)
        if not mine.any():
            continue
        for run_ in np.split(np.flatnonzero(mine), np.flatnonzero(np.diff(np.flatnonzero(mine)) > 1) + 1):
            left.plot(compute[run_], levels[run_], color=colours[size], lw=1.2)
        for ax, y in ((left, levels), (right, np.array(fit["params"], dtype=float))):
            ax.scatter(compute[mine & ~late], y[mine & ~late], color=colours[size], label=size, zorder=3)
            ax.scatter(compute[mine & late], y[mine & late], facecolors="none", edgecolors=colours[size], zorder=3)
    _draw_size_laws(right, fit, ratios)
    for ax in (left, right):
        ax.set_xscale("log")
        if compute.size:
            tidy_log_axis(ax.xaxis, compute[compute > 0].min() if (compute > 0).any() else 1.0, compute.max())
        ax.set_xlabel("least training FLOPs to reach the level (any size)")
    left.set_ylabel("score level")
    left.legend(title="size reaching it first (hollow: at a run's end)", fontsize=FONT, title_fontsize=FONT)
    right.set_yscale("log")
    params = sorted(set(fit["params"]))
    right.set_yticks(params, [human(p) for p in params])
    right.minorticks_off()
    right.set_ylabel("parameters of that size")
    right.legend(fontsize=FONT - 1, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def _draw_size_laws(ax, fit: dict, ratios: list[float]) -> None:
    """On `ax` (parameters against FLOPs): the frontier's power law N* = a C^b and, per train ratio
    with a joint fit of Eq. 1, its N_opt(C); the frontier fit's refusal as the title."""
    trained = [c for c in fit["compute"] if c > 0]  # levels reached before any training have C* = 0
    if not trained:
        return
    span = np.geomspace(min(trained), max(trained), LAW_POINTS)
    if fit["exponent"] is not None:
        ax.plot(span, fit["coefficient"] * span ** fit["exponent"], color="black",
                label=f"frontier: N* = {fit['coefficient']:.3g} C^{fit['exponent']:.3f},\n"
                      f"b in {_span(fit['exponent_ci'], '.3f')}")
    else:
        ax.set_title("frontier: " + fit["why"], fontsize=8, wrap=True)
    for joint in fit.get("joint", []):
        if joint["why"] is None:
            ax.plot(span, joint["coefficient"] * span ** joint["exponent"], color="gray",
                    linestyle=ratio_style(ratios, joint["train_ratio"]),
                    label=f"Eq. 1, ratio {joint['train_ratio']:g}: N_opt ~ C^{joint['exponent']:.3f}\n"
                          f"in {_span(joint['ci']['exponent'], '.3f')}")


def size_colours(plt, sizes: list[str]) -> dict[str, tuple]:
    """A colour per size, in size order along `SIZE_COLOURS`: one hue scale, so no two sizes share a
    colour and a larger model is always the lighter line."""
    cmap = plt.get_cmap(SIZE_COLOURS)
    return {size: cmap(x) for size, x in zip(sizes, np.linspace(*SIZE_COLOUR_RANGE, max(len(sizes), 1)))}


def ratio_style(ratios: list[float], ratio: float, styles: tuple = RATIO_STYLES):
    """The line style (or marker, with `RATIO_MARKERS`) of `ratio` among `ratios`, cycling past the last."""
    return styles[sorted(ratios).index(ratio) % len(styles)]


def readable_log_axis(axis) -> None:
    """Ticks at 1, 2 and 5 of each decade, labelled plainly (1.5k, 20k, 3M) rather than as powers of ten."""
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_minor_formatter(ticker.NullFormatter())
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: human(value)))


def human(value: float) -> str:
    """1500 -> 1.5k, 2e6 -> 2M, 3e9 -> 3G; below 1,000 as it is."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _plot_efficiency(plt, fit: dict, sizes: list[str], ratios: list[float]):
    """Env steps to reach each target score against train ratio, a line per size with its bootstrap
    interval, the sizes set a little apart along x (`DODGE`) so that equal values stay visible; a
    hollow marker where a run reached the score only at its last point."""
    levels, colours = fit["efficiency_levels"], size_colours(plt, sizes)
    fig, axes = plt.subplots(1, max(len(levels), 1), figsize=(3.6 * max(len(levels), 1) + 1, 3.6), squeeze=False,
                             sharey=True)
    for j, (ax, level) in enumerate(zip(axes[0], levels)):
        missed = []
        for k, size in enumerate(sizes):
            rows = [r for r in fit["efficiency"] if r["size"] == size and np.isfinite(r["steps"][j])]
            missed += [f"{r['size']} r{r['train_ratio']:g}" for r in fit["efficiency"]
                       if r["size"] == size and not np.isfinite(r["steps"][j])]
            if not rows:
                continue
            x = np.array([r["train_ratio"] for r in rows]) * DODGE ** (k - (len(sizes) - 1) / 2)
            y = np.array([r["steps"][j] for r in rows])
            bounds = np.array([r["ci"][j] or (v, v) for r, v in zip(rows, y)])
            ax.errorbar(x, y, yerr=[y - bounds[:, 0], bounds[:, 1] - y], color=colours[size], marker="o", capsize=3,
                        label=size)
            late = np.array([bool(r["censored"][j]) for r in rows])
            ax.scatter(x[late], y[late], s=90, facecolors="none", edgecolors=colours[size], zorder=3)
        ax.set_title(f"score {level:.4g}: {EFFICIENCY_SHARES[j]:.0%} of the way\nfrom random play to the best",
                     fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_xlim(min(ratios) / RATIO_MARGIN, max(ratios) * RATIO_MARGIN)
        ax.set_xticks(ratios, [f"{q:g}" for q in ratios])
        ax.minorticks_off()
        ax.set_xlabel("train ratio")
        if missed:
            ax.text(0.0, NOTE_BELOW, "not reached: " + ", ".join(missed), transform=ax.transAxes, va="top",
                    fontsize=FONT - 1, wrap=True)
    axes[0, 0].set_yscale("log")
    readable_log_axis(axes[0, 0].yaxis)
    axes[0, 0].set_ylabel("env steps to reach the score\n(seed mean, 95% bootstrap interval)")
    if levels.size:
        axes[0, 0].legend(title="size (hollow: at the run's end)", fontsize=FONT, title_fontsize=FONT)
    return fig


def _plot_ratio_frontiers(plt, fit: dict, ratios: list[float]):
    """Per target score, the env steps against the training FLOPs of the cheapest size at each train
    ratio: a line per score through the ratios, a marker per ratio, the size written beside it."""
    from matplotlib.lines import Line2D

    levels = fit["efficiency_levels"]
    colours = plt.get_cmap(LEVEL_COLOURS)(np.linspace(0.0, 0.8, max(len(levels), 1)))
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for j, level in enumerate(levels):
        points = [(row["compute"][j], row["steps"][j], row) for row in fit["ratio_frontiers"]
                  if np.isfinite(row["compute"][j])]
        if not points:
            continue
        ax.plot([p[0] for p in points], [p[1] for p in points], color=colours[j], lw=1.2,
                label=f"score {level:.4g} ({EFFICIENCY_SHARES[j]:.0%})")
        for compute, steps, row in points:
            ax.scatter(compute, steps, color=colours[j], marker=ratio_style(ratios, row["train_ratio"], RATIO_MARKERS),
                       s=40, zorder=3)
            ax.annotate(row["size"][j], (compute, steps), textcoords="offset points", xytext=(4, 4), fontsize=FONT - 1)
    handles = [Line2D([], [], color="gray", marker=ratio_style(ratios, q, RATIO_MARKERS), linestyle="none",
                      label=f"train ratio {q:g}") for q in ratios]
    lines = ax.get_legend_handles_labels()[0]
    ax.legend(handles=lines + handles, fontsize=FONT, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              title="target score; train ratio", title_fontsize=FONT)
    ax.set_xscale("log")
    ax.set_yscale("log")
    readable_log_axis(ax.yaxis)
    ax.set_xlabel("training FLOPs by then (the size that needs the least at that ratio)")
    ax.set_ylabel("env steps to reach the score")
    return fig


def _plot_wall_clock(plt, runs: list[dict], grid: np.ndarray, window_steps: float, sizes: list[str],
                     ratios: list[float]):
    """Seed-mean score against wall-clock seconds per (size, ratio), colour by size and line style by
    ratio, with the frontier over them; None where no run logged its timing."""
    curves = sorted((c for c in cell_curves(runs, grid, window_steps) if c["seconds"] is not None),
                    key=lambda c: (c["params"], c["train_ratio"]))
    if not curves:
        return None
    colours = size_colours(plt, sizes)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for c in curves:
        ax.plot(c["seconds"], c["scores"], color=colours[c["size"]], linestyle=ratio_style(ratios, c["train_ratio"]),
                label=f"{c['size']} r{c['train_ratio']:g}")
    seconds, best = flops_frontier([{**c, "flops": c["seconds"]} for c in curves])
    if seconds.size:
        ax.plot(seconds, best, color="black", lw=2.5, alpha=0.35, label="frontier (seed means)")
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock seconds (metrics.jsonl's rates, scaled to each run's total)")
    ax.set_ylabel(score_label(runs, window_steps))
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.02, 1.0), ncol=1 + len(curves) // 12)
    return fig


def _plot_joint(plt, fit: dict, sizes: list[str], ratios: list[float]):
    """Per train ratio with a joint fit: each point of the fit (a size reaching a score level, at
    the env steps it took, against the level's fitted intrinsic performance) coloured by size, and
    Eq. 1's curve I(N, E) for each size; None where no ratio has a fit."""
    fitted = [j for j in fit.get("joint", []) if j["why"] is None]
    if not fitted:
        return None
    colours = size_colours(plt, sizes)
    fig, axes = plt.subplots(1, len(fitted), figsize=(4.6 * len(fitted) + 1.4, 3.8), squeeze=False)
    for ax, joint in zip(axes[0], fitted):
        data = joint["data"]
        span = np.geomspace(data["steps"].min() / FLOPS_MARGIN, data["steps"].max() * FLOPS_MARGIN, LAW_POINTS)
        for size in [s for s in sizes if s in set(data["size"])]:
            mine = data["size"] == size
            ax.scatter(data["steps"][mine], data["intrinsic"][mine], color=colours[size], label=size, zorder=3)
            model = log_intrinsic(data["params"][mine][0], span, joint["alpha_n"], joint["alpha_e"], joint["n_c"],
                                  joint["e_c"], joint["beta"])
            ax.plot(span, np.exp(model), color=colours[size], lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        tidy_log_axis(ax.xaxis, span[0], span[-1])
        tidy_log_axis(ax.yaxis, data["intrinsic"].min(), data["intrinsic"].max())
        ax.set_title(f"train ratio {joint['train_ratio']:g}: alpha_N {joint['alpha_n']:.3g}, alpha_E "
                     f"{joint['alpha_e']:.3g}", fontsize=9)
        ax.set_xlabel("env steps to reach the level")
    axes[0, 0].set_ylabel("intrinsic performance I (FLOPs)")
    axes[0, -1].legend(title="size (dots: data, lines: Eq. 1)", fontsize=FONT, title_fontsize=FONT,
                       loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def write_plots(runs: list[dict], out: Path) -> dict:
    """The four PNG plots; returns the intrinsic-performance fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(run["size"] for run in sorted(runs, key=lambda run: run["params"])))
    ratios = sorted({run["train_ratio"] for run in runs})
    grid, window_steps = evaluation_grid(runs), smoothing_window(runs)
    fit = {**intrinsic_performance(runs, grid, window_steps), **study_analyses(runs, grid, window_steps)}
    figures = {
        "returns_vs_steps.png": _plot_curves(plt, runs, sizes, ratios, grid, window_steps),
        "final_heatmap.png": _plot_heatmap(plt, runs, sizes, ratios),
        "returns_vs_flops.png": _plot_flops(plt, runs, grid, window_steps, sizes, ratios),
        "intrinsic_performance.png": _plot_intrinsic(plt, fit, sizes, ratios),
        "data_efficiency.png": _plot_efficiency(plt, fit, sizes, ratios),
        "ratio_frontiers.png": _plot_ratio_frontiers(plt, fit, ratios),
    }
    figures["returns_vs_wall_clock.png"] = _plot_wall_clock(plt, runs, grid, window_steps, sizes, ratios)
    figures["joint_fit.png"] = _plot_joint(plt, fit, sizes, ratios)
    for name, fig in figures.items():
        if fig is None:
            continue
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
