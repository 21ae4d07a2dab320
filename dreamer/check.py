"""`dreamer check`: verify in minutes that this machine runs the package's device path, and say
what failed (for a bug report: `--json FILE`).

Each check is one function that returns a message or raises `Failed` (or any error, reported as a
failure with its type); a check that cannot run here raises `Skipped`. Per recipe:

    build and move          a tiny agent built, moved to the device; every parameter, buffer and
                            frozen-view tensor is there
    eager update            one update and two policy steps; metrics finite
    compiled equals eager   (with --compile on) the same updates compiled and eager agree
    stop and continue       a short `train` stopped by SIGINT half-way and continued equals the
                            uninterrupted run (largest parameter difference within `tolerance`)
    checkpoint to cpu       a checkpoint written on the device loads on the CPU, equal

and once: the peak device memory of an xs update on Crafter's shapes, and, with two or more
GPUs (or gloo processes on the CPU), a two-process torchrun run. The settings are in
`configs/check/checks.yaml`; `--quick` runs shorter and leaves out the xs update and torchrun.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from dreamer import checkpoint, precision
from dreamer.config import Config, ConfigError, load_config, read_yaml, to_yaml
from dreamer.console import quiet

RECIPES = ("2023", "2024")


class Failed(Exception):
    """A check's finding: what differed, or what was not where it should be."""


class Skipped(Exception):
    """A check that does not apply here (the message says why)."""


@dataclass
class Result:
    name: str
    result: str  # pass | fail | skip
    message: str
    seconds: float


def settings() -> dict[str, Any]:
    return read_yaml("check/checks.yaml")


def tiny_config(recipe: str, device: str, compile_setting: str = "off", **flags: Any) -> Config:
    s = settings()
    return load_config(list(s["overrides"][recipe]),
                       {"env": s["env"], "recipe": recipe, "device": device, "compile": compile_setting, **flags})


def _spaces(cfg: Config):
    from dreamer.envs import spaces

    return spaces(cfg.env, cfg.environment)


def _largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, str]:
    if a.keys() != b.keys():
        raise Failed(f"different tensors: {sorted(a.keys() ^ b.keys())[:3]}")
    worst, name = 0.0, ""
    for key in a:
        if a[key].is_floating_point():
            diff = (a[key].detach().cpu().double() - b[key].detach().cpu().double()).abs().max().item()
            if not diff <= worst:  # NaN counts as the worst
                worst, name = (math.inf if math.isnan(diff) else diff), key
        elif not torch.equal(a[key].cpu(), b[key].cpu()):
            return math.inf, key
    return worst, name


# -- per recipe ---------------------------------------------------------------------------------------


def build_and_move(recipe: str, device: torch.device, compile_setting: str) -> str:
    from dreamer.nets.frozen import FrozenView
    from dreamer.recipes import build_agent

    cfg = tiny_config(recipe, str(device))
    obs_space, act_space = _spaces(cfg)
    agent = build_agent(cfg, obs_space, act_space, device)
    views = [v for m in agent.modules() for v in vars(m).values() if isinstance(v, FrozenView)]
    with agent.autocast():
        tensors = [*agent.parameters(), *agent.buffers(),
                   *(t for v in views for t in (*v.refresh().parameters(), *v.view.buffers()))]
    elsewhere = {str(t.device) for t in tensors if t.device != device}
    if elsewhere:
        raise Failed(f"tensors left on {', '.join(sorted(elsewhere))} after moving the agent to {device}")
    return f"{len(tensors)} tensors on {device} ({len(views)} frozen views)"


def _updates(cfg: Config, count: int) -> tuple[Any, list[dict[str, float]]]:
    from dreamer.bench import agent_and_batch

    torch.manual_seed(0)
    agent, batch = agent_and_batch(cfg)
    torch.manual_seed(1)
    return agent, [agent.train(batch) for _ in range(count)]


def eager_update(recipe: str, device: torch.device, compile_setting: str) -> str:
    cfg = tiny_config(recipe, str(device))
    agent, (metrics,) = _updates(cfg, 1)
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise Failed(f"non-finite metrics after one update: {', '.join(bad[:5])}")
    obs_space, _ = _spaces(cfg)
    obs = {k: space.sample()[None] for k, space in obs_space.spaces.items()}
    obs["is_first"] = obs["is_first"] | True
    action, state = agent.policy(obs)
    action, _ = agent.policy(obs, state)
    if not torch.isfinite(action).all():
        raise Failed("the policy step gave a non-finite action")
    loss = "loss/world_model" if "loss/world_model" in metrics else "loss/total"
    return f"{len(metrics)} finite metrics ({loss} {metrics[loss]:.4f}); 2 policy steps"


