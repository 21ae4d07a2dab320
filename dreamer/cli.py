"""The `dreamer` command. Parses arguments, builds the config, and calls into the package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from dreamer.errors import ConfigError, TrainingError
from dreamer.stopping import Stopped

# Parsing the arguments and printing help import neither torch, nor an env suite, nor the config
# (seconds of imports): the commands import what they use.


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", help="crafter, atari:<Game>, atari100k:<Game>, gym:<id>, minerl:<task>, dmc:<domain>_<task>, dmc_vision:<domain>_<task>")
    parser.add_argument("--size", help="size preset: xs, s, m, l, xl (recipe 2023); size1m .. size400m (2024)")
    parser.add_argument("--recipe", help="2023 (P1, the default) or 2024 (arXiv v2 / Nature)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted config override, e.g. --set rssm.deter=512 (repeatable)")


def _speed_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", help="auto (bf16 where the device has native bf16, else fp32), fp32, "
                        "tf32 (fp32 with TF32 matmuls on CUDA), bf16")
    parser.add_argument("--compile", help="auto (nowhere until measured faster), on, off: torch.compile of the update")


def _config(args: argparse.Namespace, **extra):
    from dreamer.config import load_config

    flags = {"env": args.env, "size": getattr(args, "size", None), "recipe": getattr(args, "recipe", None), **extra}
    return load_config(args.overrides, flags)


def cmd_sizes(args: argparse.Namespace) -> None:
    """Parameter counts of every size preset of a recipe for an env's shapes (built on the meta device)."""
    import torch

    from dreamer.config import sizes
    from dreamer.envs import spaces
    from dreamer.recipes import build_agent

    cfg = _config(args)
    obs_space, act_space = spaces(cfg.env, cfg.environment)
    rows = []
    for size in [cfg.size] if args.size else sizes(cfg.recipe):
        cfg = _config(args, size=size)
        with torch.device("meta"):
            counts = build_agent(cfg, obs_space, act_space).parameter_counts()
        rows.append({"size": size, **counts})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    columns = [k for k in rows[0] if k != "size"]
    names = {"world_model": "world model"}
    print(f"parameters of recipe {cfg.recipe} on {cfg.env} ({' + '.join(columns[:-1])}; slow critic excluded)")
    print(f"{'size':<9}" + "".join(f"{names.get(c, c):>13}" for c in columns))
    for r in rows:
        print(f"{r['size']:<9}" + "".join(f"{r[c]:>13,}" for c in columns))


def cmd_config(args: argparse.Namespace) -> None:
    """The resolved config (defaults < suite < size preset < --set) as YAML."""
    from dreamer.config import to_yaml

    print(to_yaml(_config(args)), end="")


def cmd_train(args: argparse.Namespace) -> None:
    from dreamer.checkpoint import list_checkpoints
    from dreamer.console import counted
    from dreamer.train import run_config, train

    cfg = run_config(args.overrides, {
        "env": args.env, "size": args.size, "recipe": args.recipe, "train_ratio": args.train_ratio,
        "steps": args.steps, "seed": args.seed, "logdir": args.logdir, "device": args.device, "envs": args.envs,
        "prefill": args.prefill, "replay_dir": args.replay_dir, "precision": args.precision, "compile": args.compile})
    existing = list_checkpoints(Path(cfg.logdir) / "checkpoints")
    if args.resume and not existing:
        raise ConfigError(f"--resume given but {cfg.logdir}/checkpoints holds no checkpoint")
    progress = train(cfg)
    print(f"dreamer: trained to step {progress.step} ({counted(progress.episodes, 'episode')}); logs in {cfg.logdir}")


def cmd_eval(args: argparse.Namespace) -> None:
    from dreamer.evaluate import evaluate

    out = Path(args.out) if args.out else None
    result = evaluate(Path(args.checkpoint), args.episodes, args.device, out, seed=args.seed)
    summary = {k: v for k, v in result.items() if k not in ("returns", "lengths", "success_rates")}
    print(json.dumps(result if out is None else summary, indent=2))


