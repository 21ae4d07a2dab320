"""Compiled updates (`run.compile`): the one place that decides whether and how to compile.

The losses an agent names in `replicas` are each compiled whole by `torch.compile` (TorchDynamo +
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
    auto   compiled where it was measured faster (see `AUTO_DEVICES` and BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import torch

log = logging.getLogger("dreamer")
SETTINGS = ("auto", "on", "off")
AUTO_DEVICES = ("cuda",)  # device types where `auto` compiles


def enabled(setting: str, device: torch.device) -> bool:
    if setting not in SETTINGS:
        raise ValueError(f"unknown compile setting {setting!r}; accepted: {', '.join(SETTINGS)}")
    return setting == "on" or (setting == "auto" and device.type in AUTO_DEVICES)


def mode(device: torch.device) -> str:
    """CUDA graphs on CUDA; Inductor's default elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else "default"


class Compiled:
    """A function (a loss module, the policy step) compiled on its first call; prints how long
    that took, once. On CUDA its outputs live in the CUDA graph's memory pool until its next
    replay: a caller keeping them across calls clones them (`Agent.policy` does)."""

    def __init__(self, fn: Callable, device: torch.device, name: str):
        self.fn = torch.compile(fn, mode=mode(device), dynamic=False)
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
