"""The run folder's lock: one `dreamer train` per folder. A second training run on a folder that a
running one holds is refused at once with one line naming the holder (host, PID) and leaves the
running one's files alone; a holder killed with SIGKILL leaves no lock behind; only the process
that writes the folder (rank 0 under torchrun) takes the lock."""

import fcntl
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dreamer import checkpoint
from dreamer.cli import main
from dreamer.runlock import LOCK_NAME, RunFolderInUse, describe_holder, run_lock, writes_run_folder
from tests.conftest import train_args

ROOT = Path(__file__).resolve().parent.parent
importlib.import_module("dreamer.train")  # loaded once here, so the refused second run is not timed importing it


def start_training(logdir: Path, steps: int, output: Path) -> subprocess.Popen:
    """A tiny `dreamer train` in its own process (and session), its stdout and stderr in `output`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(output, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "dreamer", *train_args(logdir, "gym:CartPole-v1", steps)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)


def wait_for_holder(proc: subprocess.Popen, lock_file: Path, output: Path, timeout: float = 120) -> None:
    """Until the lock file names `proc` as its holder; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock_file.exists() and lock_file.read_text().split()[1:2] == [str(proc.pid)]:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it held the lock:\n{output.read_text()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"the run held no lock within {timeout} s")


def test_a_second_open_of_the_lock_is_refused_with_the_holder_and_a_released_lock_is_free(tmp_path):
    """flock locks belong to an open file, so two opens in one process conflict like two processes."""
    folder = tmp_path / "runs" / "x"
    with run_lock(folder) as lock_file:
        host, pid, since = lock_file.read_text().split()
        assert (host, pid) == (socket.gethostname(), str(os.getpid()))
        with pytest.raises(RunFolderInUse) as refused:
            with run_lock(folder):
                pytest.fail("a second open of the lock file took it")
    message = str(refused.value)
    assert f"run folder {folder} is in use by another training run (host {host}, PID {pid}, since " in message
    assert "\n" not in message and "another --logdir" in message
    assert lock_file.read_text() == ""  # released: names no holder
    with run_lock(folder) as again:  # the file left behind does not block
        assert again.read_text().split()[1] == str(os.getpid())


def test_a_holder_that_has_not_written_its_line_yet_is_still_refused(tmp_path):
    tmp_path.joinpath(LOCK_NAME).write_text("old-host 99 2020-01-01T00:00:00Z\n")
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)  # a holder between emptying the file and writing its line
        with pytest.raises(RunFolderInUse, match="holder not yet recorded"):
            with run_lock(tmp_path):
                pass
    finally:
        os.close(fd)


def test_the_holder_line_reads_as_host_pid_and_start():
    assert describe_holder("vm 1234 2026-12-07T18:00:05Z\n") == "host vm, PID 1234, since 2026-12-07 18:00 UTC"
    assert describe_holder("") == "holder not yet recorded"


@pytest.mark.parametrize("rank, locks", [(None, True), ("0", True), ("1", False), ("3", False)])
def test_only_the_process_that_writes_the_folder_locks_it(monkeypatch, rank, locks):
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    assert writes_run_folder() is locks


def test_a_second_training_run_on_a_busy_folder_exits_at_once_naming_the_holder(tmp_path, capsys):
    logdir, output, steps = tmp_path / "run", tmp_path / "first.log", 60
    first = start_training(logdir, steps, output)
    try:
        wait_for_holder(first, logdir / LOCK_NAME, output)
        status = main(train_args(logdir, "gym:CartPole-v1", steps, "--seed", "7"))
        running = first.poll() is None
        err = capsys.readouterr().err
        first.wait(timeout=300)
    finally:
        first.kill()
    assert status == 2
    assert running, "the second run returned only after the first had ended"
    assert err.count("\n") == 1
    assert err.startswith(f"dreamer: error: run folder {logdir} is in use by another training run "
                          f"(host {socket.gethostname()}, PID {first.pid}, since ")
    log = output.read_text()
    assert first.returncode == 0, log[-3000:]
    assert f"trained to step {steps}" in log
    assert "seed: 0\n" in (logdir / "config.yaml").read_text()  # the first run's config, not seed 7's
    assert checkpoint.list_checkpoints(logdir / "checkpoints")[-1].name == f"ckpt-{steps:010d}.pt"
    assert (logdir / LOCK_NAME).read_text() == ""


def test_a_run_killed_while_it_held_the_folder_does_not_block_the_next(tmp_path, capsys):
    logdir, output = tmp_path / "run", tmp_path / "killed.log"
    killed = start_training(logdir, 1000, output)
    try:
        wait_for_holder(killed, logdir / LOCK_NAME, output)
    finally:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=60)
    assert str(killed.pid) in (logdir / LOCK_NAME).read_text()  # the dead holder's line stays behind
    assert main(train_args(logdir, "gym:CartPole-v1", 20)) == 0  # within the prefill: no updates, quick
    assert "trained to step 20" in capsys.readouterr().out
