"""Atomic checkpoints that load without running code, with compatibility checks.

A checkpoint is one `torch.save` file written to a temp name, flushed and fsynced, then renamed
over its final name, so a crash never leaves a half-written file under a checkpoint's name. The
newest `keep` checkpoints are kept; loading falls back to an older one when the newest is
unreadable, and says so.

Loading never runs code from the file: `torch.load(weights_only=True)` accepts tensors, plain
containers and values, and numpy arrays (`SAFE_GLOBALS`); anything else (a pickled object, whose
loading could call any function) is refused in one line naming the file. The one pickle a run keeps,
its in-process envs, travels inside as bytes with a signature (`dreamer.signing`) and is unpickled
only by a training run of the user whose key signed it. Checkpoints of format 2 held a pickled
object; `dreamer upgrade-checkpoint DIR --trust` converts them once.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from dreamer import distributed
from dreamer.errors import first_line

# 2: checkpoints carry the envs, policy state and unlogged metric sums; 3: they load with
# weights_only (no pickled objects; the envs' pickles signed)
FORMAT_VERSION = 3
UPGRADABLE_FORMATS = (2,)
log = logging.getLogger("dreamer")
NAME = re.compile(r"^ckpt-(\d{10})\.pt$")
# numpy arrays (RNG states, the envs' last observations) rebuilt without running code: an array's
# pickle names its rebuilding function, the array and dtype types and its dtype's class; the items
# of an object array go through the same checks
SAFE_GLOBALS = [getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct,  # numpy 2, 1
                np.ndarray, np.dtype,
                *(getattr(np.dtypes, name) for name in dir(getattr(np, "dtypes", None)) if name.endswith("DType"))]
TRAINING_KEYS = ("identity", "config", "agent", "optimizers", "ratio", "progress", "metrics", "episode_stats",
                 "logged_step", "nonfinite", "ranks")


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
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        unsafe = isinstance(err, pickle.UnpicklingError) and unsafe_globals(path)
        if unsafe:
            raise CheckpointError(unsafe_message(path, unsafe)) from None
        raise CheckpointError(f"checkpoint {path} is unreadable: {first_line(err)}") from None
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found in UPGRADABLE_FORMATS:
        raise CheckpointError(f"checkpoint {path} has format {found}, from an earlier version; convert it once with "
                              f"`dreamer upgrade-checkpoint {path.parent} --trust` if you trust where it came from")
    if found != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {found!r}; this version reads format {FORMAT_VERSION}")
    missing = [key for key in ("config", "agent") if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by `dreamer train`")
    return payload


def unsafe_globals(path: Path) -> list[str]:
    """The functions and classes a checkpoint's pickle names beyond the safe ones (none for a file
    too damaged to list)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 -- not a pickle at all: unreadable, not unsafe
        return []
    return [n for n in names if n not in {f"{g.__module__}.{g.__name__}" for g in SAFE_GLOBALS}]


def unsafe_message(path: Path, names: list[str]) -> str:
    """Why a checkpoint naming `names` was refused, and what to do about one of an earlier version."""
    if all(n.startswith("dreamer.") for n in names):  # what format 2 pickled: the policy's latent
        return (f"checkpoint {path} is of an earlier version (format 2, it pickles {', '.join(names)}); convert it "
                f"once with `dreamer upgrade-checkpoint {path.parent} --trust` if you trust where it came from")
    return (f"checkpoint {path} holds objects that loading would have to run ({', '.join(names)}); not loaded. "
            f"Only tensors, numpy arrays and plain values are read")


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """A part of a checkpoint's payload that is missing or of the wrong kind -> one line naming the file."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path} is incomplete or malformed ({type(err).__name__}: {err}); "
                              f"a run cannot continue from it") from None


def require_training_keys(path: Path, payload: dict[str, Any]) -> None:
    """A checkpoint a run continues from has every part the run restores."""
    missing = [key for key in TRAINING_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; a run cannot continue from it")


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
    older = f" (and the {len(errors) - 1} older one{'s' if len(errors) > 2 else ''} cannot be read either)"
    raise CheckpointError(errors[0] + (older if len(errors) > 1 else ""))


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


def upgrade(path: Path, trust: bool) -> list[tuple[Path, str]]:
    """Convert the format-2 checkpoints of a file, a `checkpoints/` folder or a run's logdir to the
    current format, in place (each written atomically); returns (file, what was done) per file.

    A format-2 file holds a pickled object, so reading it runs whatever code the file names: only
    with `trust`, for files the user or a source they trust wrote. The envs' pickles it carries are
    signed with this user's key, so a continued run restores them."""
    if not trust:
        raise CheckpointError("upgrading reads the old checkpoint with pickle, which runs any code the file names; "
                              "accepted: --trust, for checkpoints you or a source you trust wrote")
    if path.is_file():
        paths = [path]
    else:
        paths = list_checkpoints(path / "checkpoints") or list_checkpoints(path)
    if not paths:
        raise CheckpointError(f"no checkpoint (ckpt-*.pt) in {path} or {path / 'checkpoints'}")
    done = []
    for file in paths:
        try:
            payload = torch.load(file, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 -- torch raises many types for corrupt files
            raise CheckpointError(f"checkpoint {file} is unreadable: {first_line(err)}") from None
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        if found == FORMAT_VERSION:
            done.append((file, f"already format {FORMAT_VERSION}"))
            continue
        if found not in UPGRADABLE_FORMATS:
            raise CheckpointError(f"checkpoint {file} has format {found!r}; accepted: format "
                                  f"{', '.join(map(str, UPGRADABLE_FORMATS))} (or {FORMAT_VERSION}, left as it is)")
        with reading(file):
            converted = _from_format_2(payload)
        atomic_write(file, lambda f: torch.save(converted, f))
        _read(file, "cpu")  # the converted file loads safely
        done.append((file, f"format {found} -> {FORMAT_VERSION}"))
    return done


def _from_format_2(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 2 -> 3: the policy state's latent as a plain tuple, the envs' pickles signed, the
    replay's RNG and online queue under one key, and a video RNG where an early file had none."""
    from dreamer import signing

    ranks = []
    for local in payload["ranks"]:
        local = dict(local)
        if local.get("policy") is not None:
            latent, action = local["policy"]
            local["policy"] = (tuple(latent), action)
        driver = dict(local["driver"])
        if driver.get("envs") is not None:
            driver["envs_signatures"] = [signing.sign(blob) for blob in driver["envs"]]
        local["driver"] = driver
        if "replay" not in local:
            queue = local.pop("replay_queue", {"queue": []})
            local["replay"] = {"queue": queue["queue"], "rng": local.pop("replay_rng")}
        local.setdefault("video_rng", np.random.default_rng([0, 1]).bit_generator.state)
        ranks.append(local)
    return {**payload, "format": FORMAT_VERSION, "ranks": ranks}
