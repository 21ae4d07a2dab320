"""Data-parallel training over the processes `torchrun` starts (one per device).

Each rank runs its own envs and replay and trains the same model on its own batches: rank 0's
weights are broadcast once (`broadcast_from_main`), and after every backward pass the gradients
are averaged (`average_gradients`), so an update with R ranks equals one on the R batches together.
What the loss needs from the whole batch is gathered: the return percentiles (P1 eq. 8) are taken
over every rank's imagined returns. Step counters count all ranks' steps. Outside `torchrun` (or
with one process) every helper here is the identity and nothing is sent.

Every collective runs in eager code between the compiled loss graphs, never inside one: DDP's
gradient hooks would split a compiled graph at every gradient bucket (DDPOptimizer), and a
collective inside a CUDA graph ties the graph to NCCL's capture support. The gradients go in one
all-reduce of all of them flattened, after the backward pass, where DDP overlaps bucketed
all-reduces with it; with updates of 10-200M parameters that overlap is a small share.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """A rank's own seed for envs, replay sampling and its RNG; rank 0 keeps `seed`."""
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device_name: str, timeout_minutes: float, compile_threads: int) -> tuple[Ranks, torch.device]:
    """Join the process group `torchrun` describes in the environment (gloo on CPU, NCCL on CUDA);
    returns this process's ranks and device (`cuda:LOCAL_RANK` when training on CUDA).

    `timeout_minutes` bounds every collective (`run.process_group_timeout`): the ranks wait in
    the first update's collectives while each compiles its graphs, which can outlast the default
    10 minutes. Inductor compiles with `compile_threads` worker processes per rank (0: this
    machine's cores shared by the ranks on it), so R ranks do not start R x cores compilers."""
    from dreamer.agent import resolve_device  # the agent module imports this one

    world = int(os.environ.get("WORLD_SIZE", "1"))
    ranks = Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    set_compile_threads(compile_threads or compile_threads_per_rank())
    device = resolve_device(device_name)
    if world == 1:
        return ranks, device
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return ranks, device


def compile_threads_per_rank() -> int:
    """This machine's cores shared by the ranks on it (torchrun's LOCAL_WORLD_SIZE), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def set_compile_threads(threads: int) -> None:
    """Inductor's compile workers for this process; its config module is imported on first compile,
    so the environment variable it reads then is set too."""
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = str(threads)
    if "torch._inductor.config" in sys.modules:
        sys.modules["torch._inductor.config"].compile_threads = threads


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_from_main(tensors: list[Tensor]) -> None:
    """Overwrite `tensors` (parameters, buffers) with rank 0's, in place."""
    if not active():
        return
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def average_gradients(params: list[Tensor]) -> None:
    """Each parameter's gradient becomes its mean over the ranks: one all-reduce of every gradient
    flattened together. A parameter without a gradient on this rank takes part with zeros."""
    if not active():
        return
    grads = []
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        grads.append(param.grad)
    flat = torch.cat([grad.reshape(-1) for grad in grads])  # (sum of sizes,)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    parts = flat.split([grad.numel() for grad in grads])
    torch._foreach_copy_(grads, [part.view_as(grad) for part, grad in zip(parts, grads)])


def mean(tensor: Tensor) -> Tensor:
    """Mean of `tensor` over the ranks (a new tensor)."""
    if not active():
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def concat(tensor: Tensor) -> Tensor:
    """Every rank's `tensor` (same shape everywhere) concatenated along dim 0, in rank order."""
    if not active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def rank() -> int:
    return dist.get_rank() if active() else 0


def maximum(tensor: Tensor) -> Tensor:
    """Elementwise maximum of `tensor` over the ranks (a new tensor; stays on the device, no host sync)."""
    if not active():
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's picklable `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's picklable `obj`, in rank order, on rank 0 only (None elsewhere)."""
    if not active():
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def gather(obj: Any) -> list[Any]:
    """Every rank's picklable `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
