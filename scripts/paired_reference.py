#!/usr/bin/env python
"""Learner update time against the reference PyTorch port, measured in pairs in one sitting.

The reference is NM512/dreamerv3-torch. For each setting the script takes turns: one process times
the reference's update, the next times ours (`dreamer bench`), then the reference again, and so on
for `--rounds` pairs. Each pair gives a ratio (reference seconds / our seconds); the table reports
every pair and the median per setting. A machine's speed drifts between sittings, so the ratio of
one pair is the measurement, never a time from another day.

    python scripts/paired_reference.py --reference-checkout REF --reference-commit 6ef8646 \
        --reference-python REF/venv/bin/python --sizes xs,s --precisions auto,fp32 --rounds 2 \
        --out paired-reference

Workload on both sides: Crafter observations (64 x 64 x 3, 17 actions), batches of 16 x 64,
imagination of 15 steps from every posterior state, CPU, `--threads` threads, one warm-up update
and the median of the rest. The reference always runs in fp32 without `torch.compile` (its CPU
settings); ours runs at each `--precisions` value, and the table names the precision each side
ran.

The reference side runs this same file under `--reference-python`, an environment holding the
port's requirements (torch, numpy, gym 0.22, crafter, ruamel.yaml, tensorboard, einops). That
worker builds the port's configuration the way its `dreamer.py` does (`defaults`, then the
`crafter` overlay from its `configs.yaml`), applies the size's widths and the fixed settings above,
fills the port's replay with random Crafter steps and times `Dreamer._train` on batches drawn from
its dataset (drawing is outside the timer). The checkout's files are not changed: the one
incompatibility with current gym and numpy, integer observation flags declared with infinite
bounds, is relaxed at run time in the worker process.

The checkout must be at `--reference-commit` (checked with git; the script stops otherwise).
Outputs: the Markdown table on stdout and in OUT.md; OUT.json holds both commits, the settings and
every process's parsed output.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent

# Our size presets (configs/sizes.yaml) in the reference port's configuration keys.
REFERENCE_WIDTHS = {
    "xs": {"deter": 256, "units": 256, "cnn_depth": 24, "layers": 1},
    "s": {"deter": 512, "units": 512, "cnn_depth": 32, "layers": 2},
}

# Settings of the timed workload on the reference side, whatever the port's defaults say.
REFERENCE_FIXED = {
    "device": "cpu", "compile": False, "precision": 32, "batch_size": 16, "batch_length": 64,
    "imag_horizon": 15, "video_pred_log": False, "eval_episode_num": 0,
}


class PairedError(Exception):
    """A problem that stops the measurement; printed as one line."""


# --- pieces without side effects (tested in tests/test_paired_reference.py) -------------------------

def reference_overrides(size: str) -> dict:
    """The port's configuration keys (dotted for nested ones) that select one of our sizes."""
    if size not in REFERENCE_WIDTHS:
        raise PairedError(f"size {size!r} has no reference widths; choose from {', '.join(REFERENCE_WIDTHS)}")
    w = REFERENCE_WIDTHS[size]
    out = {"dyn_deter": w["deter"], "dyn_hidden": w["deter"], "units": w["units"],
           "encoder.cnn_depth": w["cnn_depth"], "decoder.cnn_depth": w["cnn_depth"]}
    for head in ("actor", "critic", "reward_head", "cont_head"):
        out[f"{head}.layers"] = w["layers"]
    return {**out, **REFERENCE_FIXED}


def parse_bench_output(text: str) -> dict:
    """The JSON object that `dreamer bench --json` prints, from its stdout (other lines around it)."""
    start = next((i for i, line in enumerate(text.splitlines(keepends=True)) if line.startswith("{")), None)
    if start is None:
        raise PairedError("dreamer bench printed no JSON object")
    body = "".join(text.splitlines(keepends=True)[start:])
    try:
        result, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as e:
        raise PairedError(f"dreamer bench printed unreadable JSON ({e.msg})") from None
    for key in ("update_ms", "precision"):
        if key not in result:
            raise PairedError(f"dreamer bench's JSON has no {key!r}")
    return result


