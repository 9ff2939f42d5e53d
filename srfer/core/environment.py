"""`srfer info`: versions, compute device, AMP dtype and which default weights are present."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

from srfer.core.runtime import amp_dtype, resolve_device
from srfer.core.weights import weights_status


def environment_report() -> dict[str, Any]:
    import torchvision

    device = resolve_device("auto")
    report: dict[str, Any] = {
        "srfer": _version("srfer"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
        "amp_dtype": str(amp_dtype(device) or "off (fp32)"),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    for package in ("facenet-pytorch", "onnxruntime"):  # the second serves --runtime onnx (optional)
        report[package] = _version(package)
    report["weights"] = weights_status()
    return report


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"
