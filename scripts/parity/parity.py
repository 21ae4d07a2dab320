#!/usr/bin/env python3
"""Parity with the official DreamerV3 code: the same experiments in both codes, side by side.

    python scripts/parity/parity.py run --impl ours|official --recipe 2023 --task cartpole --seeds 0 1 2 \
        --runs RUNS [--setting fast] [--parallel 2] [--official-python VENV/bin/python --official-code CHECKOUT]
    python scripts/parity/parity.py collect --runs RUNS --out benchmarks/parity

`run` starts one process per seed (at most --parallel at a time, one thread each), in
RUNS/{impl}-{recipe}-{task}-{setting}-s{seed}; a run already finished is skipped and a cut one is
continued (both codes resume from their logdir). `collect` writes results.csv (one row per run),
each run's episodes and losses as CSV, a plot per (recipe, task, setting) and verdicts.md, the
table of differences with their 95% intervals. README.md beside this file says how to install the
official code and maps the settings key by key.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dreamer.report import mean_and_band

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import settings  # noqa: E402
import stats  # noqa: E402

RUNNERS = {"2023": HERE / "official_2023.py", "2024": HERE / "official_2024.py"}
RESULT_COLUMNS = ["implementation", "recipe", "task", "setting", "seed", "env_steps", "final_return", "mean_return"]
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
LATE_WINDOWS = 2  # loss verdicts: mean over the last 2 windows (the last 50 of 100 updates at the fast settings)


def run_name(impl: str, recipe: str, task: str, setting: str, seed: int) -> str:
    return f"{impl}-{recipe}-{task}-{setting}-s{seed}"


def parse_name(name: str) -> dict | None:
    """The fields of a run folder's name, or None for a folder the harness did not name."""
    parts = name.split("-")
    if len(parts) < 5 or parts[0] not in ("ours", "official") or not parts[-1].startswith("s"):
        return None
    if parts[1] not in ("2023", "2024") or parts[2] not in settings.TASKS or not parts[-1][1:].isdigit():
        return None
    return {"implementation": parts[0], "recipe": parts[1], "task": parts[2],
            "setting": "-".join(parts[3:-1]), "seed": int(parts[-1][1:])}


def env_steps(logdir: Path, impl: str) -> int:
    """Env steps a run has taken: the official runners' summary at their end, our last log line."""
    if impl == "official":
        summary = logdir / "perf.json"
        return json.loads(summary.read_text())["env_steps"] if summary.exists() else 0
    lines = stats.read_jsonl(logdir / "metrics.jsonl") if (logdir / "metrics.jsonl").exists() else []
    return int(lines[-1]["step"]) if lines else 0


def finished(logdir: Path, impl: str, recipe: str, task: str) -> bool:
    return env_steps(logdir, impl) >= settings.run_steps(recipe, task)


def command(args: argparse.Namespace, seed: int, logdir: Path) -> list[str]:
    if args.impl == "ours":
        return settings.ours_command(args.recipe, args.setting, args.task, seed, str(logdir))
    if not args.official_python or not args.official_code:
        sys.exit("parity: --official-python and --official-code are needed for --impl official")
    return settings.official_command(args.official_python, str(RUNNERS[args.recipe]), args.official_code,
                                     args.recipe, args.setting, args.task, seed, str(logdir))


