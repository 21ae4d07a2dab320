"""Compute precision: the one place that decides it for every device (`run.precision`).

    fp32   everything in IEEE float32, on CUDA too (TF32 off for matmuls and convolutions).
    tf32   float32 tensors; on CUDA, float32 matmuls and convolutions round their inputs to TF32
           (a 10-bit mantissa) on tensor cores. Elsewhere it is fp32.
    bf16   matmuls and convolutions under bfloat16 autocast; parameters, optimiser state, losses,
           two-hot, KL and softmax maths, the output layers of every head (`layers.Float32Linear`),
           LayerNorm statistics and the return percentiles stay float32.
    auto   bf16 where the device multiplies bf16 natively, else fp32.

TF32 is used only under `tf32`: under `bf16` the fp32 parts (output layers, two-hot and KL maths)
stay IEEE fp32, as under `fp32`. (cuDNN's own default rounds fp32 convolutions to TF32;
`configure_backend` turns that off.)

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

from dreamer.choices import PRECISIONS

NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_BF16_CAPABILITY = (8, 0)  # CUDA compute capability with bf16 tensor cores


@lru_cache(maxsize=2)
def _cpuinfo(field: str) -> str:
    """The first value of `field` in /proc/cpuinfo ('' where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith(field) and ":" in line:
            return line.split(":", 1)[1].strip()
    return ""


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is missing)."""
    return frozenset(_cpuinfo("flags").split())


def cpu_name() -> str:
    return _cpuinfo("model name")


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


def uses_tf32(precision: str, device: torch.device) -> bool:
    """Whether fp32 matmuls and convolutions run as TF32: under `tf32` on CUDA alone."""
    return precision == "tf32" and device.type == "cuda"


def describe(precision: str, device: torch.device) -> str:
    """What a run computes in, for its start line: e.g. 'bf16, TF32 off'."""
    dtype = name(compute_dtype(precision, device))
    if device.type != "cuda":
        return dtype
    return f"{dtype}, TF32 {'on' if uses_tf32(precision, device) else 'off'}"


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """bf16 autocast on `device`, or nothing for fp32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def configure_backend(precision: str, device: torch.device) -> None:
    """Backend switches for fixed-shape training on CUDA (process-wide; call once the run's
    precision is known): cuDNN picks the fastest convolution algorithm for the (fixed) batch
    shapes, and fp32 matmuls and convolutions are TF32 exactly when `uses_tf32`."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    fp32 = "tf32" if uses_tf32(precision, device) else "ieee"
    torch.backends.cuda.matmul.fp32_precision = fp32
    torch.backends.cudnn.conv.fp32_precision = fp32
