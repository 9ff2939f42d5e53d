"""Device, precision and seeding choices shared by training and inference (it depends on
`srfer.core.errors` alone: the inference layer, the engine and the CLI all stand on it)."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from srfer.core.errors import SrferError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` → cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise SrferError(f"unknown --device {name!r}; use {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SrferError("--device cuda: no CUDA device is available here (try --device cpu)")
    if name == "mps" and not has_mps:
        raise SrferError("--device mps: no Apple MPS device is available here")
    return torch.device(name)


def amp_dtype(device: torch.device, enabled: bool = True, training: bool = False) -> torch.dtype | None:
    """bf16 autocast on CUDA (no loss scaling needed). On CPU only for training and only
    where the CPU has native bf16 (AVX512-BF16/AMX): there a training step runs about twice as
    fast (docs/performance.md), elsewhere bf16 is emulated and slower. CPU inference stays fp32
    so that evaluation numbers do not depend on the CPU model."""
    if not enabled:
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and training and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def cpu_has_native_bf16() -> bool:
    try:  # oneDNN's own check; private, hence the guard
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG a training step may draw from, as checkpointable tensors and plain data."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].astype(np.int64).tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"]))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
