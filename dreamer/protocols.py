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

DeepMind Control Suite (P1's `dmc` and `dmc_vision` benchmarks): budgets of 500k env steps from
proprioception and 1M from pixels, counted with the action repeat (policy steps x repeat). A run's
return at the budget is the mean return of its training episodes that ended in the last tenth of
the budget (or of its own length, when shorter; the table shows the steps reached). Per task, seeds
give mean +- std; over tasks, the mean and the median of the task means.
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

# DeepMind Control Suite budgets in env steps (action repeat counted), as P1 runs them.
DMC_BUDGETS = {"dmc": 500_000, "dmc_vision": 1_000_000}
DMC_FINAL_SHARE = 0.1  # a run's return at the budget: episodes ending in the last tenth of it
# P1's appendix tables of per-task DMC returns were not found in the sources at hand. These are the
# DreamerV3 runs the reference repository publishes (danijar/dreamerv3, scores/dmc_proprio-dreamerv3
# .json.gz, 18 tasks x 5 seeds to 500k env steps, and scores/dmc_vision-dreamerv3.json.gz, 20 tasks
# x 8-10 seeds to 1M, added in commit 2411f7d), reduced by the rule above: each seed's mean return
# over the curve's points in the last tenth of the budget; (mean, std) over seeds.
DMC_REFERENCE = {
    "dmc": {
        "acrobot_swingup": (156.8, 17.7), "ball_in_cup_catch": (964.1, 5.2), "cartpole_balance": (991.0, 3.7),
        "cartpole_balance_sparse": (992.5, 15.0), "cartpole_swingup": (851.0, 14.6),
        "cartpole_swingup_sparse": (489.2, 360.2), "cheetah_run": (606.0, 16.3), "finger_spin": (932.0, 28.9),
        "finger_turn_easy": (748.0, 230.0), "finger_turn_hard": (826.0, 92.3), "hopper_hop": (110.8, 31.3),
        "hopper_stand": (585.0, 238.9), "pendulum_swingup": (790.0, 68.4), "reacher_easy": (951.1, 12.7),
        "reacher_hard": (937.6, 7.6), "walker_run": (646.2, 63.2), "walker_stand": (963.8, 14.2),
        "walker_walk": (937.5, 14.4),
    },
    "dmc_vision": {
        "acrobot_swingup": (223.5, 46.9), "ball_in_cup_catch": (973.0, 3.5), "cartpole_balance": (987.2, 10.9),
        "cartpole_balance_sparse": (968.5, 32.3), "cartpole_swingup": (860.1, 11.4),
        "cartpole_swingup_sparse": (763.4, 29.6), "cheetah_run": (832.2, 43.8), "finger_spin": (588.4, 133.4),
        "finger_turn_easy": (872.6, 40.0), "finger_turn_hard": (903.1, 24.9), "hopper_hop": (224.1, 143.8),
        "hopper_stand": (905.3, 12.2), "pendulum_swingup": (744.1, 179.1), "quadruped_run": (587.7, 65.1),
        "quadruped_walk": (801.7, 84.3), "reacher_easy": (953.0, 6.0), "reacher_hard": (843.0, 55.1),
        "walker_run": (683.6, 113.6), "walker_stand": (976.0, 2.0), "walker_walk": (960.4, 2.3),
    },
}

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


def dmc_return(episodes: list[dict], repeat: int, budget: int) -> tuple[float, int]:
    """(return at the budget, env steps reached): the mean return of the episodes that ended in the
    last `DMC_FINAL_SHARE` of the budget, or of the run's own length when it stopped earlier."""
    ends = np.array([ep["step"] * repeat for ep in episodes], dtype=np.int64)
    returns = np.array([ep["return"] for ep in episodes], dtype=np.float64)
    within = ends <= budget
    if not within.any():
        return float("nan"), 0
    reached = int(ends[within].max())
    final = within & (ends > reached - DMC_FINAL_SHARE * min(budget, reached))
    return float(returns[final].mean()), reached


def dmc_runs(directory: Path) -> dict[str, dict[str, list[tuple[float, int]]]]:
    """suite -> task -> (return at the budget, env steps reached) of each `dmc:`/`dmc_vision:` run."""
    results: dict[str, dict[str, list[tuple[float, int]]]] = {}
    for logdir, cfg in find_runs(directory):
        suite = suite_of(cfg.env)
        if suite not in DMC_BUDGETS or not (logdir / "episodes.jsonl").exists():
            continue
        episodes = read_jsonl(logdir / "episodes.jsonl")
        score, reached = dmc_return(episodes, cfg.environment.repeat, DMC_BUDGETS[suite])
        if reached:
            results.setdefault(suite, {}).setdefault(cfg.env.split(":", 1)[1], []).append((score, reached))
    return results


def dmc_summary(suite: str, tasks: dict[str, list[tuple[float, int]]]) -> tuple[dict, str]:
    """Mean and median over tasks (of the seed means), and a markdown table per task and overall
    beside the reference runs (over the tasks both have, as well as over all of ours)."""
    budget, reference = DMC_BUDGETS[suite], DMC_REFERENCE[suite]
    means = {task: float(np.mean([score for score, _ in runs])) for task, runs in tasks.items()}
    title = "proprioceptive" if suite == "dmc" else "pixels"
    lines = [f"## DeepMind Control Suite, {title} ({suite}, {budget:,} env steps)", "",
             "| task | seeds | env steps reached (min) | return at the budget (mean +- std) | DreamerV3 reference runs |",
             "|---|---:|---:|---:|---:|"]
    for task in sorted(tasks):
        scores = [score for score, _ in tasks[task]]
        ref = f"{reference[task][0]:.1f} +- {reference[task][1]:.1f}" if task in reference else "n/a"
        lines.append(f"| {task} | {len(scores)} | {min(r for _, r in tasks[task]):,} | "
                     f"{np.mean(scores):.1f} +- {np.std(scores):.1f} | {ref} |")
    shared = [task for task in means if task in reference]
    summary = {"mean": float(np.mean(list(means.values()))), "median": float(np.median(list(means.values()))),
               "tasks": len(means), "shared_tasks": len(shared)}
    lines += ["", "Over tasks (each task the mean over its seeds; reference: danijar/dreamerv3's published "
              "runs, see dreamer/protocols.py):", "",
              "| aggregate | ours, all tasks | ours, tasks in the reference | DreamerV3 reference, same tasks |",
              "|---|---:|---:|---:|"]
    for name, fn in (("mean", np.mean), ("median", np.median)):
        ours_shared = f"{fn([means[t] for t in shared]):.1f}" if shared else "n/a"
        ref_shared = f"{fn([reference[t][0] for t in shared]):.1f}" if shared else "n/a"
        lines.append(f"| {name} | {summary[name]:.1f} ({len(means)} tasks) | {ours_shared} | {ref_shared} |")
    return summary, "\n".join(lines)


def report(directory: Path) -> list[str]:
    """Write `benchmarks.md` (and `crafter.png`) for the Atari100k, Crafter and DeepMind Control
    runs under `directory`; returns the names of the suites found."""
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
    for suite, tasks in sorted(dmc_runs(directory).items()):
        sections.append(dmc_summary(suite, tasks)[1])
        found.append(suite)
    if found:
            atomic_write(directory / "benchmarks.md", lambda f: f.write(("\n\n".join(sections) + "\n").encode()))
    return found
