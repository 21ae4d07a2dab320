"""Benchmark protocols as their papers define them, for `dreamer report DIR`.

Atari100k (Kaiser et al. 2020; aggregation of Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice"): each run's `eval.json` (100 evaluation episodes after 100k policy steps)
gives its raw score; the human-normalised score is (score - random) / (human - random). Over games
and seeds the report gives the mean (over games of the seed-mean), the median (same) and the IQM
(the mean of the middle 50 % of all run x game scores), each with a 95 % stratified-bootstrap
confidence interval (runs resampled with replacement within each game).

Crafter (Hafner 2022): the success rate of each achievement is the percentage of all training
episodes within the budget (1M steps) that unlocked it; the score is exp(mean ln(1 + s_i)) - 1 over
the 22 rates; the reward is the mean episode return. Seeds give mean +- std.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from dreamer.checkpoint import atomic_write
from dreamer.config import from_yaml, suite_of
from dreamer.envs.atari import REFERENCE_SCORES, human_normalized
from dreamer.envs.crafter_env import ACHIEVEMENTS, crafter_score, success_rates
from dreamer.logging import read_jsonl
from dreamer.report import save_png

CI_LEVEL = 0.95
BOOTSTRAP_SAMPLES = 2000
CRAFTER_BUDGET = 1_000_000
# The DreamerV3 paper at 1M Crafter steps (mean +- std over seeds).
CRAFTER_PAPER = {"score": (14.5, 1.6), "reward": (11.7, 1.9)}
# The DreamerV3 paper on Atari100k (human-normalised, in %).
ATARI100K_PAPER = {"mean": 112.0, "median": 49.0}

Scores = dict[str, list[float]]  # game -> one score per seed


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50 %: floor(n / 4) values cut from each end of the sorted list."""
    values = np.sort(np.asarray(values, dtype=np.float64).ravel())
    cut = int(0.25 * len(values))
    return float(values[cut: len(values) - cut].mean())


def aggregate_mean(scores: Scores) -> float:
    return float(np.mean([np.mean(s) for s in scores.values()]))


def aggregate_median(scores: Scores) -> float:
    return float(np.median([np.mean(s) for s in scores.values()]))


def aggregate_iqm(scores: Scores) -> float:
    return interquartile_mean(np.concatenate([np.asarray(s, float) for s in scores.values()]))


AGGREGATES: dict[str, Callable[[Scores], float]] = {"mean": aggregate_mean, "median": aggregate_median,
                                                    "iqm": aggregate_iqm}