def compiled_equals_eager(recipe: str, device: torch.device, compile_setting: str) -> str:
    if compile_setting != "on":
        raise Skipped("not asked: --compile on runs it")
    s = settings()
    import torch._dynamo
    import torch._inductor.config

    saved = torch._inductor.config.fallback_random
    torch._inductor.config.fallback_random = True  # eager's random streams
    try:
        runs = {}
        for setting in ("off", "on"):
            torch._dynamo.reset()
            start = time.perf_counter()
            runs[setting] = _updates(tiny_config(recipe, str(device), setting), s["compile_updates"])[1]
            runs[setting + "_seconds"] = time.perf_counter() - start
    finally:
        torch._inductor.config.fallback_random = saved
    worst, name = 0.0, ""
    for eager, compiled in zip(runs["off"], runs["on"]):
        for key, want in eager.items():
            diff = abs(compiled[key] - want) / max(1.0, abs(want))
            if not diff <= worst:
                worst, name = (math.inf if math.isnan(diff) else diff), key
    if worst > s["compile_tolerance"]:
        raise Failed(f"compiled and eager differ by {worst:.2e} (relative) in {name}; accepted: "
                     f"{s['compile_tolerance']:g}")
    return (f"{s['compile_updates']} updates, largest relative difference {worst:.1e} ({name or 'none'}); "
            f"compiled run {runs['on_seconds']:.0f} s, eager {runs['off_seconds']:.1f} s")


def stop_and_continue(recipe: str, device: torch.device, compile_setting: str, quick: bool = False) -> str:
    from dreamer.stopping import StopRequest, Stopped
    from dreamer.train import Trainer, train

    s = settings()
    steps, stop_at = (s["quick_steps"], s["quick_stop_at"]) if quick else (s["steps"], s["stop_at"])

    class InterruptedAt(Trainer):
        """Sends this process SIGINT once `stop_at` steps are collected."""

        def iterate(self) -> None:
            super().iterate()
            if self.progress.step == stop_at:
                signal.raise_signal(signal.SIGINT)

    with tempfile.TemporaryDirectory(prefix="dreamer-check-") as tmp:
        def cfg(name: str) -> Config:
            return tiny_config(recipe, str(device), compile_setting, steps=steps, logdir=f"{tmp}/{name}", seed=3)

        train(cfg("reference"))
        stopped = None
        with StopRequest() as stop:
            try:
                InterruptedAt(cfg("continued"), stop).run()
            except Stopped as err:
                stopped = err.step
        if stopped != stop_at:
            raise Failed(f"SIGINT at step {stop_at} did not stop the run there (stopped: {stopped})")
        train(cfg("continued"))
        (_, want), (_, got) = (checkpoint.load_latest(Path(tmp) / name / "checkpoints") for name in
                               ("reference", "continued"))
    ended, reference = got["progress"]["step"], want["progress"]["step"]
    if ended != reference:
        raise Failed(f"continued run ended at step {ended}, the reference at {reference}")
    worst, name = _largest_difference(want["agent"], got["agent"])
    if worst > s["tolerance"]:
        raise Failed(f"stopped at {stop_at} and continued to {steps}: parameters differ from the uninterrupted "
                     f"run by {worst:.2e} ({name}); accepted: {s['tolerance']:g}")
    return f"stopped by SIGINT at step {stop_at}, continued to {steps}: largest parameter difference {worst:.1e}"


def checkpoint_to_cpu(recipe: str, device: torch.device, compile_setting: str) -> str:
    from dreamer.recipes import build_agent

    cfg = tiny_config(recipe, str(device))
    agent, _ = _updates(cfg, 1)  # optimiser state exists
    with tempfile.TemporaryDirectory(prefix="dreamer-check-") as tmp:
        payload = {"config": to_yaml(cfg), "agent": agent.state_dict(),
                   "optimizers": {k: o.state_dict() for k, o in agent.optimizers().items()}}
        checkpoint.save(Path(tmp), 1, payload)
        _, loaded = checkpoint.load_latest(Path(tmp))
    on_cpu = build_agent(tiny_config(recipe, "cpu"), *_spaces(cfg), torch.device("cpu"))
    on_cpu.load_state_dict(loaded["agent"])
    for name, optimizer in on_cpu.optimizers().items():
        optimizer.load_state_dict(loaded["optimizers"][name])
    worst, name = _largest_difference(agent.state_dict(), on_cpu.state_dict())
    if worst != 0.0:
        raise Failed(f"the checkpoint read on the CPU differs from the agent on {device} by {worst:g} ({name})")
    places = {str(t.device) for t in on_cpu.state_dict().values()}
    return f"{len(payload['agent'])} tensors written on {device}, read back on {', '.join(sorted(places))}, equal"


# -- once ---------------------------------------------------------------------------------------------


