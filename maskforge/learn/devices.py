"""Device choice and mixed precision for training and feature extraction."""

from __future__ import annotations

import contextlib
import re

import torch

from maskforge.choices import DEVICES  # noqa: F401 - re-exported


def resolve_device(name: str = "auto") -> torch.device:
    """auto -> cuda when available, else cpu; cpu, cuda or cuda:N as given; cuda* without a GPU
    is a ValueError, as is any other name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ValueError(f"Invalid device {name!r}. Only auto, cpu, cuda and cuda:N are supported.")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} but no CUDA GPU is available; use --device cpu or auto.")
    return torch.device(name)


def amp_dtype_for(device: torch.device, enabled: bool) -> torch.dtype | None:
    """Autocast dtype: bf16 on CUDA GPUs that support it, else fp16; None (fp32) on CPU."""
    # bf16 autocast on CPU is many times slower than fp32 on CPUs without AMX.
    if device.type != "cuda" or not enabled:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast to dtype on device, or nothing when dtype is None (fp32)."""
    return (
        torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    )
