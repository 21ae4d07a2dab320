"""Clean stops: SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption) ask a run to stop.

The first signal only sets a flag; the training loop finishes the iteration in progress (one env
step and the updates it pays for), saves a checkpoint at that step and raises `Stopped`, which the
CLI turns into exit status 128 + signal (130 for SIGINT, 143 for SIGTERM). A second signal exits at
once; the last checkpoint is kept (checkpoints and replay chunks are written atomically).

Env workers in subprocesses ignore both signals (`children_ignore_signals`): a terminal's Ctrl-C goes
to the whole process group, and a worker killed by it would break the env step the loop finishes.
They still stop when the run closes them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """The run stopped on a signal after saving; `signum` is the signal."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped at step {step:,}; checkpoint saved; run the same command to continue")
        self.signum, self.step = signum, step

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class StopRequest:
    """Installs the handlers for the duration of a `with` block (main thread only; elsewhere the
    block runs with the handlers it had). `signum` is the first signal received, or None."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: object) -> None:
        # Written directly, not through `logging`: a handler that interrupts a logging call would
        # wait forever on the lock that call holds.
        name = signal.Signals(signum).name
        start = "\n" if sys.stderr.isatty() else ""  # off the progress bar's line
        if self.signum is not None:
            sys.stderr.write(f"{start}dreamer: {name} again: exiting now; the last checkpoint is kept\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = signum
        sys.stderr.write(f"{start}dreamer: {name}: stopping after the current update and saving a checkpoint "
                         f"(send it again to exit at once)\n")
        sys.stderr.flush()

    @contextmanager
    def children_ignore_signals(self) -> Iterator[None]:
        """Processes started inside the block ignore SIGINT and SIGTERM (an ignored signal stays
        ignored across exec). A signal that arrives meanwhile is lost to this process too, so keep
        the block short: starting the env workers."""
        if not self._previous:
            yield
            return
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            yield
        finally:
            for sig in SIGNALS:
                signal.signal(sig, self._handle)
