"""Atomic checkpoints with compatibility checks.

A checkpoint is one `torch.save` file written to a temp name, flushed and fsynced, then renamed
over its final name, so a crash never leaves a half-written file under a checkpoint's name. The
newest `keep` checkpoints are kept; loading falls back to an older one when the newest is
unreadable, and says so.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from dreamer import distributed

FORMAT_VERSION = 2  # 2: checkpoints carry the envs, policy state and unlogged metric sums
log = logging.getLogger("dreamer")
NAME = re.compile(r"^ckpt-(\d{10})\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or from an incompatible run; one-line message."""


def atomic_write(path: Path, write) -> None:
    """Call `write(file)` on a temp file next to `path`, fsync, then rename it to `path`. On failure
    the temp file goes and `path` keeps its old content; an OS error (a full disk, a permission)
    is raised naming `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temp_files(directory: Path) -> None:
    """Delete the temp files of writes that a killed process never renamed."""
    if directory.is_dir():
        for path in directory.glob(".*.tmp"):
            path.unlink(missing_ok=True)


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if NAME.match(p.name))


def save(directory: Path, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
    path = directory / f"ckpt-{step:010d}.pt"
    atomic_write(path, lambda f: torch.save({"format": FORMAT_VERSION, **payload}, f))
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _read(path: Path, map_location: Any) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"checkpoint {path} is unreadable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}; this version reads format {FORMAT_VERSION}")
    return payload


def load_latest(directory: Path, map_location: Any = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest readable checkpoint in `directory` (None if there is none at all)."""
    paths = list_checkpoints(directory)
    if not paths:
        return None
    errors = []
    for path in reversed(paths):
        try:
            payload = _read(path, map_location)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        for message in errors:
            log.warning(f"{message}; falling back to {path.name}")
        return path, payload
    raise CheckpointError("; ".join(errors))


def load_latest_on_all_ranks(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """`load_latest` onto the CPU, where rank 0 alone chooses the checkpoint (falling back past
    unreadable ones) and every rank loads that file, so all ranks continue from one step. A rank
    that cannot read it stops every rank with the same error instead of leaving them waiting."""
    if not distributed.active():
        return load_latest(directory)
    choice: Path | str | None = None
    if distributed.rank() == 0:
        try:
            found = load_latest(directory)
            choice = found[0] if found else None
        except CheckpointError as err:
            choice = str(err)
    choice = distributed.broadcast(choice)
    if choice is None:
        return None
    if isinstance(choice, str):
        raise CheckpointError(choice)
    try:
        payload, error = _read(choice, "cpu"), None
    except CheckpointError as err:
        payload, error = None, f"rank {distributed.rank()}: {err}"
    errors = [e for e in distributed.gather(error) if e]
    if errors:
        raise CheckpointError("; ".join(errors))
    return choice, payload


def resolve(path: Path, map_location: Any = "cpu") -> tuple[Path, dict[str, Any]]:
    """A checkpoint file, a `checkpoints/` folder or a run's logdir -> (file, payload)."""
    if not path.exists():
        raise CheckpointError(f"checkpoint path {path} does not exist")
    if path.is_file():
        return path, _read(path, map_location)
    for directory in (path / "checkpoints", path):
        found = load_latest(directory, map_location)
        if found:
            return found
    raise CheckpointError(f"no checkpoint (ckpt-*.pt) in {path} or {path / 'checkpoints'}")


def check_compatible(stored: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a checkpoint whose identity (recipe, env, widths, spaces) differs from the current run's."""
    saved_recipe = str(stored.get("recipe", "2023"))  # checkpoints from before the 2024 recipe are P1's
    if saved_recipe != current.get("recipe", "2023"):
        raise CheckpointError(f"checkpoint was trained with recipe {saved_recipe}, this run uses recipe "
                              f"{current['recipe']}; accepted: --recipe {saved_recipe}, or a new logdir")
    stored = {"recipe": saved_recipe, **stored}
    differ = [f"{key}: checkpoint has {stored.get(key)!r}, this run has {value!r}"
              for key, value in current.items() if stored.get(key) != value]
    if differ:
        raise CheckpointError("checkpoint does not match this run (" + "; ".join(differ) + ")")
