"""Replay: a FIFO ring of steps per env, uniform (B, T) windows, chunks on disk, the ratio counter.

Each env writes its own ring of `capacity // envs` steps (at most the run's steps), so a window
never mixes two envs' streams but may cross an episode boundary (the step after a reset carries
`is_first`). Arrays are allocated lazily (`np.empty` pages are only backed once written), so memory
follows what is stored; images stay uint8 until the learner. When an env's episode ends, or after
`chunk` steps of a longer one, its unsaved steps are written to disk as one `.npz` (temp file, then
rename), and `load` refills the rings from those files on resume.

A file that cannot be used on resume (a disk error, a copy cut short, bytes overwritten) must not
end the run, and retrying would meet it again: it is moved to `damaged/` beside the chunks with one
warning, and the replay is filled from the others. Steps on either side of a missing chunk are not
one stream, so the first step after such a gap is marked `is_first`, as after an episode's reset.

The 2024 recipe (design-2024.md section 7) adds three things, asked for by its agent:
    stored     per-step values the agent keeps beside the observation (its posterior latents),
               overwritten by `write_back` with the posteriors of each update (one update late);
               `flush` saves them as `latents.npz`, so a continued run has the latents it had
    context    steps before the trained window: batches are `batch_length + context` long
    online     every `window`-th step of an env queues the window that it ends; training batches
               take queued windows first (each once), then uniform ones
Steps are named by their absolute number per env (0 = the first step ever added), which stays
valid while the ring moves on; a write-back to a step already evicted is dropped.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np

from dreamer.checkpoint import atomic_write, remove_temp_files
from dreamer.config import ConfigError, ReplayConfig
from dreamer.console import log
from dreamer.errors import first_line

CHUNK_NAME = re.compile(r"^env(\d+)-(\d{8})\.npz$")
LATENTS_FILE = "latents.npz"
DAMAGED_FOLDER = "damaged"  # files `load` could not use, kept for a look rather than deleted
ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of every `.npz`


class DamagedFile(Exception):
    """A replay file that cannot be used; the message says why in a few words."""


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """The `.npz` at `path`, opened without unpickling anything; DamagedFile naming what is wrong
    with it when it is empty, not an archive, or an archive cut short."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(ZIP_MAGIC))
        if not start:
            raise DamagedFile("an empty file")
        if start != ZIP_MAGIC:
            raise DamagedFile("not an .npz archive")
        return np.load(path, allow_pickle=False)
    except DamagedFile:
        raise
    except zipfile.BadZipFile as err:
        raise DamagedFile(f"an archive cut short or corrupted, {first_line(err)}") from None
    except Exception as err:  # a disk error, a member header numpy cannot parse
        raise DamagedFile(first_line(err)) from None


def check_array(name: str, array: np.ndarray, shape: tuple, dtype: np.dtype) -> None:
    """`array` must be `dtype` and shaped (steps, *shape): what the replay stores under `name`."""
    if array.dtype != dtype or array.shape[1:] != tuple(shape):
        wanted = "(steps" + "".join(f", {size}" for size in shape) + ")"
        raise DamagedFile(f"{name!r} is {array.dtype} {array.shape}, the replay stores {np.dtype(dtype)} {wanted}")


def step_spaces(obs_space: gym.spaces.Dict, act_space: gym.spaces.Space) -> dict[str, tuple[tuple, np.dtype]]:
    """Shape and dtype of each stored key: model inputs, reward, flags and the model-form action."""
    keys = {k: (s.shape, s.dtype) for k, s in obs_space.spaces.items() if not k.startswith("log_")}
    size = int(act_space.n) if isinstance(act_space, gym.spaces.Discrete) else act_space.shape[0]
    keys["action"] = ((size,), np.dtype(np.float32))
    return keys


