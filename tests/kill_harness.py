"""Kill `dreamer train` at random moments with SIGKILL, continue it each time, and check that the
finished run is the run that was never interrupted.

Faults, one per attempt, in turn:
    replace   SIGKILL at the n-th `os.replace`, i.e. inside a checkpoint, replay-chunk, config or
              log rewrite, after its temp file is written and before it is renamed;
    append    SIGKILL in the middle of the n-th log line (half of it on disk);
    timer     SIGKILL after a random time (anywhere: an update, an env step, a write);
    corrupt   a timer kill, after which the newest checkpoint is cut in half (a disk that lied
              about a write): the run must say so and fall back to the checkpoint before.

As a script, for many kills: `python -m tests.kill_harness --kills 100 [--seed 0] [--steps 300]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tests.conftest import train_args

FAULTS = ("replace", "append", "timer", "corrupt")
TIMING_KEYS = ("perf/env_steps_per_second", "perf/updates_per_second", "perf/learner_busy")


def run_args(logdir: Path, steps: int) -> list[str]:
    """The tests' tiny CartPole run, with more frequent logs, checkpoints and replay chunks."""
    return train_args(logdir, "gym:CartPole-v1", steps, "--train-ratio", "32", "--seed", "3", "--set",
                      "run.log_every=25", "--set", "run.save_every=50", "--set", "replay.chunk=32")


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def child(fault: str, when: float, argv: list[str]) -> int:
    """Arm one fault in this process, then run the CLI."""
    from dreamer import logging as logs
    from dreamer.cli import main

    if fault == "timer":
        timer = threading.Timer(when, _kill_self)
        timer.daemon = True  # a run that finishes first exits normally
        timer.start()
    elif fault == "replace":
        calls, plain = [0], os.replace

        def replace(src, dst, *args, **kwargs):
            calls[0] += 1
            if calls[0] == int(when):
                _kill_self()
            return plain(src, dst, *args, **kwargs)

        os.replace = replace
    elif fault == "append":
        calls, plain_append = [0], logs._append

        def append(file, record):
            calls[0] += 1
            if calls[0] == int(when):
                line = json.dumps(record) + "\n"
                file.write(line[: len(line) // 2])
                file.flush()
                _kill_self()
            plain_append(file, record)

        logs._append = append
    return main(argv)


@dataclass
class Report:
    kills: dict[str, int] = field(default_factory=lambda: {f: 0 for f in FAULTS})
    resumes: int = 0
    fallbacks: int = 0  # resumes that reported an unreadable newest checkpoint
    attempts: list[tuple[str, float, int]] = field(default_factory=list)  # (fault, when, exit code)

    @property
    def total(self) -> int:
        return sum(self.kills.values())


def _launch(fault: str, when: float, argv: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.kill_harness", "child", fault, str(when), "--", *argv]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)


def run_with_kills(logdir: Path, steps: int, rng: random.Random, seconds: float, max_kills: int = 1000) -> Report:
    """Attempt after attempt, each with the next fault in turn, until the run finishes (after
    `max_kills` kills, attempts run without a fault). Each attempt continues from the run's last
    checkpoint. Timers fire within `seconds`, the wall-clock of the uninterrupted run."""
    report = Report()
    argv = run_args(logdir, steps)
    while True:
        fault = FAULTS[len(report.attempts) % len(FAULTS)] if report.total < max_kills else "none"
        when = {"timer": rng.uniform(0.5 * seconds, seconds), "replace": rng.randint(1, 8),
                "append": rng.randint(1, 6)}.get(fault, 0)
        corrupt = fault == "corrupt"
        if corrupt:  # this attempt is killed by a timer; its newest checkpoint then goes bad
            fault, when = "timer", rng.uniform(0.5 * seconds, seconds)
        had_checkpoint = bool(list((logdir / "checkpoints").glob("ckpt-*.pt")))
        result = _launch(fault, when, argv)
        report.resumes += had_checkpoint
        report.fallbacks += "falling back to" in result.stderr
        report.attempts.append(("corrupt" if corrupt else fault, when, result.returncode))
        if result.returncode == 0:
            return report  # finished (before the fault fired, or with none armed)
        if result.returncode != -signal.SIGKILL:
            raise AssertionError(f"attempt {len(report.attempts)} ({fault} {when}) exited {result.returncode}:\n"
                                 f"{result.stderr[-3000:]}")
        report.kills["corrupt" if corrupt else fault] += 1
        saved = sorted((logdir / "checkpoints").glob("ckpt-*.pt"))
        if corrupt and len(saved) >= 2:
            data = saved[-1].read_bytes()
            saved[-1].write_bytes(data[: len(data) // 2])


def reference_run(logdir: Path, steps: int) -> float:
    """The uninterrupted run; returns its wall-clock seconds."""
    start = time.perf_counter()
    result = _launch("none", 0, run_args(logdir, steps))
    assert result.returncode == 0, result.stderr[-3000:]
    return time.perf_counter() - start


def compare_runs(reference: Path, resumed: Path) -> None:
    """Same metrics at the same steps (no step missing or twice), same episodes, same final
    weights and optimiser states; no temp file left behind."""
    from dreamer import checkpoint
    from dreamer.logging import read_jsonl

    def metrics(logdir):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_jsonl(logdir / "metrics.jsonl")]

    got, want = metrics(resumed), metrics(reference)
    steps = [r["step"] for r in got]
    assert steps == sorted(set(steps)) == [r["step"] for r in want], f"logged steps {steps}"
    for a, b in zip(got, want):
        assert a == b, f"metrics differ at step {a['step']}"
    assert read_jsonl(resumed / "episodes.jsonl") == read_jsonl(reference / "episodes.jsonl")
    (path_a, a), (path_b, b) = (checkpoint.load_latest(d / "checkpoints") for d in (resumed, reference))
    assert path_a.name == path_b.name
    for key, value in b["agent"].items():
        assert torch.equal(a["agent"][key], value), f"weight {key} differs"
    for name, opt in b["optimizers"].items():
        for index, state in opt["state"].items():
            for key, value in state.items():
                mine = a["optimizers"][name]["state"][index][key]
                same = torch.equal(mine, value) if isinstance(value, torch.Tensor) else mine == value
                assert same, f"{name} {key} differs"
    leftovers = [p for p in resumed.rglob(".*.tmp")]
    assert not leftovers, f"temp files left: {leftovers}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "child":
        fault, when, rest = argv[1], float(argv[2]), argv[4:]
        return child(fault, when, rest)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("directory", nargs="?", type=Path)
    args = parser.parse_args(argv)
    root = args.directory or Path(tempfile.mkdtemp(prefix="kill-harness-"))
    rng = random.Random(args.seed)
    seconds = reference_run(root / "reference", args.steps)
    total, runs = Report(), 0
    while total.total < args.kills:  # whole runs, each killed until it finishes, each checked
        runs += 1
        report = run_with_kills(root / f"killed-{runs}", args.steps, rng, seconds, args.kills - total.total)
        compare_runs(root / "reference", root / f"killed-{runs}")
        for fault, count in report.kills.items():
            total.kills[fault] += count
        total.resumes += report.resumes
        total.fallbacks += report.fallbacks
        print(f"run {runs}: {report.attempts}", flush=True)
    print(f"{runs} runs, {total.total} kills ({', '.join(f'{k} {v}' for k, v in total.kills.items())}), "
          f"{total.resumes} resumes, {total.fallbacks} fallbacks to an older checkpoint; every run's metrics, "
          f"episodes, weights and optimiser states equal the uninterrupted run's ({root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
