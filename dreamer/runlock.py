"""One training run per run folder: an exclusive OS file lock on `LOGDIR/.lock`.

`dreamer train` holds the lock for as long as it trains; a second `dreamer train` on the same
folder is refused at once with the holder's host, PID and start time, which the holder writes into
the lock file. The lock is `flock(2)` on the open file, so the kernel drops it when the holder's
process ends in any way (SIGKILL and crashes included): the file left behind never blocks a later
run. `eval` and `imagine` only read a run folder and take no lock.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dreamer.config import ConfigError

LOCK_NAME = ".lock"


class RunFolderInUse(ConfigError):
    """Another process holds the run folder's lock; the message names it (host, PID, start)."""


def holder_line() -> str:
    """What a lock holder writes into the lock file: `HOST PID START` (START in UTC, ISO 8601)."""
    start = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{socket.gethostname()} {os.getpid()} {start}\n"


def describe_holder(line: str) -> str:
    """`host H, PID P, since DATE UTC` from a holder line; a line not in that form is shown as is."""
    parts = line.split()
    if len(parts) != 3 or not parts[1].isdigit():
        return f"holder: {line.strip()!r}" if line.strip() else "holder not yet recorded"
    host, pid, start = parts
    since = start.replace("T", " ").rstrip("Z")[:16]
    return f"host {host}, PID {pid}, since {since} UTC"


def read_holder(fd: int, attempts: int = 20, pause: float = 0.025) -> str:
    """The holder line in the lock file open as `fd`. The holder empties the file before writing its
    line, so an empty read is retried a few times before giving up."""
    line = ""
    for _ in range(attempts):
        line = os.pread(fd, 4096, 0).decode(errors="replace")
        if line.endswith("\n"):
            break
        time.sleep(pause)
    return line


@contextmanager
def run_lock(logdir: str | os.PathLike[str]) -> Iterator[Path]:
    """Create `logdir` and hold its exclusive lock inside the block; yields the lock file's path.

    Raises `RunFolderInUse` at once when another open of the lock file holds it (another process,
    or another open in this one). On leaving, the holder line is erased and the lock released."""
    folder = Path(logdir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(read_holder(fd))
            raise RunFolderInUse(
                f"run folder {folder} is in use by another training run ({holder}); "
                f"accepted: wait for it to end, or train in another --logdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_line().encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # a released lock names no holder; closing the file releases it
    finally:
        os.close(fd)


def writes_run_folder() -> bool:
    """Whether this process writes the run folder and so takes its lock: rank 0 under torchrun (the
    RANK variable `distributed.setup` reads), or a process started on its own."""
    return int(os.environ.get("RANK", "0")) == 0