def cmd_imagine(args: argparse.Namespace) -> None:
    from dreamer.console import counted
    from dreamer.evaluate import load_agent
    from dreamer.imagine import imagine, replay_dir_of

    agent, cfg, _ = load_agent(Path(args.checkpoint), args.device)
    defaults = cfg.imagine

    def given(value: int | None, default: int) -> int:
        return default if value is None else value

    info = imagine(
        agent, cfg, replay_dir_of(args.checkpoint, cfg, args.replay_dir), Path(args.out),
        sequences=given(args.episodes, defaults.sequences), context=given(args.context, defaults.context),
        horizon=given(args.horizon, defaults.horizon), actions=args.actions, source=args.source,
        write_json=args.json, seed=args.seed,
    )
    steps = ", ".join("-" if v is None else f"{v:.4f}" for v in info["mse_per_step"])
    print(f"wrote {args.out}" + (f" and {Path(args.out).with_suffix('.json')}" if args.json else ""))
    print(f"per-step prediction error (MSE, mean over {counted(info['sequences'], 'sequence')}; the first "
          f"{counted(info['context'], 'step')} {'is' if info['context'] == 1 else 'are'} context): {steps}")


def _list(text: str, kind=str) -> list:
    try:
        return [kind(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"bad list {text!r}; expected comma-separated {kind.__name__} values") from None


def cmd_sweep(args: argparse.Namespace) -> None:
    from dreamer.sweep import Sweep, run_sweep

    sweep = Sweep(env=args.env, sizes=_list(args.sizes), ratios=_list(args.train_ratios, float),
                  seeds=args.seeds, steps=args.steps, out=Path(args.out), overrides=args.overrides,
                  device=args.device, parallel=args.parallel, recipe=args.recipe, flops_budget=args.flops_budget)
    progress = run_sweep(sweep, backend=args.backend, address=args.address, gpus_per_run=args.gpus_per_run,
                         cpus_per_run=args.cpus_per_run)
    counts = progress.counts()
    print(f"dreamer: sweep in {args.out}: {counts['done']} done, {counts['failed']} failed")
    if counts["failed"]:
        raise SystemExit(1)


def cmd_report(args: argparse.Namespace) -> None:
    from dreamer import protocols
    from dreamer.console import counted
    from dreamer.report import describe_fit, report

    out = Path(args.dir)
    suites = protocols.report(out)
    if suites:
        print(f"dreamer: {' and '.join(suites)} protocol results in {out}/benchmarks.md")
    if suites and not any(out.glob("*/compute.json")):
        return
    runs, fit = report(out, args.window)
    print(f"dreamer: {counted(len(runs), 'run')} summarised in {args.dir}/summary.csv, summary.md and *.png")
    print(describe_fit(fit))


def cmd_bench(args: argparse.Namespace) -> None:
    from dreamer.bench import bench
    from dreamer.console import counted

    cfg = _config(args, device=args.device, train_ratio=args.train_ratio, precision=args.precision,
                  compile=args.compile)
    result = bench(cfg, args.updates)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{cfg.env} size {cfg.size} on {result['device']} ({counted(result['threads'], 'thread')}), "
          f"{result['total']:,} parameters, precision {result['precision']}{', TF32' if result['tf32'] else ''}")
    print(f"  update            {result['update_ms']:10.1f} ms  (world model {result['world_model_ms']:.1f}, "
          f"actor-critic {result['actor_critic_ms']:.1f}; median of {args.updates})")
    print(f"  FLOPs per update  {result['flops_per_update'] / 1e9:10.1f} G   achieved "
          f"{result['achieved_flops_per_second'] / 1e9:.1f} GFLOP/s = {100 * result['fraction_of_peak']:.0f}% "
          f"of the measured matmul peak {result['matmul_peak_flops_per_second'] / 1e9:.1f} GFLOP/s")
    compiled = f"compiled in {result['compile_seconds']:.1f} s" if result["compiled"] else "eager"
    print(f"  kernels           {result['kernels_per_update']:10,d} per update ({compiled}; "
          f"{result['eager_kernels_per_update']:,d} eager), {result['host_syncs_per_update']} host syncs inside it")
    print(f"  policy            {result['policy_ms_per_step']:10.2f} ms per step ({counted(cfg.run.envs, 'env')})")
    print(f"  collection        {result['env_steps_per_second']:10.1f} env steps/s (random actions)")
    print(f"  full run          {result['run_steps_per_second']:10.2f} env steps/s at train ratio "
          f"{result['train_ratio']:g} (estimated); measured in a short run "
          f"{result['run_measured_steps_per_second']:.2f}, the learner busy {100 * result['learner_busy']:.0f}% of it")
    print(f"  peak memory       {result['peak_memory_gb']:10.2f} GB")


