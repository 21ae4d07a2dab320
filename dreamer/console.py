"""What a run prints on stderr: the start block, its progress and its warnings.

On a terminal progress is a bar; otherwise (`> train.log`, nohup, SLURM, `docker logs`) it is one
plain line every `run.log_every` steps. Messages go through the `dreamer` logger, written above
the bar so a warning never tears it.
"""

from __future__ import annotations

import datetime
import logging
import math
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from tqdm import tqdm

log = logging.getLogger("dreamer")


class _AboveTheBar(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 -- logging must never stop the run
            self.handleError(record)


class _Prefix(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "dreamer: warning: " if record.levelno >= logging.WARNING else "dreamer: "
        return prefix + record.getMessage()


@contextmanager
def quiet() -> Iterator[None]:
    """Inside the block the `dreamer` logger passes warnings only (a run's start block and
    progress lines are left out, e.g. of the runs `dreamer bench` and `dreamer check` make)."""
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def setup_logging() -> None:
    """INFO and above of the `dreamer` logger to stderr (once per process)."""
    if any(isinstance(h, _AboveTheBar) for h in log.handlers):
        return
    handler = _AboveTheBar()
    handler.setFormatter(_Prefix())
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def counted(count: int, noun: str) -> str:
    """`count` and `noun`, the noun plural unless the count is one: '1 episode', '3 episodes'."""
    return f"{count:,} {noun if count == 1 else noun + 's'}"


def _return_text(last_return: float, decimals: int) -> str:
    """The last episode's return, or "none yet" before the first episode has ended (NaN)."""
    return "none yet" if math.isnan(last_return) else f"{last_return:.{decimals}f}"


class Console:
    """The progress of a run from `initial` to `total` steps (rank 0 only: `enabled`).

    A plain line gives the speed since the last line. Its ETA comes from the speed of an interval
    that trained throughout (updates already counted at its start): before the first update the
    steps are the prefill's random actions, or the 2024 recipe's first steps before the replay
    holds a batch, far faster than training, and the interval in which training starts (or a
    continued run starts up) mixes both. Until such an interval has passed the line says when
    the ETA comes."""

    def __init__(self, total: int, initial: int, name: str, enabled: bool):
        self.total, self.enabled = total, enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc=name,
                        disable=not self.interactive, file=sys.stderr)
        self.since = (time.monotonic(), initial)
        self.updates_at_last_line: int | None = None  # unknown before the first line

    def update(self, steps: int, updates: int, last_return: float) -> None:
        if self.interactive:
            self.bar.update(steps)
            self.bar.set_postfix(updates=updates, ret=_return_text(last_return, 1), refresh=False)

    def line(self, step: int, updates: int, last_return: float) -> None:
        """Without a terminal: step, speed since the last line, updates, last return and ETA."""
        if not self.enabled or self.interactive:
            return
        now = time.monotonic()
        start, first = self.since
        rate = (step - first) / max(now - start, 1e-9)
        trained_throughout = bool(self.updates_at_last_line)
        self.since, self.updates_at_last_line = (now, step), updates
        if updates == 0:
            eta = "once training starts"
        elif not trained_throughout:
            eta = "at the next line"
        elif rate > 0:
            eta = str(datetime.timedelta(seconds=round((self.total - step) / rate)))
        else:
            eta = "?"
        log.info(f"step {step:,}/{self.total:,} ({100 * step / self.total:.0f}%)  {rate:.1f} steps/s  "
                 f"updates {updates:,}  last return {_return_text(last_return, 2)}  ETA {eta}")

    def close(self) -> None:
        self.bar.close()
