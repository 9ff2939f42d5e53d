"""Options declared once: a dataclass field carries its default, help text and bounds, and the
CLI is generated from the dataclass (`srfer.cli.common.options_of`). A recipe reads the same
dataclass, so a default is written in one place and a CLI name that matches no field cannot
exist (the dataclass constructor refuses unknown names)."""

from __future__ import annotations

import dataclasses
from typing import Any

from srfer.core.errors import SrferError

REQUIRED: Any = dataclasses.MISSING


def option(
    default: Any = REQUIRED,
    help: str = "",
    *,
    flags: tuple[str, ...] = (),
    min: float | None = None,
    max: float | None = None,
    choices: str | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field that is also a command-line option.

    `flags`: explicit option names (default: --field-name, and --x/--no-x for booleans);
    `choices`: "module:REGISTRY" whose names the help lists; `cli=False`: not an option."""
    meta = {"help": help, "flags": flags, "min": min, "max": max, "choices": choices, "cli": cli}
    if isinstance(default, list):  # a repeatable option: each instance gets its own list
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


RUNTIMES = ("torch", "onnx")  # where inference runs its networks: torch, or ONNX Runtime (srfer.accel.onnx)


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise SrferError(f"--runtime {runtime!r}: use {' or '.join(RUNTIMES)}")


# Help texts that several commands' options share.
DEVICE_HELP = "auto (cuda → mps → cpu), cpu, cuda or mps."
SEED_HELP = "Seed for data order, augmentation and initialisation."
RUNTIME_HELP = (
    "torch, or onnx: run the networks in ONNX Runtime (pip install 'srfer[onnx]'; each network "
    "is exported once and cached in ~/.cache/srfer/onnx or $SRFER_CACHE/onnx)."
)
WORKERS_HELP = (
    "Processes sharing the inputs (CPU; the same answers and file names as one process). "
    "One process already keeps an input per core in flight on threads, which measured faster on "
    "2 cores (docs/performance.md); each extra process imports torch and loads the models (~5 s)."
)


GALLERY_HELP = (
    "The gallery: a SQLite file, or a postgresql://user:password@host/database URL (srfer enroll fills it)."
)


DEGRADATION_HELP = (
    "How a low-resolution face is made: clean (antialiased bicubic, 8-bit), realistic (blur, a random "
    "resampling kernel, noise, JPEG: srfer.data.degradations) or mixed (each face one or the other)."
)


def device_option(default: str = "auto") -> Any:
    return option(default, DEVICE_HELP)
