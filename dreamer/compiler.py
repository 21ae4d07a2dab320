"""Compiled updates (`run.compile`): the one place that decides whether and how to compile.

The losses an agent names in `loss_modules` are each compiled whole by `torch.compile` (TorchDynamo +
Inductor): under P1 the world-model loss and the imagination/actor/critic loss, under 2024 the one
loss of its update (`dreamer.v2024.learner.Learner.losses`). One graph each, the RSSM's observe
steps and the imagination steps unrolled at their fixed trip counts, elementwise work fused;
AOTAutograd compiles their backward passes too. Optimiser steps stay outside (P1's fused Adam, one
kernel per group; 2024's LaProp, foreach kernels over all parameters; neither syncs the host).
Shapes are fixed for a run, so the graphs are built once at the first update and never again
(tested with `error_on_recompile`). On CUDA the graphs also run as CUDA graphs
(`mode="reduce-overhead"`), which removes the launch overhead of thousands of small kernels.

    off    eager.
    on     compiled on every device.
    auto   compiled where a compiled update has been run and measured faster (`AUTO_DEVICES`):
           nowhere yet. On this project's CPUs compiling takes minutes and the image encoder and
           decoder ran slower compiled (BENCHMARKS.md); on CUDA no compiled update (nor a CUDA
           graph of one) has run yet, so `on` there is marked unverified at the start of a run.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, TypeVar

import torch
from torch.utils._pytree import tree_map_only

from dreamer.choices import COMPILE_SETTINGS as SETTINGS

T = TypeVar("T")

log = logging.getLogger("dreamer")
BACKEND: str | Callable = "inductor"  # torch.compile's backend; tests trace with "aot_eager" (no code generation)
AUTO_DEVICES: tuple[str, ...] = ()  # device types where `auto` compiles: none until measured
VERIFIED_DEVICES = ("cpu",)  # device types where compiled updates have run against eager (tests)


def enabled(setting: str, device: torch.device) -> bool:
    if setting not in SETTINGS:
        raise ValueError(f"unknown compile setting {setting!r}; accepted: {', '.join(SETTINGS)}")
    return setting == "on" or (setting == "auto" and device.type in AUTO_DEVICES)


def describe(compiled: bool, device: torch.device) -> str:
    """'on', 'off', or 'on (unverified on cuda)' where no compiled update has run on that device type."""
    if not compiled:
        return "off"
    return "on" if device.type in VERIFIED_DEVICES else f"on (unverified on {device.type}: see README, GPU path)"


def calls_to_steady_state(device: torch.device) -> int:
    """Calls of a compiled function before it runs as it will from then on: the first compiles;
    with CUDA graphs (cudagraph trees) the first runs to warm up and the second records the graph."""
    return 3 if mode(device) == "reduce-overhead" else 1


def mode(device: torch.device) -> str:
    """CUDA graphs on CUDA; Inductor's default elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else "default"


class Compiled:
    """A function (a loss module, the policy step) compiled on its first call; prints how long
    that took, once.

    On CUDA its outputs live in the CUDA graph's memory pool: the next replay of any compiled
    function on the device overwrites them unless a backward through them is still pending
    (cudagraph trees; PyTorch issues #152887 and #160281). A caller that reads outputs after
    another compiled call copies them out first (`outside_pool`): the policy step's action and
    state, P1's posteriors and world-model metrics (read after the behaviour loss runs), the
    2024 posteriors written back to the replay. `tests/test_compile.py` emulates the rule on CPU."""

    def __init__(self, fn: Callable, device: torch.device, name: str):
        if BACKEND == "inductor":
            self.fn = torch.compile(fn, mode=mode(device), dynamic=False)
        else:  # another backend takes no Inductor mode
            self.fn = torch.compile(fn, backend=BACKEND, dynamic=False)
        self.name = name
        self.compile_seconds: float | None = None

    def __call__(self, *args: Any) -> Any:
        if self.compile_seconds is not None:
            return self.fn(*args)
        start = time.perf_counter()
        out = self.fn(*args)  # traces and compiles the forward; the backward compiles on its first call
        self.compile_seconds = time.perf_counter() - start
        log.info(f"compiled the {self.name} in {self.compile_seconds:.1f} s")
        return out


def outside_pool(outputs: T) -> T:
    """Copies of the tensors in `outputs` (nested dicts, tuples, `Latent`s), without gradient, in
    memory of their own: what a caller keeps of a compiled call past the next one (see `Compiled`)."""
    return tree_map_only(torch.Tensor, lambda t: t.detach().clone(), outputs)
