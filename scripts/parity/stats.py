"""Reading both codes' run records into one format, and the statistics of the parity verdicts.

Both runners write `episodes.jsonl` with one line per finished episode ({"step", "return", ...}):
ours through its logger, the official code through scripts/parity/official_*.py. World-model losses
come per update from the official runners (`losses.jsonl`) and per log window from ours
(`metrics.jsonl`); both are reduced to means over the same windows of env steps.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from dreamer.logging import read_jsonl

LOSS_TERMS = ("image", "vector", "reward", "cont", "dyn", "rep")
# Our metrics.jsonl names for the loss terms (dreamer/world_model.py and dreamer/v2024/world_model.py).
OUR_LOSS_KEYS = {term: f"loss/{term}" for term in LOSS_TERMS}


def episodes(logdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env step at each episode's end, its return), in the order the episodes ended."""
    lines = read_jsonl(Path(logdir) / "episodes.jsonl")
    steps = np.array([line["step"] for line in lines], dtype=np.int64)
    returns = np.array([line["return"] for line in lines], dtype=np.float64)
    return steps, returns


def final_return(returns: np.ndarray, window: int) -> float:
    """Mean return of the last `window` episodes (all of them if the run had fewer)."""
    return float(np.mean(returns[-window:])) if len(returns) else math.nan


def mean_return(returns: np.ndarray) -> float:
    """Mean return over every episode of the run."""
    return float(np.mean(returns)) if len(returns) else math.nan


def curve(steps: np.ndarray, returns: np.ndarray, grid: np.ndarray, window: int) -> np.ndarray:
    """At each grid step, the mean return of the last `window` episodes ended by then (NaN before the first)."""
    out = np.full(len(grid), math.nan)
    for i, at in enumerate(grid):
        ended = returns[steps <= at]
        if len(ended):
            out[i] = ended[-window:].mean()
    return out


def welch(ours: list[float], official: list[float], confidence: float = 0.95) -> dict[str, float]:
    """Difference of means (ours - official) with Welch's t interval and two-sided p-value."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(official, dtype=np.float64)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "low": math.nan, "high": math.nan, "p": math.nan}
    if a.std(ddof=1) == 0 and b.std(ddof=1) == 0:  # no spread on either side: the interval is the point
        return {"diff": diff, "low": diff, "high": diff, "p": 0.0 if diff else 1.0}
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return {"diff": diff, "low": float(interval.low), "high": float(interval.high), "p": float(result.pvalue)}


def verdict(test: dict[str, float], higher_is_better: bool = True) -> str:
    """`ours worse`, `official worse` or `level` (the interval holds 0), from a `welch` result."""
    if math.isnan(test["low"]):
        return "too few seeds"
    if test["low"] <= 0 <= test["high"]:
        return "level"
    ours_higher = test["low"] > 0
    return "official worse" if ours_higher == higher_is_better else "ours worse"


def official_losses(logdir: Path, window: int) -> dict[str, dict[int, float]]:
    """Per-update loss terms of an official run as means over env-step windows: {term: {window end: mean}}.
    An update at env step s belongs to the window ending at the next multiple of `window` (s itself if it is one)."""
    sums: dict[str, dict[int, list[float]]] = {}
    for line in read_jsonl(Path(logdir) / "losses.jsonl"):
        end = -(-int(line["step"]) // window) * window
        for term in LOSS_TERMS:
            if term in line:
                sums.setdefault(term, {}).setdefault(end, []).append(float(line[term]))
    return {term: {end: float(np.mean(v)) for end, v in sorted(ends.items())} for term, ends in sums.items()}


def our_losses(logdir: Path) -> dict[str, dict[int, float]]:
    """Our loss terms from metrics.jsonl: each line holds the means over the updates since the previous one."""
    out: dict[str, dict[int, float]] = {}
    for line in read_jsonl(Path(logdir) / "metrics.jsonl"):
        for term, key in OUR_LOSS_KEYS.items():
            if key in line:
                out.setdefault(term, {})[int(line["step"])] = float(line[key])
    return out


def late_mean(series: dict[int, float], windows: int) -> float:
    """Mean of the last `windows` entries of a {window end: value} series."""
    values = [series[end] for end in sorted(series)][-windows:]
    return float(np.mean(values)) if values else math.nan
