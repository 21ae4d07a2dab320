"""The CPU learning table (BENCHMARKS.md, "Learning on this CPU"): both recipes, two seeds, five
tasks, at budgets that finish on a 2-core machine, each beside a random agent over the same steps.

    python scripts/learning_table.py run OUT     # the runs, through `dreamer sweep` (re-running resumes)
    python scripts/learning_table.py table OUT   # a PNG per task and the markdown table

Both recipes use settings that learn within hundreds of updates instead of the paper's thousands
(the same as scripts/study_cpu.sh for P1): 16 x 16 batches, small widths, and learning rates about
30x the paper's (P1: 8 x 8 latents; 2024: size1m, LaProp lr 1e-3 with 100 warm-up updates). The
random agent is `dreamer train --prefill N --steps N`: N steps of random actions and no update.
A run's final score is that of its last `window` episodes; the curves average the episodes that
ended in the last `SMOOTHING_SHARE` of the budget's steps (Crafter: all episodes so far, as its score).
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np

from dreamer.logging import read_jsonl
from dreamer.report import SMOOTHING_SHARE, clip_to_runs, collect, final_score, plot_seeds, save_png

FAST = ["replay.batch_length=16", "run.envs=1"]
RECIPES = {
    "2023": ["--sizes", "w64:64/16/64/1", *FAST, "rssm.stoch=8", "rssm.classes=8", "optim.world_model.lr=3e-3",
             "optim.actor.lr=1e-3", "optim.critic.lr=1e-3"],
    "2024": ["--sizes", "size1m", *FAST, "v2024.optim.lr=1e-3", "v2024.optim.warmup=100"],
}


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    env: str
    steps: int
    ratio: int
    window: int  # episodes in the final score (Crafter: all episodes, as the Crafter score is defined)


ROWS = [
    Row("cartpole", "gym:CartPole-v1", 6000, 64, 20),
    Row("pendulum", "gym:Pendulum-v1", 6000, 64, 5),
    Row("dmc-cartpole-balance", "dmc:cartpole_balance", 6000, 64, 3),
    Row("dmc-vision-cartpole-balance", "dmc_vision:cartpole_balance", 6000, 32, 3),
    Row("crafter", "crafter", 10000, 32, 0),
]
SEEDS = 2


def sweep_args(row: Row, recipe: str, out: Path) -> list[str]:
    sizes, overrides = RECIPES[recipe][:2], RECIPES[recipe][2:]
    args = ["dreamer", "sweep", "--recipe", recipe, "--env", row.env, *sizes, "--train-ratios", str(row.ratio),
            "--seeds", str(SEEDS), "--steps", str(row.steps), "--out", str(out / row.name / recipe),
            "--parallel", str(SEEDS), "--device", "cpu"]
    for override in overrides:
        args += ["--set", override]
    return args


def random_args(row: Row, out: Path) -> list[str]:
    return ["dreamer", "train", "--env", row.env, "--size", "xs", "--steps", str(row.steps), "--prefill",
            str(row.steps), "--set", "run.envs=1", "--logdir", str(out / row.name / "random"), "--device", "cpu"]


def run(out: Path) -> None:
    for row in ROWS:
        subprocess.run(random_args(row, out), check=True)  # a finished run continues to where it is: a no-op
        for recipe in RECIPES:
            subprocess.run(sweep_args(row, recipe, out), check=True)


def table(out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["| task | recipe | env steps | updates | wall-clock per run | final score per seed | mean | random agent |",
             "|---|---|---:|---:|---:|---|---:|---:|"]
    for row in ROWS:
        window = row.window or 10**9
        crafter = row.window == 0
        window_steps = row.steps if crafter else SMOOTHING_SHARE * row.steps
        chance = final_score(read_jsonl(out / row.name / "random" / "episodes.jsonl"), window)
        grid = np.linspace(row.steps / 20, row.steps, 20)
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        seen = [chance]
        for recipe in RECIPES:
            runs = collect(out / row.name / recipe, window)
            if not runs:
                continue
            seen += plot_seeds(ax, runs, grid, window_steps, f"recipe {recipe}, {runs[0]['size']} ({len(runs)} seeds)")
            scores = [r["final_score"] for r in runs]
            minutes = np.mean([r["wall_clock_s"] for r in runs]) / 60
            lines.append(f"| {row.env} | {recipe} ({runs[0]['size']}) | {row.steps:,} | {runs[0]['updates']:,} | "
                         f"{minutes:.1f} min | {', '.join(f'{s:.1f}' for s in scores)} | {np.mean(scores):.1f} | "
                         f"{chance:.1f} |")
        ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="random actions")
        clip_to_runs(ax, seen)
        ax.set_ylabel("Crafter score (%), all episodes so far" if crafter else
                      f"mean episode return,\nepisodes ending in the last {window_steps:,.0f} steps")
        ax.set_xlabel("env steps (policy steps)")
        ax.set_title(f"{row.env}, train ratio {row.ratio}: mean and 95% CI over seeds (clipped)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        save_png(fig, out / f"{row.name}.png")
        plt.close(fig)
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("run", "table"))
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.what == "run":
        run(args.out)
    else:
        print(table(args.out))


if __name__ == "__main__":
    sys.exit(main())