def peak_memory(device: torch.device, compile_setting: str, quick: bool = False) -> str:
    from dreamer.bench import agent_and_batch, peak_memory_gb, sync

    if quick:
        raise Skipped("left out by --quick")
    s = settings()
    cfg = load_config([], {"env": s["memory_env"], "size": s["memory_size"], "device": str(device),
                           "compile": compile_setting})
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        agent, batch = agent_and_batch(cfg)
    except ConfigError as err:  # the env's package is an optional extra
        raise Skipped(str(err)) from None
    start = time.perf_counter()
    metrics = agent.train(batch)
    sync(device)
    seconds = time.perf_counter() - start
    if not all(math.isfinite(v) for v in metrics.values()):
        raise Failed("the xs update gave non-finite metrics")
    what = "device memory allocated" if device.type == "cuda" else "process resident memory"
    return (f"{cfg.env} {cfg.size}, batch {cfg.replay.batch_size} x {cfg.replay.batch_length}: peak {what} "
            f"{peak_memory_gb(device):.2f} GB; first update {seconds:.1f} s")


def torchrun(device: torch.device, compile_setting: str, quick: bool = False) -> str:
    if quick:
        raise Skipped("left out by --quick")
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        raise Skipped(f"needs 2 GPUs; {torch.cuda.device_count()} visible")
    s = settings()
    with tempfile.TemporaryDirectory(prefix="dreamer-check-") as tmp:
        args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                "dreamer", "train", "--env", s["env"], "--steps", str(s["quick_steps"]), "--logdir", f"{tmp}/run",
                "--device", device.type, "--compile", compile_setting]
        for override in s["overrides"]["2023"]:
            args += ["--set", override]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise Failed(f"torchrun exited {done.returncode}: {last}")
        found = checkpoint.load_latest(Path(tmp) / "run" / "checkpoints")
    if found is None or found[1]["progress"]["step"] != s["quick_steps"]:
        raise Failed("torchrun finished without a checkpoint at the last step")
    return f"2 processes ({'NCCL' if device.type == 'cuda' else 'gloo'}) trained to step {s['quick_steps']}"


PER_RECIPE: dict[str, Callable[..., str]] = {
    "build and move": build_and_move,
    "eager update": eager_update,
    "compiled equals eager": compiled_equals_eager,
    "stop and continue": stop_and_continue,
    "checkpoint to cpu": checkpoint_to_cpu,
}
ONCE: dict[str, Callable[..., str]] = {"peak memory of an xs update": peak_memory, "torchrun 2 processes": torchrun}
TAKES_QUICK = (stop_and_continue, peak_memory, torchrun)


def _run(name: str, fn: Callable[[], str]) -> Result:
    start = time.perf_counter()
    try:
        return Result(name, "pass", fn(), time.perf_counter() - start)
    except Skipped as skip:
        return Result(name, "skip", str(skip), time.perf_counter() - start)
    except Failed as fail:
        return Result(name, "fail", str(fail), time.perf_counter() - start)
    except Exception as err:  # a crash is a finding too: its type, message and where
        where = traceback.extract_tb(err.__traceback__)[-1]
        return Result(name, "fail", f"{type(err).__name__}: {err} ({Path(where.filename).name}:{where.lineno})",
                      time.perf_counter() - start)


def _driver() -> str | None:
    nvidia_smi = shutil.which("nvidia-smi")
    if not nvidia_smi:
        return None
    try:
        out = subprocess.run([nvidia_smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def machine(device: torch.device, precision_setting: str) -> dict[str, Any]:
    """What the report's reader needs to know of this machine."""
    info: dict[str, Any] = {
        "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "cuda": torch.version.cuda, "driver": _driver(), "device": str(device),
        "device_name": precision.cpu_name() or platform.machine(), "capability": None,
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "precision": precision.describe(precision_setting, device),
        "tf32": precision.uses_tf32(precision_setting, device),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["capability"] = list(torch.cuda.get_device_capability(device))
    return info


def check(device_name: str, recipes: tuple[str, ...], compile_setting: str, quick: bool,
          report: Callable[[Result], None] = lambda result: None) -> dict[str, Any]:
    """Run every check; `report` sees each result as it comes. Returns the whole report."""
    from dreamer.agent import resolve_device

    device = resolve_device(device_name)
    if device.type == "cuda" and device.index is None:  # tensors name their GPU: compare with that
        device = torch.device("cuda", torch.cuda.current_device())
    precision.configure_backend("auto", device)
    results = []
    with quiet():  # the runs' start blocks and progress lines
        jobs = [(f"{name} ({recipe})", fn, (recipe, device, compile_setting)) for recipe in recipes
                for name, fn in PER_RECIPE.items()]
        jobs += [(name, fn, (device, compile_setting)) for name, fn in ONCE.items()]
        for name, fn, args in jobs:
            kwargs = {"quick": quick} if fn in TAKES_QUICK else {}
            result = _run(name, lambda: fn(*args, **kwargs))
            report(result)
            results.append(result)
    return {**machine(device, "auto"), "compile": compile_setting, "quick": quick,
            "checks": [asdict(r) for r in results]}
