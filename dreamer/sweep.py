"""Scaling studies: a grid of size x train ratio x seed, each point an ordinary training run.

Every point trains in its own process (`dreamer train`) in `OUT/<size>-r<ratio>-s<seed>/`, so a
re-run of the same sweep skips points whose `compute.json` exists and lets `dreamer train` continue
the others from their checkpoints. Compute accounting: FLOPs of one learner update and of one policy
step are counted once per configuration with torch's FLOP counter (`OUT/flops.json`); a finished
run's `compute.json` adds its updates, policy steps (those with random actions and those the train
ratio counted among them), total training FLOPs, wall-clock and device.

With a FLOPs budget instead of a number of steps, each point runs until its training FLOPs (as
`compute.json` counts them) reach the budget: a small model takes more env steps than a large one,
so the study's sizes are compared at equal compute rather than cut off at equal steps
(`budget_steps`, `train_point`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from dreamer import checkpoint
from dreamer.bench import agent_batch, count_update_flops
from dreamer.checkpoint import atomic_write
from dreamer.config import ConfigError, load_config
from dreamer.errors import first_line
from dreamer.envs import spaces
from dreamer.envs.install import require
from dreamer.recipes import build_agent
from dreamer.logging import read_jsonl
from dreamer.replay import TrainRatio

STATES = ("queued", "running", "done", "failed")


@dataclasses.dataclass(frozen=True)
class Point:
    size: str
    ratio: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.size}-r{self.ratio:g}-s{self.seed}"


CUSTOM_BASE = {"2023": "xs", "2024": "size1m"}  # preset a custom width starts from (its dims are then replaced)


def parse_size(text: str, recipe: str = "2023") -> tuple[str, list[str]]:
    """`m` -> (`m`, []); `w64:64/8/64/1` -> (`w64`, dims overrides deter/cnn_depth/units/layers).
    A custom width sizes the vector encoder and decoder too (`units` x `layers`), so that small
    widths stay small; the presets keep P1's 5 x 1024 vector MLPs.

    Under recipe 2024 a custom width is one number d, scaled as its presets are (design-2024.md 8):
    `d32:32` -> units 32, deter 8d = 256, classes and CNN depth d/16 (at least 2 and 1)."""
    if ":" not in text:
        return text, []
    if recipe == "2024":
        name, _, width = text.partition(":")
        if not name or not width.isdigit() or int(width) % 8:
            raise ConfigError(f"bad size {text!r}; accepted under recipe 2024: a preset (size1m .. size400m) or "
                              f"NAME:D with D a multiple of 8 (the block GRU's 8 blocks), e.g. d32:32")
        d = int(width)
        dims = {"units": d, "deter": 8 * d, "classes": max(2, d // 16), "depth": max(1, d // 16)}
        return name, [f"v2024.dims.{k}={v}" for k, v in dims.items()]
    name, _, widths = text.partition(":")
    parts = widths.split("/")
    if not name or len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"bad size {text!r}; accepted: a preset (xs, s, m, l, xl) or NAME:DETER/CNN/UNITS/LAYERS, "
                          f"e.g. w64:64/8/64/1")
    keys = ("deter", "cnn_depth", "units", "layers")
    units, layers = parts[2], parts[3]
    coders = [f"{coder}.mlp_{key}={value}" for coder in ("encoder", "decoder")
              for key, value in (("units", units), ("layers", layers))]
    return name, [f"dims.{k}={v}" for k, v in zip(keys, parts)] + coders


@dataclasses.dataclass
class Sweep:
    env: str
    sizes: list[str]  # presets or NAME:DETER/CNN/UNITS/LAYERS
    ratios: list[float]
    seeds: int
    steps: int | None  # env steps per run; None with a FLOPs budget
    out: Path
    overrides: list[str] = dataclasses.field(default_factory=list)
    device: str = "auto"
    parallel: int = 1
    recipe: str = "2023"
    flops_budget: float | None = None  # training FLOPs per run, instead of `steps`

    def points(self) -> list[Point]:
        names = [parse_size(size, self.recipe)[0] for size in self.sizes]
        return [Point(name, ratio, seed) for name in names for ratio in self.ratios for seed in range(self.seeds)]

    def _size_args(self, name: str) -> tuple[str, list[str]]:
        """(preset to pass as --size, extra overrides) of a size name of this sweep."""
        for size in self.sizes:
            size_name, dims = parse_size(size, self.recipe)
            if size_name == name:
                return (CUSTOM_BASE[self.recipe] if dims else name), dims
        raise KeyError(name)

    def config(self, point: Point, steps: int | None = None):
        """The point's config, running `steps` env steps (default: the sweep's)."""
        preset, dims = self._size_args(point.size)
        flags = {"recipe": self.recipe, "env": self.env, "size": preset, "train_ratio": point.ratio, "seed": point.seed,
                 "steps": steps or self.steps, "logdir": str(self.out / point.name), "device": self.device}
        return load_config([*self.overrides, *dims], flags)

    def command(self, point: Point, steps: int | None = None) -> list[str]:
        """`dreamer train` for the point, running `steps` env steps (default: the sweep's)."""
        cfg = self.config(point, steps)
        preset, dims = self._size_args(point.size)
        args = [sys.executable, "-m", "dreamer", "train", "--recipe", self.recipe, "--env", self.env, "--size", preset,
                "--train-ratio", f"{point.ratio:g}", "--seed", str(point.seed), "--steps", str(cfg.run.steps),
                "--logdir", cfg.logdir, "--device", self.device]
        for override in [*self.overrides, *dims]:
            args += ["--set", override]
        return args

    def validate(self) -> None:
        """Build every point's config once, so a bad size, key or value fails before anything runs."""
        if self.seeds < 1 or self.parallel < 1:
            raise ConfigError(f"--seeds and --parallel must be >= 1, got {self.seeds} and {self.parallel}")
        if (self.steps is None) == (self.flops_budget is None):
            raise ConfigError("give either --steps N (env steps per run) or --flops-budget F (training FLOPs per run)")
        if self.flops_budget is not None and not self.flops_budget > 0:
            raise ConfigError(f"--flops-budget must be > 0, got {self.flops_budget:g}")
        for point in self.points():
            self.config(point)


def count_flops(sweep: Sweep, size: str) -> dict[str, float]:
    """FLOPs of one learner update on a replay-shaped batch (forward and backward) and of one policy
    step for one env, for `size` in this sweep's configuration.

    Counted by torch's `FlopCounterMode`, which counts the ops it has formulas for: matmuls
    (mm, addmm, bmm, baddbmm), convolutions and their backward passes, and attention. Elementwise
    work, normalisation, activations, sampling and the optimiser step are not counted. Both are
    counted uncompiled whatever `run.compile` says: the update inside `agent.eager()`, the policy
    step as the agent's `act`, the function its compiled policy step wraps (a compiled graph runs
    kernels the counter does not see). Compiling changes how these ops run, not their number."""
    cfg = sweep.config(Point(size, sweep.ratios[0], 0))
    obs_space, act_space = spaces(cfg.env, cfg.environment)
    agent = build_agent(cfg, obs_space, act_space)
    batch = agent.to_tensors(agent_batch(agent, obs_space, act_space, cfg.replay.batch_size, cfg.replay.batch_length))
    update = count_update_flops(agent, batch)
    return {"params": agent.parameter_counts()["total"], "flops_per_update": float(update),
            "flops_per_policy_step": float(count_policy_flops(agent, {k: v[:1, 0] for k, v in batch.items()}))}


def count_policy_flops(agent, obs: dict[str, torch.Tensor]) -> int:
    """FLOPs of one uncompiled policy step (`agent.act`, train mode) on `obs` from a fresh state."""
    encoder = agent.wm.encoder
    obs = {k: obs[k] for k in (*encoder.image_keys, *encoder.vector_keys, "is_first")}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        agent.act(obs, *agent.initial_policy_state(1), mode="train")
    return counter.get_total_flops()


def flops_table(sweep: Sweep, log: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Counted FLOPs per size, cached in OUT/flops.json under the sweep's env and overrides."""
    path = sweep.out / "flops.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    table = {}
    for spec in sweep.sizes:
        size = parse_size(spec, sweep.recipe)[0]
        key = json.dumps([sweep.recipe, sweep.env, spec, sorted(sweep.overrides)])
        if key not in cache:
            log(f"counting FLOPs of {size} on {sweep.env} ...")
            cache[key] = count_flops(sweep, size)
            atomic_write(path, lambda f: f.write(json.dumps(cache, indent=2).encode()))
        table[size] = cache[key]
    return table


def device_kind(device: str) -> str:
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores)"


def training_flops(steps: int, start: int, random: int, ratio: float, replayed: int, flops: dict[str, float]) -> float:
    """Training FLOPs by env step `steps` as `compute.json` counts them: the train ratio's updates
    over the steps after `start` (the exact schedule, `TrainRatio`), and a policy step for each
    step after the `random` prefill steps."""
    updates = TrainRatio(ratio, replayed).total_after(max(steps - start, 0))
    return updates * flops["flops_per_update"] + max(steps - random, 0) * flops["flops_per_policy_step"]


def budget_steps(sweep: Sweep, point: Point, flops: dict[str, float], start: int | None = None) -> int:
    """The fewest env steps (a whole number of iterations of `run.envs` steps) whose training FLOPs
    (`training_flops`) reach the sweep's budget. Training is taken to start after the prefill
    unless `start` says where it did (a finished attempt's steps less the steps its ratio counted;
    under recipe 2024 the replay must first hold a batch, so the first attempt falls short and
    `train_point` runs it on)."""
    cfg = sweep.config(point, steps=1)
    envs, replayed = cfg.run.envs, cfg.replay.batch_size * cfg.replay.batch_length
    random = -(-cfg.run.prefill // envs) * envs
    start = random if start is None else start
    rate = point.ratio / replayed * flops["flops_per_update"] + flops["flops_per_policy_step"]
    estimate = (sweep.flops_budget + start * rate - (start - random) * flops["flops_per_policy_step"]) / rate
    steps = max(-(-math.ceil(estimate) // envs) * envs, envs)
    while training_flops(steps, start, random, point.ratio, replayed, flops) < sweep.flops_budget:
        steps += envs
    return steps


def account(sweep: Sweep, point: Point, flops: dict[str, float], wall_clock: float) -> dict:
    """compute.json of a finished run: its counts from the final checkpoint times the counted FLOPs.

    `random_steps` are the prefill's steps (every env steps with random actions while the step
    count is below `run.prefill`), which run no policy network and are not charged policy FLOPs;
    `counted_steps` are the steps the train ratio counted (all but those before training began)."""
    run = sweep.out / point.name
    _, payload = checkpoint.resolve(run)
    updates, steps = payload["ratio"]["updates"], payload["progress"]["step"]
    cfg = sweep.config(point)
    random = min(steps, -(-cfg.run.prefill // cfg.run.envs) * cfg.run.envs)
    return {
        "size": point.size, "train_ratio": point.ratio, "seed": point.seed, "env": sweep.env, **flops,
        "prefill": cfg.run.prefill, "replayed_per_update": cfg.replay.batch_size * cfg.replay.batch_length,
        "updates": updates, "policy_steps": steps, "random_steps": random, "counted_steps": payload["ratio"]["steps"],
        "total_flops": updates * flops["flops_per_update"] + (steps - random) * flops["flops_per_policy_step"],
        "wall_clock_s": wall_clock, "device": device_kind(sweep.device),
        **({} if sweep.flops_budget is None else {"flops_budget": sweep.flops_budget}),
    }


class Progress:
    """The grid's states; prints a size x ratio table (one letter per seed) whenever one changes."""

    LETTER = {"queued": ".", "running": "R", "done": "D", "failed": "F"}

    def __init__(self, sweep: Sweep, printer: Callable[[str], None] = print):
        self.sweep, self.print = sweep, printer
        self.sizes = [parse_size(size, sweep.recipe)[0] for size in sweep.sizes]
        self.state = {p: "queued" for p in sweep.points()}
        self.why: dict[Point, str] = {}
        self.lock = threading.Lock()

    def set(self, point: Point, state: str, why: str = "") -> None:
        with self.lock:
            self.state[point] = state
            if why:
                self.why[point] = why
            self.print(self.render())

    def counts(self) -> dict[str, int]:
        return {s: sum(v == s for v in self.state.values()) for s in STATES}

    def render(self) -> str:
        counts = self.counts()
        lines = [f"sweep {self.sweep.env}: " + ", ".join(f"{s} {counts[s]}" for s in STATES)]
        width = max(6, self.sweep.seeds + 2)
        lines.append("size \\ ratio " + "".join(f"{r:>{width}g}" for r in self.sweep.ratios))
        for size in self.sizes:
            cells = ["".join(self.LETTER[self.state[Point(size, r, s)]] for s in range(self.sweep.seeds))
                     for r in self.sweep.ratios]
            lines.append(f"{size:<13}" + "".join(f"{c:>{width}}" for c in cells))
        lines += [f"  failed {p.name}: {why}" for p, why in self.why.items() if self.state[p] == "failed"]
        return "\n".join(lines)


MAX_TOP_UPS = 3  # further attempts a budgeted run gets when its training started later than assumed


def train_point(sweep: Sweep, point: Point, flops: dict[str, float], threads: int) -> tuple[bool, str]:
    """Train one point: for the sweep's steps, or under a FLOPs budget for `budget_steps`, then (at
    most `MAX_TOP_UPS` times) on from its checkpoint while its counted FLOPs fall short of the
    budget, with the steps recomputed from where its training really started. Returns (succeeded,
    last error line)."""
    steps = None if sweep.flops_budget is None else budget_steps(sweep, point, flops)
    ok, _, why = run_point(sweep, point, threads, steps)
    for _ in range(MAX_TOP_UPS if sweep.flops_budget is not None else 0):
        if not ok:
            break
        record = account(sweep, point, flops, 0.0)
        if record["total_flops"] >= sweep.flops_budget:
            break
        start = record["policy_steps"] - record["counted_steps"]
        ok, _, why = run_point(sweep, point, threads, max(budget_steps(sweep, point, flops, start),
                                                          record["policy_steps"] + sweep.config(point, 1).run.envs))
    return ok, why


def run_point(sweep: Sweep, point: Point, threads: int, steps: int | None = None) -> tuple[bool, float, str]:
    """Train one point in a subprocess for `steps` env steps (default: the sweep's); returns
    (succeeded, seconds, last error line)."""
    run = sweep.out / point.name
    run.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(run / "train.log", "ab") as log:
        code = subprocess.run(sweep.command(point, steps), stdout=log, stderr=subprocess.STDOUT,
                              env=env).returncode
    seconds = time.perf_counter() - start
    with open(run / "attempts.jsonl", "a") as f:
        f.write(json.dumps({"seconds": seconds, "exit_code": code}) + "\n")
    if code == 0:
        return True, seconds, ""
    lines = [line for line in (run / "train.log").read_text(errors="replace").splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("dreamer: error:")]
    why = " ".join(line.strip() for line in lines[errors[-1]:]) if errors else (lines[-1] if lines else "")
    return False, seconds, (why or f"exit code {code}")[:300]  # an error of several lines, on one


def wall_clock(run: Path) -> float:
    """Seconds over every attempt at a run (an interrupted run's time counts too)."""
    return sum(attempt["seconds"] for attempt in read_jsonl(run / "attempts.jsonl"))


def _finish(sweep: Sweep, progress: Progress, flops: dict, point: Point, ok: bool, why: str) -> None:
    if not ok:
        progress.set(point, "failed", why)
        return
    record = account(sweep, point, flops[point.size], wall_clock(sweep.out / point.name))
    atomic_write(sweep.out / point.name / "compute.json", lambda f: f.write(json.dumps(record, indent=2).encode()))
    progress.set(point, "done")


def run_sweep(sweep: Sweep, printer: Callable[[str], None] = print, backend: str = "local",
              address: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: int = 1) -> Progress:
    """Run the points without a `compute.json`: `local` runs `parallel` at once with the CPU threads
    split between them; `ray` submits each as a Ray task asking for `gpus_per_run` GPUs and
    `cpus_per_run` CPUs (on a cluster, OUT must be on a filesystem every node sees)."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown --backend {backend!r}; accepted: local, ray")
    ray = require("ray", "ray", purpose="--backend ray") if backend == "ray" else None
    sweep.validate()
    sweep.out.mkdir(parents=True, exist_ok=True)
    flops = flops_table(sweep, printer)
    progress = Progress(sweep, printer)
    todo = []
    for point in sweep.points():
        if (sweep.out / point.name / "compute.json").exists():
            progress.state[point] = "done"
        else:
            todo.append(point)
    printer(progress.render())
    if ray is not None:
        _run_ray(ray, sweep, progress, flops, todo, address, gpus_per_run, cpus_per_run)
        return progress
    threads = max(1, (os.cpu_count() or 1) // sweep.parallel)

    def work(point: Point) -> None:
        progress.set(point, "running")
        ok, why = train_point(sweep, point, flops[point.size], threads)
        _finish(sweep, progress, flops, point, ok, why)

    with ThreadPoolExecutor(max_workers=sweep.parallel) as pool:
        list(pool.map(work, todo))
    return progress


def _run_ray(ray, sweep: Sweep, progress: Progress, flops: dict, todo: list[Point], address: str | None,
             gpus_per_run: float, cpus_per_run: int) -> None:
    """Each point is a Ray task; a point shows as running once its task has started (its marker file)."""
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run)(_ray_task)
    pending = {task.remote(sweep, point, flops[point.size], cpus_per_run): point for point in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in done:
                point = pending.pop(ref)
                try:
                    ok, why = ray.get(ref)
                except Exception as err:  # the task itself died (worker lost, out of memory)
                    ok, why = False, first_line(err)
                _finish(sweep, progress, flops, point, ok, why)
            for point in pending.values():
                if progress.state[point] == "queued" and (sweep.out / point.name / RUNNING_MARKER).exists():
                    progress.set(point, "running")
    finally:
        if started_here:
            ray.shutdown()


RUNNING_MARKER = ".running"


def _ray_task(sweep: Sweep, point: Point, flops: dict[str, float], threads: int) -> tuple[bool, str]:
    marker = sweep.out / point.name / RUNNING_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    try:
        ok, why = train_point(sweep, point, flops, threads)
    finally:
        marker.unlink(missing_ok=True)
    return ok, why
