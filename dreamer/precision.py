"""Compute precision: the one place that decides it for every device (`run.precision`).

    fp32   everything in float32.
    bf16   matmuls and convolutions under bfloat16 autocast; parameters, optimiser state, losses,
           two-hot, KL and softmax maths, the output layers of every head (`layers.Float32Linear`),
           LayerNorm statistics and the return percentiles stay float32.
    auto   bf16 where the device multiplies bf16 natively, else fp32.

Native bf16 means: a CUDA device of compute capability >= 8.0 (Ampere and later; T4 and V100 only
emulate bf16, and `torch.cuda.is_bf16_supported()` counts the emulation as support), or a CPU with
the AVX512-BF16 or AMX-BF16 instructions. On other CPUs bf16 runs through conversions and is many
times slower than fp32, so `auto` picks fp32 there.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_BF16_CAPABILITY = (8, 0)  # CUDA compute capability with bf16 tensor cores


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@torch.compiler.assume_constant_result  # a compiled function (the 2024 policy step) asks it without a graph break
def native_bf16(device: torch.device) -> bool:
    """Whether `device` itself (not the current CUDA device) multiplies bf16 natively."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= MIN_BF16_CAPABILITY
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in NATIVE_BF16_CPU_FLAGS)
    return False


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """`run.precision` on `device` -> the dtype of matmuls and convolutions."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return torch.float32


def name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """bf16 autocast on `device`, or nothing for fp32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def configure_backend(device: torch.device) -> None:
    """Backend switches for fixed-shape fp32/bf16 training on CUDA: cuDNN picks the fastest
    convolution algorithm for the (fixed) batch shapes, and the fp32 parts may use TF32 matmuls."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
        torch.backends.cudnn.allow_tf32 = True  # TF32 convolutions