def bootstrap_ci(scores: Scores, statistic: Callable[[Scores], float], samples: int = BOOTSTRAP_SAMPLES,
                 level: float = CI_LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `statistic` over stratified bootstrap samples: each game's seeds are
    resampled with replacement, the games themselves kept."""
    rng = np.random.default_rng(seed)
    arrays = {game: np.asarray(s, float) for game, s in scores.items()}
    stats = [statistic({g: a[rng.integers(0, len(a), len(a))] for g, a in arrays.items()}) for _ in range(samples)]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


# -- runs on disk -----------------------------------------------------------------------------------
def find_runs(directory: Path) -> list[tuple[Path, object]]:
    """(logdir, config) of every run under `directory` (a folder holding `config.yaml`)."""
    return [(path.parent, from_yaml(path.read_text())) for path in sorted(directory.rglob("config.yaml"))]


def atari100k_scores(directory: Path) -> tuple[Scores, Scores]:
    """Raw and human-normalised scores per game (one per seed) from the `atari100k:` runs' `eval.json`."""
    raw: Scores = {}
    for logdir, cfg in find_runs(directory):
        if suite_of(cfg.env) != "atari100k" or not (logdir / "eval.json").exists():
            continue
        game = cfg.env.split(":", 1)[1]
        raw.setdefault(game, []).append(json.loads((logdir / "eval.json").read_text())["mean_return"])
    normalized = {g: [human_normalized(g, s) for s in v] for g, v in raw.items() if g in REFERENCE_SCORES}
    return raw, normalized


def atari100k_summary(raw: Scores, normalized: Scores) -> tuple[dict, str]:
    """The aggregates with their intervals, and a markdown table per game and overall."""
    summary = {name: {"value": fn(normalized), "ci": bootstrap_ci(normalized, fn)} for name, fn in AGGREGATES.items()}
    lines = ["## Atari100k", "", "| game | seeds | raw score (mean +- std) | human-normalised |", "|---|---:|---:|---:|"]
    for game in sorted(raw):
        hns = f"{np.mean(normalized[game]):.3f}" if game in normalized else "n/a"
        lines.append(f"| {game} | {len(raw[game])} | {np.mean(raw[game]):.1f} +- {np.std(raw[game]):.1f} | {hns} |")
    lines += ["", f"Human-normalised over {len(normalized)} games ({int(CI_LEVEL * 100)} % stratified-bootstrap CI):", "",
              "| aggregate | value | CI | DreamerV3 paper |", "|---|---:|---:|---:|"]
    for name, result in summary.items():
        paper = f"{ATARI100K_PAPER[name] / 100:.2f}" if name in ATARI100K_PAPER else "n/a"
        low, high = result["ci"]
        lines.append(f"| {name} | {result['value']:.3f} | [{low:.3f}, {high:.3f}] | {paper} |")
    return summary, "\n".join(lines)


def crafter_protocol(episodes: list[dict], budget: int = CRAFTER_BUDGET) -> dict:
    """Success rates (%), score and reward over the training episodes that ended within `budget`."""
    episodes = [ep for ep in episodes if ep["step"] <= budget]
    if not episodes:
        return {"episodes": 0}
    rates = success_rates(episodes)
    return {"episodes": len(episodes), "success_rates": rates,
            "score": crafter_score(np.array(list(rates.values()))),
            "reward": float(np.mean([ep["return"] for ep in episodes]))}


def crafter_runs(directory: Path, budget: int = CRAFTER_BUDGET) -> list[dict]:
    results = []
    for logdir, cfg in find_runs(directory):
        if suite_of(cfg.env) == "crafter":
            result = crafter_protocol(read_jsonl(logdir / "episodes.jsonl"), budget)
            if result["episodes"]:
                results.append({"run": logdir.name, **result})
    return results


def crafter_summary(runs: list[dict]) -> str:
    lines = ["## Crafter", "", f"Over all training episodes of each run ({len(runs)} seeds, mean +- std):", "",
             "| | ours | DreamerV3 paper |", "|---|---:|---:|"]
    for key in ("score", "reward"):
        values = [r[key] for r in runs]
        unit = " %" if key == "score" else ""
        lines.append(f"| {key} | {np.mean(values):.2f} +- {np.std(values):.2f}{unit} | "
                     f"{CRAFTER_PAPER[key][0]} +- {CRAFTER_PAPER[key][1]}{unit} |")
    lines += ["", "| achievement | success rate (%) |", "|---|---:|"]
    lines += [f"| {name} | {np.mean([r['success_rates'][name] for r in runs]):.2f} |" for name in ACHIEVEMENTS]
    return "\n".join(lines)


def plot_crafter(runs: list[dict], path: Path) -> None:
    """Per-achievement success rates (log scale, as in the Crafter paper) beside score and reward
    against the DreamerV3 paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = np.array([[r["success_rates"][name] for name in ACHIEVEMENTS] for r in runs])
    fig, (bars, paper) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [4, 1]})
    bars.bar(range(len(ACHIEVEMENTS)), rates.mean(0), yerr=rates.std(0) if len(runs) > 1 else None, color="tab:blue")
    bars.set_yscale("symlog", linthresh=1.0)
    bars.set_ylim(0, 100)
    bars.set_xticks(range(len(ACHIEVEMENTS)), [n.replace("_", " ") for n in ACHIEVEMENTS], rotation=60, ha="right")
    bars.set_ylabel("success rate (%)")
    bars.set_title(f"Crafter achievements over training episodes ({len(runs)} seeds)")
    keys = ["score", "reward"]
    ours = [np.mean([r[k] for r in runs]) for k in keys]
    ours_std = [np.std([r[k] for r in runs]) for k in keys]
    x = np.arange(len(keys))
    paper.bar(x - 0.2, ours, 0.4, yerr=ours_std, label="ours")
    paper.bar(x + 0.2, [CRAFTER_PAPER[k][0] for k in keys], 0.4, yerr=[CRAFTER_PAPER[k][1] for k in keys],
              label="DreamerV3 paper (1M steps)")
    paper.set_xticks(x, ["score (%)", "reward"])
    paper.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def report(directory: Path) -> list[str]:
    """Write `benchmarks.md` (and `crafter.png`) for the Atari100k and Crafter runs under
    `directory`; returns the names of the suites found."""
    sections, found = [], []
    raw, normalized = atari100k_scores(directory)
    if normalized:
        sections.append(atari100k_summary(raw, normalized)[1])
        found.append("atari100k")
    crafter = crafter_runs(directory)
    if crafter:
        sections.append(crafter_summary(crafter))
        plot_crafter(crafter, directory / "crafter.png")
        found.append("crafter")
    if found:
            atomic_write(directory / "benchmarks.md", lambda f: f.write(("\n\n".join(sections) + "\n").encode()))
    return found
