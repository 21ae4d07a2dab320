"""Clean stops of a real `dreamer train` process: SIGINT and SIGTERM save a checkpoint at the
current step and exit 130 / 143 without a traceback; the continued run is the uninterrupted one;
a second signal exits at once; under torchrun both ranks stop at the same step. The console of a
run whose stderr is not a terminal: the start block and plain progress lines."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dreamer import checkpoint
from dreamer.config import load_config
from tests import kill_harness

ROOT = Path(__file__).resolve().parent.parent
STOP_LINE = re.compile(r"stopped at step ([\d,]+); checkpoint saved; run the same command to continue")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
                            start_new_session=True)  # the test's own process group gets no signal


def _read_until(proc: subprocess.Popen, pattern: str, timeout: float = 300) -> list[str]:
    """stderr lines up to the first that matches `pattern`."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"the run ended before {pattern!r}:\n{''.join(lines)[-3000:]}")
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no {pattern!r} within {timeout} s")


def _stop(logdir: Path, sig: int, at: str) -> tuple[int, str]:
    """Start the harness's run, send `sig` once a progress line matching `at` appears."""
    proc = _start([sys.executable, "-m", "dreamer", *kill_harness.run_args(logdir, 200)])
    before = _read_until(proc, at)
    proc.send_signal(sig)
    rest = proc.communicate(timeout=300)[1]
    return proc.returncode, "".join(before) + rest


def test_sigint_saves_at_the_current_step_and_the_continued_run_is_the_uninterrupted_one(tmp_path):
    kill_harness.reference_run(tmp_path / "reference", 200)
    logdir = tmp_path / "stopped"
    code, err = _stop(logdir, signal.SIGINT, r"step 100/200")
    assert code == 130, err[-3000:]
    assert "Traceback" not in err
    stopped_at = int(STOP_LINE.search(err).group(1).replace(",", ""))
    assert 100 <= stopped_at < 200
    path, payload = checkpoint.load_latest(logdir / "checkpoints")
    assert path.name == f"ckpt-{stopped_at:010d}.pt" and payload["progress"]["step"] == stopped_at
    # Progress on a non-terminal stderr: the start block, then a plain line every log_every steps.
    assert "training gym:CartPole-v1, size xs" in err and f"tensorboard --logdir {logdir}" in err
    assert re.search(r"step 75/200 \(38%\)  [\d.]+ steps/s  updates \d+  last return ([\d.]+|none yet)  ETA ", err), err

    again = subprocess.run([sys.executable, "-m", "dreamer", *kill_harness.run_args(logdir, 200)],
                           capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"continuing from {path}" in again.stderr
    kill_harness.compare_runs(tmp_path / "reference", logdir)


def test_sigterm_exits_143_with_a_checkpoint(tmp_path):
    code, err = _stop(tmp_path / "run", signal.SIGTERM, r"step 75/200")
    assert code == 143 and "Traceback" not in err, err[-3000:]
    stopped_at = int(STOP_LINE.search(err).group(1).replace(",", ""))
    assert checkpoint.list_checkpoints(tmp_path / "run" / "checkpoints")[-1].name == f"ckpt-{stopped_at:010d}.pt"


SECOND_SIGNAL = """
import os, signal, sys, time
from dreamer.stopping import StopRequest
with StopRequest() as stop:
    os.kill(os.getpid(), signal.SIG{name})
    time.sleep(0.2)  # the handler runs: the stop is only requested
    print("requested", stop.signum == signal.SIG{name}, flush=True)
    os.kill(os.getpid(), signal.SIG{name})
    time.sleep(5)
print("not reached")
"""


@pytest.mark.parametrize("name", ["INT", "TERM"])
def test_a_second_signal_exits_at_once(name):
    done = subprocess.run([sys.executable, "-c", SECOND_SIGNAL.format(name=name)], capture_output=True, text=True,
                          env=_env(), cwd=ROOT, timeout=60)
    assert done.returncode == 128 + getattr(signal, f"SIG{name}")
    assert done.stdout == "requested True\n" and f"SIG{name} again: exiting now" in done.stderr
    assert "Traceback" not in done.stderr


def test_torchrun_ranks_stop_at_the_same_step(tmp_path):
    """SIGTERM to rank 1 alone: rank 0 stops at the same iteration, at a step where the ranks agree,
    and writes one checkpoint that holds both ranks' replay positions; the ranks exit 143."""
    logdir = tmp_path / "run"
    proc = _start([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "-m", "dreamer", *kill_harness.run_args(logdir, 400)])
    _read_until(proc, r"step 100/400")
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    ranks = {}
    for pid in workers:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = next((e.split(b"=")[1] for e in environ if e.startswith(b"RANK=")), None)
        if rank is not None:
            ranks[int(rank)] = int(pid)
    os.kill(ranks[1], signal.SIGTERM)
    err = proc.communicate(timeout=300)[1]
    # Both ranks stop cleanly at one step (each prints the stop line as it returns 143); the ranks
    # agree on stopping every `run.agree_every` steps, so that step is the first such after the signal.
    stops = {int(step.replace(",", "")) for step in STOP_LINE.findall(err)}
    assert len(STOP_LINE.findall(err)) == 2 and len(stops) == 1, err[-3000:]
    stopped_at = stops.pop()
    agree_every = load_config([], {"env": "gym:CartPole-v1"}).run.agree_every
    assert stopped_at % agree_every == 0 and 100 <= stopped_at < 400
    assert err.count("Traceback (most recent call last)") == 1, err[-3000:]  # torchrun's own, of its report
    # torchrun ends with status 1 and reports its workers' statuses: the first rank to exit left with
    # 143 (SIGTERM's clean stop). The other either does too or, once its checkpoint is written and
    # its handlers are gone, is ended by the SIGTERM torchrun sends the rest of a failed group (-15).
    assert proc.returncode == 1, err[-3000:]
    report = re.search(r"Root Cause.*?exitcode\s*: (-?\d+).*", err, re.S)
    exits = [int(code) for code in re.findall(r"^\s*exitcode\s*: (-?\d+)", err, re.M)]  # the report's, per rank
    assert report and int(report.group(1)) == 143, err[-3000:]
    assert len(exits) == 2 and set(exits) <= {143, -signal.SIGTERM}, err[-3000:]
    _, payload = checkpoint.load_latest(logdir / "checkpoints")
    assert payload["progress"]["step"] == stopped_at
    assert [sum(r["replay_written"]) for r in payload["ranks"]] == [stopped_at // 2] * 2