def cmd_check(args: argparse.Namespace) -> int:
    from dreamer.check import RECIPES, check

    recipes = RECIPES if args.recipe == "both" else (args.recipe,)
    if not set(recipes) <= set(RECIPES):
        raise ConfigError(f"unknown --recipe {args.recipe!r}; accepted: 2023, 2024, both")
    if args.compile not in ("on", "off"):
        raise ConfigError(f"unknown --compile {args.compile!r}; accepted: on, off")
    marks = {"pass": "ok", "fail": "FAIL", "skip": "skip"}

    def show(result) -> None:
        print(f"{marks[result.result]:<5} {result.name:<36} {result.seconds:6.1f} s  {result.message}", flush=True)

    report = check(args.device, recipes, args.compile, args.quick, show)
    counts = {k: sum(c["result"] == k for c in report["checks"]) for k in marks}
    print(f"dreamer check on {report['device']} ({report['device_name']}; torch {report['torch']}, CUDA "
          f"{report['cuda'] or 'none'}, driver {report['driver'] or 'none'}; precision {report['precision']}): "
          f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    if args.json:
        text = json.dumps(report, indent=2) + "\n"
        from dreamer.checkpoint import atomic_write

        atomic_write(Path(args.json), lambda f: f.write(text.encode()))
        print(f"report written to {args.json}")
    return 1 if counts["fail"] else 0


def cmd_upgrade_checkpoint(args: argparse.Namespace) -> None:
    from dreamer.checkpoint import upgrade

    for path, done in upgrade(Path(args.path), args.trust):
        print(f"{path}: {done}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamer", description="DreamerV3 world-model RL in PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sizes", help="parameter counts of the size presets")
    _config_args(p)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_sizes)

    p = sub.add_parser("config", help="print the resolved config as YAML")
    _config_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("train", help="train an agent; `--logdir X` alone continues the run in X with its config")
    _config_args(p)
    p.add_argument("--train-ratio", type=float, help="replayed steps per policy step")
    p.add_argument("--steps", type=int, help="policy steps to train for, summed over envs")
    p.add_argument("--seed", type=int)
    p.add_argument("--logdir", help="run folder: logs, checkpoints, replay")
    p.add_argument("--device", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--envs", type=int, help="parallel environments")
    p.add_argument("--prefill", type=int, help="random-action steps before training")
    p.add_argument("--replay-dir", help="where the replay's chunks go (default: LOGDIR/replay)")
    _speed_args(p)
    p.add_argument("--resume", action="store_true", help="require an existing checkpoint in the logdir")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="play episodes with a checkpoint and report returns as JSON")
    p.add_argument("--checkpoint", required=True, help="a run's logdir, its checkpoints/ folder, or a .pt file")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="a .json file in an existing folder: write the JSON there (atomically) and print "
                   "a summary (checked before any episode is played)")
    p.add_argument("--seed", type=int, default=0, help="seeds the envs and the policy's sampling: the same seed "
                   "plays the same episodes (default 0)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("imagine", help="open-loop predictions of the world model from a checkpoint")
    p.add_argument("--checkpoint", required=True, help="a run's logdir, its checkpoints/ folder, or a .pt file")
    p.add_argument("--out", required=True, help=".gif or .mp4 (animation), .png (contact sheet, or a plot "
                                                "for vector-only envs)")
    p.add_argument("--episodes", type=int, help="sequences to show (default: the run's imagine.sequences)")
    p.add_argument("--context", type=int, help="real steps the model observes first (default 5)")
    p.add_argument("--horizon", type=int, help="steps predicted open-loop after the context (default 45)")
    p.add_argument("--actions", default="replay", help="replay: the recorded actions; policy: the actor's")
    p.add_argument("--source", default="saved", help="saved: the run's replay on disk; fresh: play new episodes")
    p.add_argument("--replay-dir", help="the run's replay folder (default: its replay.directory, else LOGDIR/replay)")
    p.add_argument("--json", action="store_true", help="also write per-step errors and rewards as JSON to the file named as OUT "
                   "with its suffix replaced by .json (im.png -> im.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_imagine)

    p = sub.add_parser("sweep", help="a grid of size x train ratio x seed, each an ordinary training run")
    p.add_argument("--env", required=True)
    p.add_argument("--sizes", required=True, help="comma-separated size presets, e.g. xs,s,m, or custom widths: "
                   "NAME:DETER/CNN/UNITS/LAYERS (recipe 2023), NAME:D (2024)")
    p.add_argument("--recipe", default="2023", help="2023 (P1) or 2024 (arXiv v2 / Nature)")
    p.add_argument("--train-ratios", required=True, help="comma-separated ratios, e.g. 64,256,1024")
    p.add_argument("--seeds", type=int, default=1, help="seeds per point: 0 .. N-1")
    p.add_argument("--steps", type=int, help="policy steps per run (or --flops-budget)")
    p.add_argument("--flops-budget", type=float, metavar="F",
                   help="instead of --steps: run each point until its training FLOPs reach F, so every size gets "
                        "the same compute (e.g. 1e13)")
    p.add_argument("--out", required=True, help="folder of the study; a run per point inside")
    p.add_argument("--parallel", type=int, default=1, help="runs at once (local backend); CPU threads are split")
    p.add_argument("--backend", default="local", help="local, or ray (pip install 'dreamer-rl[ray]')")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs each Ray task asks for")
    p.add_argument("--cpus-per-run", type=int, default=1, help="CPUs each Ray task asks for (its torch threads)")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override applied to every run (repeatable)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("bench", help="learner, policy and collection speed on this device")
    _config_args(p)
    p.add_argument("--updates", type=int, default=3, help="timed updates after one warm-up (median)")
    p.add_argument("--train-ratio", type=float, help="ratio for the full-run steps/s estimate")
    p.add_argument("--device", help="auto (CUDA if present), cpu, cuda, cuda:N")
    _speed_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("check", help="verify this machine's device path in minutes (a report for bug reports)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--recipe", default="both", help="2023, 2024 or both")
    p.add_argument("--compile", default="off", help="on: also compare compiled updates with eager ones (minutes)")
    p.add_argument("--quick", action="store_true", help="shorter runs; no xs update, no torchrun")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("report", help="a sweep's tables and plots; Atari100k and Crafter protocol results")
    p.add_argument("dir", help="a sweep's --out folder, or a folder of runs")
    p.add_argument("--window", type=int, default=20, help="episodes averaged for a run's final return")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("upgrade-checkpoint", help="convert checkpoints of an earlier version (format 2) to load "
                                                  "safely; reads them with pickle, so only with --trust")
    p.add_argument("path", help="a run's logdir, its checkpoints/ folder, or a .pt file")
    p.add_argument("--trust", action="store_true", help="the checkpoints come from you or a source you trust")
    p.set_defaults(func=cmd_upgrade_checkpoint)
    for command_parser in sub.choices.values():  # reports a command's unknown arguments with its own usage
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors that end a command with a one-line message and exit status 2. `CheckpointError`
    lives in a module that imports torch: a command that never imported it cannot have raised it."""
    checkpoint = sys.modules.get("dreamer.checkpoint")
    checkpoint_error = getattr(checkpoint, "CheckpointError", None)
    return (ConfigError,) if checkpoint_error is None else (ConfigError, checkpoint_error)


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # argparse's own message and exit status 2, under the command's usage
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    from dreamer.console import setup_logging

    setup_logging()
    try:
        status = args.func(args)  # the commands that report failures as an exit status return it
    except _user_errors() as err:
        print(f"dreamer: error: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"dreamer: error: {err}", file=sys.stderr)
        return 1
    except Stopped as stop:
        print(f"dreamer: {stop}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:  # outside a training run's handlers: nothing of a run to save
        print("dreamer: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk or a permission problem: name the path and the OS error
        print(f"dreamer: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