def parse_reference_output(text: str) -> dict:
    """The worker's result: the last line of its stdout that is a JSON object with `median_s`."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "median_s" in result:
                return result
    raise PairedError("the reference worker printed no result line")


def ratio(reference_s: float, ours_s: float) -> float:
    if reference_s <= 0 or ours_s <= 0:
        raise PairedError(f"a time that is not positive: reference {reference_s} s, ours {ours_s} s")
    return reference_s / ours_s


def tabulate(pairs: list[dict]) -> str:
    """Markdown table: one row per (size, our precision setting), one column per pair, the median ratio.

    Each pair is a dict with size, setting, round, reference_s, ours_s, ours_precision and
    reference_precision (as `measure` records them)."""
    rows: dict[tuple[str, str], list[dict]] = {}
    for p in pairs:
        rows.setdefault((p["size"], p["setting"]), []).append(p)
    width = max((len(v) for v in rows.values()), default=0)
    head = ["size", "precision: ours (setting) / reference"]
    head += [f"pair {i + 1} (reference s / ours s)" for i in range(width)] + ["median ratio"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---|" * width + "---:|"]
    for (size, setting), group in rows.items():
        group = sorted(group, key=lambda p: p["round"])
        ours = sorted({p["ours_precision"] for p in group})
        theirs = sorted({p["reference_precision"] for p in group})
        label = f"ours {'/'.join(ours)} ({setting}) / reference {'/'.join(theirs)}"
        cells = [f"{p['reference_s']:.2f} / {p['ours_s']:.2f} = {ratio(p['reference_s'], p['ours_s']):.2f}"
                 for p in group]
        cells += [""] * (width - len(cells))
        median = statistics.median(ratio(p["reference_s"], p["ours_s"]) for p in group)
        lines.append(f"| {size} | {label} | " + " | ".join(cells) + f" | **{median:.2f}** |")
    return "\n".join(lines)


def schedule(sizes: list[str], settings: list[str], rounds: int) -> list[tuple[str, str, int, str]]:
    """The order of the processes: per size and setting, reference then ours, `rounds` times."""
    return [(size, setting, r, side) for size in sizes for setting in settings
            for r in range(1, rounds + 1) for side in ("reference", "ours")]


# --- git ------------------------------------------------------------------------------------------

def git(path: pathlib.Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PairedError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"git {args[0]} failed")
    return proc.stdout.strip()


def verify_commit(checkout: pathlib.Path, commit: str) -> str:
    """The full hash of `commit` if the checkout's HEAD is that commit; PairedError otherwise."""
    if not checkout.is_dir():
        raise PairedError(f"{checkout} is not a folder")
    try:
        top = pathlib.Path(git(checkout, "rev-parse", "--show-toplevel"))
        head = git(checkout, "rev-parse", "HEAD")
    except PairedError:
        raise PairedError(f"{checkout} is not a git checkout") from None
    if top.resolve() != checkout.resolve():
        raise PairedError(f"{checkout} is not the top of a git checkout (that is {top})")
    try:
        wanted = git(checkout, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    except PairedError:
        raise PairedError(f"commit {commit} is not in the repository at {checkout}") from None
    if head != wanted:
        raise PairedError(f"{checkout} is at {head[:12]}, not at {commit} ({wanted[:12]}); "
                          f"run: git -C {checkout} checkout {commit}")
    return head


def describe_checkout(path: pathlib.Path) -> dict:
    """Commit and whether tracked files differ from it (None where `path` is not a git checkout)."""
    try:
        return {"commit": git(path, "rev-parse", "HEAD"),
                "modified": bool(git(path, "status", "--porcelain", "--untracked-files=no"))}
    except PairedError:
        return {"commit": None, "modified": None}


# --- the two sides --------------------------------------------------------------------------------

def run_reference(args: argparse.Namespace, size: str) -> dict:
    cmd = [args.reference_python, str(pathlib.Path(__file__).resolve()), "--reference-worker",
           "--reference-checkout", str(args.reference_checkout), "--size", size,
           "--updates", str(args.updates + 1), "--threads", str(args.threads), "--prefill", str(args.prefill)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=threads_env(args.threads))
    if proc.returncode != 0:
        raise PairedError(f"the reference worker failed ({size}): {last_line(proc.stderr)}")
    result = parse_reference_output(proc.stdout)
    result["precision"] = "fp32"
    return result


def run_ours(args: argparse.Namespace, size: str, setting: str) -> dict:
    cmd = [*args.dreamer, "bench", "--env", "crafter", "--size", size, "--updates", str(args.updates),
           "--device", "cpu", "--precision", setting, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=threads_env(args.threads))
    if proc.returncode != 0:
        raise PairedError(f"dreamer bench failed ({size}, {setting}): {last_line(proc.stderr)}")
    return parse_bench_output(proc.stdout)


def threads_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def measure(args: argparse.Namespace) -> list[dict]:
    pairs, pending = [], {}
    for size, setting, r, side in schedule(args.sizes, args.precisions, args.rounds):
        start = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if side == "reference":
            pending = {"reference": run_reference(args, size), "reference_started": start}
            continue
        ours = run_ours(args, size, setting)
        ref = pending["reference"]
        pair = {"size": size, "setting": setting, "round": r,
                "reference_s": ref["median_s"], "reference_precision": ref["precision"],
                "ours_s": ours["update_ms"] / 1000, "ours_precision": ours["precision"],
                "reference_started": pending["reference_started"], "ours_started": start,
                "reference": ref, "ours": ours}
        pair["ratio"] = ratio(pair["reference_s"], pair["ours_s"])
        pairs.append(pair)
        print(f"pair {r} {size} {setting}: reference {pair['reference_s']:.2f} s ({ref['precision']}), "
              f"ours {pair['ours_s']:.2f} s ({ours['precision']}), ratio {pair['ratio']:.2f}",
              file=sys.stderr, flush=True)
    return pairs


# --- the worker, run under the reference port's Python ---------------------------------------------

def reference_worker(argv: list[str]) -> None:
    """Time the reference's `Dreamer._train` at one size; print one JSON line on stdout."""
    parser = argparse.ArgumentParser(prog="paired_reference.py --reference-worker")
    parser.add_argument("--reference-checkout", type=pathlib.Path, required=True)
    parser.add_argument("--size", required=True)
    parser.add_argument("--updates", type=int, required=True, help="timed updates including the warm-up")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prefill", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import contextlib
    import tempfile
    import warnings

    src = args.reference_checkout.resolve()
    sys.path.insert(0, str(src))
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    with contextlib.redirect_stdout(sys.stderr):  # the port prints progress; stdout carries the result
        import numpy as np
        import gym
        import torch
        from ruamel.yaml import YAML

        _relax_integer_bounds(gym, np)
        import dreamer as ref  # the port's dreamer.py, from the checkout
        import tools

        torch.set_num_threads(args.threads)
        config = _reference_config(YAML, tools, src, args)
        with tempfile.TemporaryDirectory(prefix="paired_reference_") as logdir:
            seconds, params = _time_reference(ref, tools, torch, config, pathlib.Path(logdir), args)
    timed = seconds[args.warmup:] or seconds[-1:]
    print(json.dumps({
        "size": args.size, "update_s": [round(s, 4) for s in seconds], "warmup": args.warmup,
        "median_s": round(statistics.median(timed), 4), "params": params,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }), flush=True)


def _relax_integer_bounds(gym, np) -> None:
    """gym.spaces.Box with an integer dtype and infinite bounds (the port's is_first/is_last flags)
    gets the dtype's own limits instead; the port reads only these spaces' shapes and dtypes."""
    original = gym.spaces.Box.__init__

    def init(self, low, high, shape=None, dtype=np.float32, *rest, **kw):
        if np.issubdtype(np.dtype(dtype), np.integer):
            info = np.iinfo(dtype)
            low = np.nan_to_num(np.asarray(low, dtype=np.float64), neginf=info.min, posinf=info.max)
            high = np.nan_to_num(np.asarray(high, dtype=np.float64), neginf=info.min, posinf=info.max)
            low, high = low.astype(dtype), high.astype(dtype)
        original(self, low, high, shape, dtype, *rest, **kw)

    gym.spaces.Box.__init__ = init


def _reference_config(YAML, tools, src: pathlib.Path, args: argparse.Namespace):
    configs = YAML(typ="safe", pure=True).load((src / "configs.yaml").read_text())
    merged: dict = {}
    for name in ("defaults", "crafter"):
        _merge(merged, configs[name])
    for key, value in {**reference_overrides(args.size), "prefill": args.prefill, "seed": args.seed}.items():
        *parents, leaf = key.split(".")
        node = merged
        for p in parents:
            node = node[p]
        node[leaf] = value
    # dreamer.py passes every default through tools.args_type; do the same so types match its runs
    return argparse.Namespace(**{k: tools.args_type(v)(v) for k, v in merged.items()})


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _time_reference(ref, tools, torch, config, logdir: pathlib.Path, args: argparse.Namespace):
    """Set up as the port's main() does (random prefill, dataset, agent), then time its updates."""
    tools.set_seed_everywhere(config.seed)
    config.logdir = str(logdir)
    config.traindir = logdir / "train_eps"
    config.evaldir = logdir / "eval_eps"
    for key in ("steps", "eval_every", "log_every", "time_limit"):
        setattr(config, key, getattr(config, key) // config.action_repeat)
    config.traindir.mkdir(parents=True)
    logger = tools.Logger(logdir, 0)
    episodes = tools.load_episodes(config.traindir, limit=config.dataset_size)
    envs = [ref.Damy(ref.make_env(config, "train", i)) for i in range(config.envs)]
    space = envs[0].action_space
    config.num_actions = space.n if hasattr(space, "n") else space.shape[0]
    uniform = tools.OneHotDist(torch.zeros(config.num_actions).repeat(config.envs, 1))

    def random_policy(obs, done, state):
        action = uniform.sample()
        return {"action": action, "logprob": uniform.log_prob(action)}, None

    tools.simulate(random_policy, envs, episodes, config.traindir, logger,
                   limit=config.dataset_size, steps=config.prefill)
    logger.step += config.prefill * config.action_repeat
    print(f"reference prefill: {config.prefill} random steps, {len(episodes)} episodes", flush=True)
    dataset = ref.make_dataset(episodes, config)
    agent = ref.Dreamer(envs[0].observation_space, space, config, logger, dataset).to(config.device)
    agent.requires_grad_(requires_grad=False)
    params = sum(p.numel() for p in agent.parameters())
    seconds = []
    for _ in range(args.updates):
        batch = next(dataset)
        start = time.perf_counter()
        agent._train(batch)
        seconds.append(time.perf_counter() - start)
        print(f"reference update {len(seconds)}: {seconds[-1]:.2f} s", flush=True)  # stdout is stderr here
    for env in envs:
        try:
            env.close()
        except Exception:
            pass
    return seconds, params


# --- command line ---------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-checkout", type=pathlib.Path, required=True,
                        help="a git checkout of NM512/dreamerv3-torch")
    parser.add_argument("--reference-commit", required=True, help="the commit the checkout must be at")
    parser.add_argument("--reference-python", default=sys.executable,
                        help="Python with the reference port's requirements (default: this one)")
    parser.add_argument("--sizes", default="xs", help="comma-separated: xs, s")
    parser.add_argument("--precisions", default="auto",
                        help="our `dreamer bench --precision` settings, comma-separated (auto, fp32, bf16)")
    parser.add_argument("--rounds", type=int, default=2, help="pairs per size and precision")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per process after one warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prefill", type=int, default=1000, help="random Crafter steps in the reference's replay")
    parser.add_argument("--dreamer", default=f"{sys.executable} -m dreamer",
                        help="how to run our CLI (default: this Python's -m dreamer)")
    parser.add_argument("--out", type=pathlib.Path, help="write OUT.md (the table) and OUT.json (raw results)")
    args = parser.parse_args(argv)
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.dreamer = shlex.split(args.dreamer)
    if args.rounds < 1 or args.updates < 1:
        parser.error("--rounds and --updates must be at least 1")
    for size in args.sizes:
        reference_overrides(size)  # unknown sizes stop here, before any process starts
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--reference-worker"]:
        reference_worker(argv[1:])
        return
    try:
        args = parse_args(argv)
        reference_commit = verify_commit(args.reference_checkout, args.reference_commit)
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        pairs = measure(args)
    except PairedError as e:
        sys.exit(f"paired_reference: {e}")
    table = tabulate(pairs)
    print(table)
    if args.out:
        raw = {
            "started": started, "host": platform.node(), "python": platform.python_version(),
            "ours": {**describe_checkout(REPO), "command": args.dreamer},
            "reference": {"repository": "NM512/dreamerv3-torch", "commit": reference_commit,
                          "modified": describe_checkout(args.reference_checkout)["modified"],
                          "python": args.reference_python},
            "settings": {"sizes": args.sizes, "precisions": args.precisions, "rounds": args.rounds,
                         "updates": args.updates, "warmup": 1, "threads": args.threads, "prefill": args.prefill},
            "pairs": pairs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(f"{args.out}.md").write_text(table + "\n")
        pathlib.Path(f"{args.out}.json").write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
