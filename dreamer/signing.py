"""Signatures for the one pickle a checkpoint keeps: the state of envs that run in this process.

Unpickling runs whatever code the pickle names, so a checkpoint someone else wrote must never be
unpickled. A run signs its envs' pickles with a key of this user (HMAC-SHA256), kept outside every
run folder in `~/.config/dreamer/checkpoint-key` (or the file `DREAMER_KEY_FILE` names), created
on first use with permissions 0600. A continued run unpickles envs only when the signature matches
that key: its own runs, or the user's runs on machines sharing the home folder. A checkpoint from
elsewhere still continues; its envs then start new episodes, as envs in subprocesses always do.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

KEY_BYTES = 32


def key_file() -> Path:
    configured = os.environ.get("DREAMER_KEY_FILE")
    if configured:
        return Path(configured)
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "dreamer" / "checkpoint-key"


def user_key() -> bytes:
    """This user's key, created when there is none: written to a temp file readable by the user
    alone, then linked under its name, so concurrent runs all read the one key that won."""
    path = key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process created it meanwhile
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


def sign(data: bytes) -> str:
    return hmac.new(user_key(), data, hashlib.sha256).hexdigest()


def signed_by_this_user(data: bytes, signature: str | None) -> bool:
    return isinstance(signature, str) and hmac.compare_digest(sign(data), signature)
