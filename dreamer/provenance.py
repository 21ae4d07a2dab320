"""What a run's numbers were measured with: one line per start of the run in its folder's
`starts.jsonl` (the step it started at, the code's commit, the library versions, the device, the
precision and the CPU threads), so that a table made from a run can name its commit.

The thread count belongs here because it changes the numbers: a CPU matmul sums in a different
order on one thread than on two, and the tiny differences grow over an RL run (two runs with the
same seed and commit are identical on the same thread count and not across thread counts).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import torch

import dreamer

STARTS_FILE = "starts.jsonl"  # in a run folder: one record per start of the run
GIT_SECONDS = 10  # a git that does not answer in this long is taken as no git


def code_commit() -> str | None:
    """The commit of the package's source checkout, with "+changes" where tracked files differ
    from it; None where the package is not a git checkout (an installed wheel) or git is missing."""
    root = Path(dreamer.__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=GIT_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    changes = git("status", "--porcelain", "--untracked-files=no", "--", "dreamer", "configs")
    return commit + ("+changes" if changes else "")


def start_record(step: int, device: torch.device, precision: str, world: int) -> dict:
    """The record of one start: where it started and what it ran with."""
    return {
        "step": step,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dreamer": dreamer.__version__,
        "commit": code_commit(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": str(device),
        "precision": precision,
        "cpu_threads": torch.get_num_threads(),
        "processes": world,
        "argv": sys.argv,
    }


def record_start(logdir: Path, step: int, device: torch.device, precision: str, world: int) -> None:
    """Append this start's record to `logdir/starts.jsonl` (a line cut short by a kill is skipped
    by `dreamer.logging.read_jsonl`)."""
    with open(Path(logdir) / STARTS_FILE, "a") as file:
        file.write(json.dumps(start_record(step, device, precision, world)) + "\n")