def chunk_files(directory: Path) -> dict[int, list[tuple[int, Path]]]:
    """Chunks on disk per env: (steps written by the chunk's end, path), oldest first."""
    chunks: dict[int, list[tuple[int, Path]]] = {}
    if directory.is_dir():
        for path in directory.iterdir():
            if m := CHUNK_NAME.match(path.name):
                chunks.setdefault(int(m[1]), []).append((int(m[2]), path))
    return {env: sorted(files) for env, files in sorted(chunks.items())}


def available_memory() -> int:
    """Bytes the OS can still hand out (MemAvailable), or the physical memory where that is unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class Replay:
    """`storage` memory keeps the rings in RAM; disk keeps them in memory-mapped `.npy` files in
    `directory/storage/` (the chunks stay the record a continued run reloads from)."""

    def __init__(self, cfg: ReplayConfig, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space,
                 envs: int, directory: Path | None = None, seed: int = 0,
                 stored: dict[str, tuple[tuple, np.dtype]] | None = None, context: int = 0, online: bool = False,
                 steps: int | None = None):
        """`steps`, when given, is the most steps a run will add: the rings hold no more than that."""
        self.cfg, self.envs = cfg, envs
        self.per_env = min(cfg.capacity, steps or cfg.capacity) // envs
        self.stored = dict(stored or {})
        self.keys = {**step_spaces(obs_space, act_space), **self.stored}
        self.window = cfg.batch_length + context
        self.online = online
        self.queue: deque[tuple[int, int]] = deque()  # (env, first step) of windows not trained on yet
        self.pending: deque[np.ndarray] = deque()  # (B, 2) [env, first step] of batches awaiting write-back
        self.step_bytes = sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in self.keys.values())
        self.check_fits(self.per_env * envs)  # before the rings are reserved
        if cfg.storage == "disk":
            if directory is None:
                raise ConfigError("replay.storage=disk needs a replay directory; accepted: storage=memory")
            (directory / "storage").mkdir(parents=True, exist_ok=True)
            self.data = {k: np.lib.format.open_memmap(directory / "storage" / f"{k}.npy", mode="w+", dtype=dtype,
                                                      shape=(envs, self.per_env, *shape))
                         for k, (shape, dtype) in self.keys.items()}
        else:
            self.data = {k: np.empty((envs, self.per_env, *shape), dtype) for k, (shape, dtype) in self.keys.items()}
        self.head = np.zeros(envs, np.int64)  # next write position per env
        self.count = np.zeros(envs, np.int64)  # steps stored per env (<= per_env)
        self.written = np.zeros(envs, np.int64)  # steps ever added per env
        self.saved = np.zeros(envs, np.int64)  # steps of `written` already on disk
        self.unbroken = np.zeros(envs, np.int64)  # newest steps `load` restored with no gap among them
        self.gap_before_next = np.zeros(envs, bool)  # steps `load` could not restore precede the next add
        self.directory = directory
        self.rng = np.random.default_rng(seed)
        self._thread: ThreadPoolExecutor | None = None
        self._drawing: Future | None = None  # the next training batch, drawn in the background
        self._before_draw: dict[str, Any] | None = None  # `state_dict()` as it was before that draw

    def __len__(self) -> int:
        return int(self.count.sum())

    def items(self, length: int | None = None) -> int:
        """Windows of `length` (default: a training window) that start at a stored step."""
        return int(np.maximum(self.count - (length or self.window) + 1, 0).sum())

    def steps_until(self, windows: int) -> int:
        """Steps every env must still add before the replay holds `windows` training windows (rings
        too small to hold them: the steps that fill every ring)."""
        def windows_after(steps: int) -> int:
            stored = np.minimum(self.count + steps, self.per_env)
            return int(np.maximum(stored - self.window + 1, 0).sum())

        low, high = 0, self.per_env  # windows_after grows with the steps: the fewest that suffice
        while low < high:
            middle = (low + high) // 2
            if windows_after(middle) >= windows:
                high = middle
            else:
                low = middle + 1
        return low

    def ring_index(self, env: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Ring positions of absolute steps (broadcast over env and step)."""
        return (self.head[env] - (self.written[env] - step)) % self.per_env

    def stored_since(self, env: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Whether each absolute step is still in the ring."""
        return (self.written[env] - step <= self.count[env]) & (step < self.written[env])

    def nbytes(self) -> int:
        """Bytes of the steps stored (the raw size of what is held)."""
        return len(self) * self.step_bytes

    def check_fits(self, steps: int) -> None:
        """In-memory storage must fit the steps a run of `steps` can store into the available memory."""
        needed = min(self.cfg.capacity, steps) * self.step_bytes
        available = available_memory()
        if self.cfg.storage == "memory" and needed > available:
            raise ConfigError(
                f"replay of {min(self.cfg.capacity, steps):,} steps x {self.step_bytes:,} bytes per step = "
                f"{needed / 2**30:.1f} GiB does not fit the {available / 2**30:.1f} GiB of available memory; "
                f"accepted: --set replay.storage=disk (memory-mapped files) or a smaller replay.capacity")

    def add(self, step: dict[str, np.ndarray]) -> None:
        """Append one step for every env: each value is (envs, ...). Waits for a draw in flight."""
        self.settle()
        rows = np.arange(self.envs)
        for key, array in self.data.items():
            array[rows, self.head] = step[key]
        if self.gap_before_next.any():  # the first step after steps that `load` could not restore
            self.data["is_first"][self.gap_before_next, self.head[self.gap_before_next]] = True
            self.gap_before_next[:] = False
        self.head = (self.head + 1) % self.per_env
        self.count = np.minimum(self.count + 1, self.per_env)
        self.written += 1
        if self.online:
            for env in np.flatnonzero(self.written % self.window == 0):
                self.queue.append((int(env), int(self.written[env]) - self.window))
        if self.directory is not None:
            due = np.asarray(step["is_last"], bool) | (self.written - self.saved >= self.cfg.chunk)
            for env in np.flatnonzero(due):
                self._save_chunk(int(env))

    def sample(self, batch: int | None = None, length: int | None = None,
               rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Windows (B, T, ...); step 0 is marked `is_first`. A training batch (drawn with the
        replay's RNG, `rng` None) takes queued online windows first, then uniform ones over all
        valid start positions, and waits for its write-back when the agent stores latents."""
        batch, length = batch or self.cfg.batch_size, length or self.window
        training = rng is None
        if not training:
            self.settle()  # a draw in flight may be writing stored values back
        starts_per_env = np.maximum(self.count - length + 1, 0)
        if starts_per_env.sum() == 0:
            raise ValueError(f"replay holds {len(self)} steps, fewer than one window of {length}")
        queued = []
        while training and self.online and self.queue and len(queued) < batch:
            env, first = self.queue.popleft()
            if self.stored_since(np.array(env), np.array(first)):
                queued.append((env, first))
        uniform = batch - len(queued)
        ends = np.cumsum(starts_per_env)
        flat = (rng or self.rng).integers(0, ends[-1], uniform)  # uniform over all start positions
        env = np.searchsorted(ends, flat, side="right")
        first = self.written[env] - self.count[env] + flat - (ends - starts_per_env)[env]  # absolute steps
        if queued:
            env = np.concatenate([[e for e, _ in queued], env]).astype(np.int64)
            first = np.concatenate([[f for _, f in queued], first]).astype(np.int64)
        index = self.ring_index(env[:, None], first[:, None] + np.arange(length))  # (B, T)
        out = {key: array[env[:, None], index] for key, array in self.data.items()}
        out["is_first"][:, 0] = True
        if training and self.stored:
            self.pending.append(np.stack([env, first], 1))
        return out

    def write_back(self, values: dict[str, np.ndarray]) -> None:
        """Overwrite the stored values of the oldest training batch awaiting its write-back:
        `values[key]` (B, T', ...) for the last T' steps of each of its windows."""
        positions = self.pending.popleft()
        env, first = positions[:, 0], positions[:, 1]
        steps = next(iter(values.values())).shape[1]
        step = first[:, None] + self.window - steps + np.arange(steps)  # (B, T')
        envs = np.broadcast_to(env[:, None], step.shape)
        alive = self.stored_since(envs, step)
        index = self.ring_index(envs[alive], step[alive])
        for key, value in values.items():
            self.data[key][envs[alive], index] = value[alive]

    def state_dict(self) -> dict[str, Any]:
        """The online queue and the RNG of training batches (a checkpoint saves them; the
        write-backs are done by then). While a prefetched batch waits to be taken, they are the
        values from before its draw: a continued run that prefetches at once draws the same batch."""
        if self._before_draw is not None:
            return self._before_draw
        return {"queue": [list(item) for item in self.queue], "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queue = deque((int(env), int(first)) for env, first in state["queue"])
        self.rng.bit_generator.state = state["rng"]

    def prefetch(self, prepare: Callable[[dict[str, np.ndarray]], Any], before: Callable[[], None] = lambda: None) -> None:
        """Start drawing the next training batch in the background: `before()` (the caller's
        write-backs still on their way), `sample()`, then `prepare` (e.g. the copy to the device).
        `add` waits for the draw, so the batch comes from the replay as it is now; the next
        `batches` call hands it out first."""
        self.settle()
        self._before_draw = self.state_dict()
        self._drawing = self._pool().submit(lambda: (before(), prepare(self.sample()))[1])

    def settle(self) -> None:
        """Wait for a draw in flight (its batch stays to be taken; an error it raised comes with it)."""
        if self._drawing is not None:
            wait([self._drawing])

    def batches(self, count: int, prepare: Callable[[dict[str, np.ndarray]], Any] = lambda batch: batch) -> Iterator[Any]:
        """`count` batches, the same as `count` calls of `sample()` give: the prefetched one first
        when there is one; while the caller trains on one, the background thread samples and
        `prepare`s the next. The replay must not change while the iterator runs."""
        for i in range(count):
            if self._drawing is None:  # nothing prefetched: the first batch is drawn now
                batch = prepare(self.sample())
            else:
                batch = self._drawing.result()
                self._drawing = self._before_draw = None
            if i + 1 < count:
                self._drawing = self._pool().submit(lambda: prepare(self.sample()))
            yield batch

    def close(self) -> None:
        """End the background thread (a batch drawn for an update that never came is dropped)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._thread = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._thread is None:  # one thread for the replay's life, not one per draw
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="replay")
        return self._thread

    # -- persistence ------------------------------------------------------------------------------
    def _save_chunk(self, env: int) -> None:
        steps = int(self.written[env] - self.saved[env])
        steps = min(steps, self.per_env)
        index = (self.head[env] - steps + np.arange(steps)) % self.per_env
        path = self.directory / f"env{env}-{int(self.written[env]):08d}.npz"
        atomic_write(path, lambda f: np.savez(f, **{key: array[env, index] for key, array in self.data.items()}))
        self.saved[env] = self.written[env]

    def flush(self) -> None:
        """Write every env's unsaved steps to disk (before a checkpoint), and the stored values
        of every step in the ring, which write-backs change after their chunk was written."""
        if self.directory is None:
            return
        for env in np.flatnonzero(self.written > self.saved):
            self._save_chunk(int(env))
        if self.stored:
            arrays = {"written": self.written}
            for env in range(self.envs):
                index = self.ring_index(env, self.written[env] - self.count[env] + np.arange(self.count[env]))
                arrays.update({f"{key}_{env}": self.data[key][env, index] for key in self.stored})
            atomic_write(self.directory / LATENTS_FILE, lambda f: np.savez(f, **arrays))

    def _set_aside(self, path: Path, err: DamagedFile) -> None:
        """Move a file `load` cannot use into `damaged/` (never over an earlier one), with one warning."""
        folder = self.directory / DAMAGED_FOLDER
        target, copy = folder / path.name, 0
        while target.exists():
            copy += 1
            target = folder / f"{path.stem}.{copy}{path.suffix}"
        try:
            folder.mkdir(exist_ok=True)
            os.replace(path, target)
            where = f"moved to {target}"
        except OSError as move_err:
            where = f"left in place, it could not be moved ({move_err.strerror or move_err})"
        log.warning(f"replay file {path} cannot be used ({err}); {where}; the run goes on without it")

    def _chunk_steps(self, path: Path) -> int:
        """Steps in a chunk, from its rewards alone (what choosing the chunks to load needs)."""
        try:
            with open_npz(path) as data:
                if "reward" not in data.files:
                    raise DamagedFile("no 'reward' array")
                return len(data["reward"])
        except DamagedFile:
            raise
        except Exception as err:
            raise DamagedFile(first_line(err)) from None

    def _read_chunk(self, path: Path, steps: int) -> dict[str, np.ndarray]:
        """Every array of a chunk, read whole and checked against the keys, shapes and dtypes the
        replay stores, before any of it enters the ring: a damaged chunk never leaves half its steps."""
        try:
            with open_npz(path) as data:
                missing = [key for key in self.keys if key not in data.files]
                if missing:
                    raise DamagedFile(f"no {', '.join(map(repr, missing))} array{'s' if len(missing) > 1 else ''}")
                arrays = {key: data[key] for key in self.keys}
        except DamagedFile:
            raise
        except Exception as err:  # a member cut short or failing its checksum, an object array
            raise DamagedFile(first_line(err)) from None
        for key, (shape, dtype) in self.keys.items():
            check_array(key, arrays[key], shape, dtype)
            if len(arrays[key]) != steps:
                raise DamagedFile(f"{key!r} holds {len(arrays[key])} steps, 'reward' {steps}")
        return arrays

    def _load_env(self, env: int, chunks: list[tuple[int, Path]]) -> int:
        """Fill env's ring from its chunks (oldest first; only the newest that fit are read) and
        return the step the newest loaded chunk ends at (0: none). A chunk that turns out damaged
        while its steps are read is set aside and the ring is filled again from the others."""
        sizes: dict[Path, int | None] = {}  # None: set aside
        while True:
            chosen, total = [], 0
            for end, path in reversed(chunks):  # the newest chunks that fill the ring
                if total >= self.per_env:
                    break
                if path not in sizes:
                    try:
                        sizes[path] = self._chunk_steps(path)
                    except DamagedFile as err:
                        self._set_aside(path, err)
                        sizes[path] = None
                if sizes[path] is not None:
                    chosen.insert(0, (end, path))
                    total += sizes[path]
            self.head[env] = self.count[env] = self.unbroken[env] = 0
            previous_end = 0
            try:
                for end, path in chosen:
                    steps = sizes[path]
                    arrays = self._read_chunk(path, steps)
                    if previous_end and steps and end - steps != previous_end:  # a chunk between is gone
                        arrays["is_first"][0] = True
                        self.unbroken[env] = 0
                    rows = (self.head[env] + np.arange(steps)) % self.per_env
                    for key, array in self.data.items():
                        array[env, rows] = arrays[key]
                    self.head[env] = (self.head[env] + steps) % self.per_env
                    self.count[env] = min(self.count[env] + steps, self.per_env)
                    self.unbroken[env] += steps
                    previous_end = end
            except DamagedFile as err:
                self._set_aside(path, err)
                sizes[path] = None
                continue
            self.unbroken[env] = min(self.unbroken[env], self.count[env])
            return previous_end

    def _load_stored(self) -> None:
        """The stored values `flush` saved, when they belong to the steps just loaded: for each env
        those after its last gap (`unbroken`), which keep the step numbers the file has. The whole
        file is read and checked first; a damaged one is set aside and the chunks' values stand."""
        path = self.directory / LATENTS_FILE
        if not self.stored or not path.is_file():
            return
        try:
            with open_npz(path) as saved:
                if "written" not in saved.files:
                    raise DamagedFile("no 'written' array")
                if not np.array_equal(saved["written"][: self.envs], self.written):
                    return  # from a later flush than the checkpoint continued: the chunks' values stand
                for env in range(self.envs):  # checked in full, then read again to be written
                    for key, (shape, dtype) in self.stored.items():
                        check_array(f"{key}_{env}", saved[f"{key}_{env}"], shape, dtype)
                for env in range(self.envs):
                    for key in self.stored:
                        values = saved[f"{key}_{env}"]
                        values = values[max(len(values) - int(self.unbroken[env]), 0):]
                        steps = self.written[env] - len(values) + np.arange(len(values))
                        self.data[key][env, self.ring_index(env, steps)] = values
        except DamagedFile as err:
            self._set_aside(path, err)
        except Exception as err:  # a member cut short, a missing key, an object array
            self._set_aside(path, DamagedFile(first_line(err)))

    def load(self, written: list[int] | None = None) -> int:
        """Refill the rings from the chunks on disk and return the steps loaded.

        `written` (per env, from a checkpoint) drops chunks written after that checkpoint, so the
        replay is the one the checkpointed run had; only the newest chunks that fit are read. Damaged
        files are set aside (`damaged/`); the step count goes on from `written` even where the newest
        chunks are gone, so the names of chunks written from here on stay after every earlier one.
        """
        if self.directory is None:
            return 0
        remove_temp_files(self.directory)
        files = chunk_files(self.directory)
        if written is not None and sum(written[: self.envs]) and not any(files.get(env) for env in range(self.envs)):
            state = "holds no chunks" if self.directory.is_dir() else "is missing"
            log.warning(f"replay {self.directory} {state} (the checkpoint's run had written {sum(written):,} "
                        f"steps); the run goes on with an empty replay")
        for env in range(self.envs):  # a run resumed with fewer envs keeps the streams it can hold
            chunks = files.get(env, [])
            until = written[env] if written is not None and env < len(written) else None
            if until is not None:
                for end, path in [c for c in chunks if c[0] > until]:
                    path.unlink()
                chunks = [c for c in chunks if c[0] <= until]
            newest = self._load_env(env, chunks)
            if until is not None and newest < until:  # the newest steps are gone: the next step follows a gap
                self.gap_before_next[env] = self.count[env] > 0
                self.unbroken[env] = 0
            self.written[env] = self.saved[env] = newest if until is None else until
        self._load_stored()
        return len(self)


class TrainRatio:
    """Exact train-ratio schedule: after `steps` policy steps, floor(steps * ratio / replayed_per_update)
    updates are due in total (design section 6); fractional credit carries over without rounding."""

    def __init__(self, ratio: float, replayed_per_update: int):
        self.ratio = Fraction(ratio).limit_denominator(10**6)
        self.per_update = replayed_per_update
        self.steps = 0
        self.updates = 0

    def total_after(self, steps: int) -> int:
        """Updates the schedule has made in all after `steps` policy steps."""
        return math.floor(steps * self.ratio / self.per_update)

    def __call__(self, new_steps: int) -> int:
        """Count `new_steps` policy steps; return how many updates are due now."""
        self.steps += new_steps
        target = self.total_after(self.steps)
        due, self.updates = target - self.updates, target
        return due

    def achieved(self) -> float:
        return self.updates * self.per_update / self.steps if self.steps else 0.0

    def state_dict(self) -> dict[str, int]:
        return {"steps": self.steps, "updates": self.updates}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps, self.updates = int(state["steps"]), int(state["updates"])