def run(args: argparse.Namespace) -> None:
    if (args.recipe, args.setting) not in settings.SETTINGS:
        sys.exit(f"parity: no setting {args.recipe}/{args.setting}; known: "
                 + ", ".join(f"{r}/{s}" for r, s in settings.SETTINGS))
    todo = []
    for seed in args.seeds:
        logdir = Path(args.runs) / run_name(args.impl, args.recipe, args.task, args.setting, seed)
        if finished(logdir, args.impl, args.recipe, args.task):
            print(f"parity: {logdir.name} is finished", flush=True)
            continue
        todo.append((logdir, command(args, seed, logdir)))
    env = {**os.environ, **SINGLE_THREAD}
    running: list[tuple[Path, subprocess.Popen]] = []
    failed = []
    while todo or running:
        while todo and len(running) < args.parallel:
            logdir, cmd = todo.pop(0)
            logdir.parent.mkdir(parents=True, exist_ok=True)
            log = open(logdir.parent / f"{logdir.name}.log", "a")
            print(f"parity: start {logdir.name}: {' '.join(cmd)}", flush=True)
            running.append((logdir, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
        time.sleep(5)
        for logdir, proc in list(running):
            if proc.poll() is not None:
                running.remove((logdir, proc))
                print(f"parity: {logdir.name} ended with exit code {proc.returncode}", flush=True)
                if proc.returncode:
                    failed.append(logdir.name)
    if failed:
        sys.exit(f"parity: failed: {', '.join(failed)} (their logs are beside the run folders)")


def collect_runs(runs: Path) -> list[dict]:
    """Every finished run under `runs` (folders the harness named), with its episodes and losses."""
    found = []
    for logdir in sorted(p for p in Path(runs).iterdir() if p.is_dir()):
        fields = parse_name(logdir.name)
        if fields is None or not finished(logdir, fields["implementation"], fields["recipe"], fields["task"]):
            continue
        steps, returns = stats.episodes(logdir)
        task = settings.TASKS[fields["task"]]
        losses = {}
        if task.losses:
            losses = (stats.official_losses(logdir, settings.LOSS_WINDOW) if fields["implementation"] == "official"
                      else stats.our_losses(logdir))
        found.append({**fields, "logdir": logdir, "steps": steps, "returns": returns, "losses": losses,
                      "env_steps": env_steps(logdir, fields["implementation"]),
                      "final_return": stats.final_return(returns, task.window),
                      "mean_return": stats.mean_return(returns)})
    return found


def official_side(recipe: str, setting: str) -> str:
    """The setting whose official runs a setting is compared with (a setting that changes only our side
    shares the official runs of the one it derives from)."""
    return settings.OFFICIAL_RUNS.get((recipe, setting), setting)


def write_results(found: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in found:
            writer.writerow({**row, "final_return": f"{row['final_return']:.2f}",
                             "mean_return": f"{row['mean_return']:.2f}"})
    (out / "curves").mkdir(exist_ok=True)
    for row in found:
        name = row["logdir"].name
        with open(out / "curves" / f"{name}.csv", "w") as file:
            file.write("env_step,return\n")
            file.writelines(f"{s},{r:.4f}\n" for s, r in zip(row["steps"], row["returns"]))
        if row["losses"]:
            (out / "losses").mkdir(exist_ok=True)
            terms = [t for t in stats.LOSS_TERMS if t in row["losses"]]
            ends = sorted(set().union(*(row["losses"][t] for t in terms)))
            with open(out / "losses" / f"{name}.csv", "w") as file:
                file.write(",".join(["env_step", *terms]) + "\n")
                for end in ends:
                    values = [row["losses"][t].get(end) for t in terms]
                    file.write(",".join([str(end), *("" if v is None else f"{v:.5f}" for v in values)]) + "\n")


def comparisons(found: list[dict]) -> list[dict]:
    """One comparison per (recipe, task, our setting) with both sides present."""
    out = []
    keys = sorted({(r["recipe"], r["task"], r["setting"]) for r in found if r["implementation"] == "ours"})
    for recipe, task, setting in keys:
        ours = [r for r in found if r["implementation"] == "ours" and (r["recipe"], r["task"], r["setting"]) ==
                (recipe, task, setting)]
        theirs = [r for r in found if r["implementation"] == "official" and (r["recipe"], r["task"], r["setting"]) ==
                  (recipe, task, official_side(recipe, setting))]
        if ours and theirs:
            out.append({"recipe": recipe, "task": task, "setting": setting, "ours": ours, "official": theirs})
    return out


def verdict_lines(comparison: dict) -> list[str]:
    ours, theirs = comparison["ours"], comparison["official"]
    lines = []
    for measure in ("final_return", "mean_return"):
        test = stats.welch([r[measure] for r in ours], [r[measure] for r in theirs])
        lines.append(_row(comparison, measure.replace("_", " "), [r[measure] for r in ours],
                          [r[measure] for r in theirs], test, stats.verdict(test)))
    terms = sorted(set().union(*(r["losses"] for r in ours)) & set().union(*(r["losses"] for r in theirs)),
                   key=stats.LOSS_TERMS.index)
    for term in terms:
        a = [stats.late_mean(r["losses"][term], LATE_WINDOWS) for r in ours if term in r["losses"]]
        b = [stats.late_mean(r["losses"][term], LATE_WINDOWS) for r in theirs if term in r["losses"]]
        test = stats.welch(a, b)
        lines.append(_row(comparison, f"{term} loss, last {LATE_WINDOWS} windows", a, b, test,
                          stats.verdict(test, higher_is_better=False)))
    return lines


def _row(comparison: dict, measure: str, a: list[float], b: list[float], test: dict, verdict: str) -> str:
    def side(values: list[float]) -> str:
        return f"{np.mean(values):.2f} ({', '.join(f'{v:.1f}' for v in values)})"
    interval = f"[{test['low']:.2f}, {test['high']:.2f}]"
    return (f"| {comparison['recipe']} | {comparison['task']} | {comparison['setting']} | {measure} | {side(a)} | "
            f"{side(b)} | {test['diff']:.2f} {interval} | {test['p']:.3f} | {verdict} |")


def plot(comparison: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = settings.TASKS[comparison["task"]]
    grid = np.linspace(0, settings.run_steps(comparison["recipe"], comparison["task"]), 61)[1:]
    panels = 1 + bool(comparison["ours"][0]["losses"])
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    seen = []  # every seed's curve: the y range, so that a wide band over few seeds does not flatten them
    for side, colour in (("official", "tab:gray"), ("ours", "tab:blue")):
        runs = comparison[side]
        curves = np.array([stats.curve(r["steps"], r["returns"], grid, task.plot_window) for r in runs])
        mean, low, high = mean_and_band(curves)
        label = f"{side} ({len(runs)} seeds)"
        axes[0, 0].plot(grid, mean, color=colour, label=label)
        for single in curves:  # each seed as a thin line
            axes[0, 0].plot(grid, single, color=colour, linewidth=0.5, alpha=0.5)
        seen.append(curves[np.isfinite(curves)])
        axes[0, 0].fill_between(grid, low, high, color=colour, alpha=0.25, linewidth=0)
        if panels == 2:
            terms = [t for t in ("image", "reward", "dyn") if all(t in r["losses"] for r in runs)]
            for term, style in zip(terms, ("-", "--", ":")):
                ends = sorted(set.intersection(*(set(r["losses"][term]) for r in runs)))
                values = np.array([[r["losses"][term][e] for e in ends] for r in runs])
                mean, low, high = mean_and_band(values)
                axes[0, 1].plot(ends, mean, style, color=colour, label=f"{side}: {term}")
                axes[0, 1].fill_between(ends, low, high, color=colour, alpha=0.2, linewidth=0)
    axes[0, 0].set(xlabel="env steps", ylabel=f"return, mean of the last {task.plot_window} episodes",
                   title=f"{comparison['task']}, recipe {comparison['recipe']}, {comparison['setting']}")
    low, high = np.concatenate(seen).min(), np.concatenate(seen).max()
    axes[0, 0].set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    axes[0, 0].legend()
    if panels == 2:
        axes[0, 1].set(xlabel="env steps", ylabel=f"loss, mean over {settings.LOSS_WINDOW}-step windows",
                       yscale="log", title="world-model losses (mean and 95% t band over seeds)")
        axes[0, 1].legend(fontsize=8)
    fig.tight_layout()
    path = out / f"{comparison['recipe']}-{comparison['task']}-{comparison['setting']}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def collect(args: argparse.Namespace) -> None:
    out = Path(args.out)
    found = collect_runs(Path(args.runs))
    write_results(found, out)
    header = ["| recipe | task | setting | measure | ours: mean (per seed) | official: mean (per seed) | "
              "ours - official [95% Welch interval] | p | verdict |", "|---|---|---|---|---|---|---|---:|---|"]
    rows = []
    for comparison in comparisons(found):
        rows += verdict_lines(comparison)
        plot(comparison, out)
    text = "\n".join(header + rows) + "\n"
    (out / "verdicts.md").write_text(text)
    print(text)
    print(f"parity: {len(found)} runs -> {out / 'results.csv'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("run", help="run seeds of one side of an experiment (finished runs are skipped)")
    start.add_argument("--impl", required=True, choices=["ours", "official"])
    start.add_argument("--recipe", required=True, choices=["2023", "2024"])
    start.add_argument("--task", required=True, choices=sorted(settings.TASKS))
    start.add_argument("--setting", default="fast")
    start.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    start.add_argument("--runs", required=True, help="folder of the run folders")
    start.add_argument("--parallel", type=int, default=1)
    start.add_argument("--official-python", help="the Python of the official code's venv")
    start.add_argument("--official-code", help="a checkout of the official code at the recipe's commit")
    gather = sub.add_parser("collect", help="results.csv, curves, plots and verdicts from the run folders")
    gather.add_argument("--runs", required=True)
    gather.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    (run if args.command == "run" else collect)(args)


if __name__ == "__main__":
    main()
