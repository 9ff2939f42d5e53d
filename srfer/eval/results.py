"""What the evaluations answer: one dataclass per evaluation, printed by the CLI; `to_dict()` is
its --json (fields in order; optional parts left out when absent)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class _Result:
    _OPTIONAL: ClassVar[tuple[str, ...]] = ()  # fields left out when None
    _FLATTENED: ClassVar[tuple[str, ...]] = ()  # dict fields whose items join the top level

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not f.metadata.get("json", True):
                continue
            if f.name in self._FLATTENED:
                out.update(value)
            elif value is not None or f.name not in self._OPTIONAL:
                out[f.name] = value
        return out


def internal() -> Any:
    """A field the CLI uses but --json leaves out (pictures as tensors)."""
    return field(default=None, repr=False, metadata={"json": False})


@dataclass
class SrEvaluation(_Result):
    data: str
    images: int
    skipped: list[dict[str, str]]
    weights: str
    scale: int
    hr_size: int
    lr_size: int
    protocol: str
    degradation: str
    flip_tta: bool
    mean: dict[str, float]
    psnr_gain_db: float
    identity: dict[str, Any] | None
    per_image: list[dict[str, Any]]
    _OPTIONAL = ("identity",)


@dataclass
class SrComparison(_Result):
    data: str
    images: int
    skipped: list[dict[str, str]]
    weights: dict[str, str]
    scale: int
    hr_size: int
    lr_size: int
    protocol: str
    degradation: str
    mean: dict[str, dict[str, float]]
    identity: dict[str, Any] | None = None
    grid: str | None = None  # the picture grid's path, once drawn
    grid_rows: list[list[Any]] | None = internal()  # faces as tensors: LR | bicubic | each model | HR
    grid_columns: list[str] | None = internal()
    _OPTIONAL = ("identity", "grid")


@dataclass
class FerEvaluation(_Result):
    data: str
    images: int
    skipped: list[dict[str, str]]
    weights: str
    input: str
    classes: list[str]
    notes: list[str]
    metrics: dict[str, Any]  # `srfer.eval.metrics.classification_report`
    plots: dict[str, str] | None = None
    _OPTIONAL = ("plots",)
    _FLATTENED = ("metrics",)


@dataclass
class EmbedEvaluation(_Result):
    data: str
    identities: int
    images: int
    skipped: list[dict[str, str]]
    alignment: dict[str, Any] | None
    notes: list[str]
    weights: str
    input: str
    pairs_source: str
    metrics: dict[str, Any]  # `srfer.eval.metrics.verification_report`
    plot: str | None = None
    _OPTIONAL = ("plot",)
    _FLATTENED = ("metrics",)


@dataclass
class FerSweep(_Result):
    """Expression accuracy vs face size: `accuracy[column][i]` at `sizes[i]`, one column per
    classifier and way of restoring the faces; `weights`: the file each column used (None: none)."""

    data: str
    skipped: list[dict[str, str]]
    sizes: list[int]
    accuracy: dict[str, list[float]]
    weights: dict[str, str | None]
    notes: list[str]
    plot: str | None = None
    tar_at_far_1e3: dict[str, list[float]] | None = None  # TAR at FAR 1e-3, per column and size
    _OPTIONAL = ("plot", "tar_at_far_1e3")
    _FLATTENED = ("weights",)


@dataclass
class EmbedSweep(_Result):
    """Verification accuracy vs probe size, same pairs: one column per way of restoring the probes."""

    data: str
    skipped: list[dict[str, str]]
    alignment: dict[str, Any] | None
    sizes: list[int]
    accuracy: dict[str, list[float]]
    pairs: int
    weights: dict[str, str | None]
    notes: list[str]
    plot: str | None = None
    tar_at_far_1e3: dict[str, list[float]] | None = None  # TAR at FAR 1e-3, per column and size
    _OPTIONAL = ("plot", "tar_at_far_1e3")
    _FLATTENED = ("weights",)
