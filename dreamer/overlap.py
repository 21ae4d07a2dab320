"""Keeping the device busy: results copied to the host without waiting, and the share of a run's
wall time the device spends on updates.

On CUDA an update is launched, not run: the host returns at once and the GPU works through the
queue. Anything that reads a result on the host (`.tolist()`, `.cpu()`) waits for the queue up to
that result, and the GPU idles while the host then steps envs. The training loop therefore reads
each update's metrics and 2024 latents through `HostCopy`, once later work is queued, and steps
the envs while the updates run (`dreamer.train.Trainer.iterate`). On the CPU every op runs when it
is called, so all of this is a plain pass-through there.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

import torch
from torch.utils._pytree import tree_map_only

T = TypeVar("T")


class HostCopy(Generic[T]):
    """`tensors` (one, or nested in dicts and tuples) copied to the host: on CUDA by non-blocking
    copies into pinned memory, with an event after them; `get()` waits for that event alone, not
    for the work queued after it."""

    def __init__(self, tensors: T):
        self.event: torch.cuda.Event | None = None
        self.host = tensors
        if any(t.device.type == "cuda" for t in _tensors(tensors)):
            self.host = tree_map_only(torch.Tensor, _to_pinned, tensors)
            self.event = torch.cuda.Event()
            self.event.record()

    def get(self) -> T:
        if self.event is not None:
            self.event.synchronize()
            self.event = None
        return self.host


def _tensors(tree) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    tree_map_only(torch.Tensor, found.append, tree)
    return found


def _to_pinned(tensor: torch.Tensor) -> torch.Tensor:
    return torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True).copy_(tensor, non_blocking=True)


class BusyClock:
    """Device seconds spent between `start()` and `stop()` calls (the updates), over the wall
    seconds since the last `share()`. On CUDA, events around each update, read at `share()`;
    on the CPU, where an update runs when called, the host's clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.spans: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.seconds = 0.0
        self.started: float | torch.cuda.Event | None = None
        self.since = time.perf_counter()

    def start(self) -> None:
        if self.cuda:
            self.started = torch.cuda.Event(enable_timing=True)
            self.started.record()
        else:
            self.started = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self.spans.append((self.started, end))  # type: ignore[arg-type]
        else:
            self.seconds += time.perf_counter() - self.started  # type: ignore[operator]
        self.started = None

    def share(self) -> float:
        """Busy seconds / wall seconds since the last call (waits for the last update on CUDA)."""
        if self.spans:
            self.spans[-1][1].synchronize()
            self.seconds += sum(start.elapsed_time(end) for start, end in self.spans) / 1000
            self.spans = []
        now = time.perf_counter()
        share = self.seconds / max(now - self.since, 1e-9)
        self.seconds, self.since = 0.0, now
        return share
