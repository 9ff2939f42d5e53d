"""What `predict` answers: per face, per image, per run. `FaceResult.to_json` is the documented
--json schema (README)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class FaceResult:
    """One face's answer; `to_json` is the documented --json schema."""

    image: Path | str  # the file, or a label for an image given in memory
    index: int
    box: tuple[float, float, float, float]
    face_px: int
    detector_score: float | None
    sr: bool
    sr_scale: int | None  # the SR that made the expression head's face: 4, 8, or None (bicubic)
    expression: str
    # who answered: "fer", "fer-upscale" (tiny-face path), "fer+fer-upscale" (both, averaged)
    expression_model: str
    confidence: float
    probabilities: dict[str, float]
    identity: str | None = None
    # how the embedder's face was framed: "landmarks" (aligned by MTCNN's five points),
    # "fallback" (no landmarks: a centred crop's mean ones), "centre-crop" (srfer's own embedders)
    alignment: str | None = None
    # how the embedder's face was restored: the SR role ("sr", "sr-x8", "sr-identity"), "feature-sr"
    # (resized, restored inside the embedder's trunk), or None (resized)
    identity_sr: str | None = None
    nearest: str | None = None
    distance: float | None = None
    threshold: float | None = None
    embedding: list[float] | None = None
    crop01: torch.Tensor | None = field(default=None, repr=False)  # the face as cut (RGB, [0, 1])
    face01: torch.Tensor | None = field(default=None, repr=False)  # at WORK_SIZE (SR or bicubic)

    def to_dict(self) -> dict[str, Any]:
        """The documented --json schema (`to_json`)."""
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        out = {
            "image": str(self.image), "face": self.index, "box": [round(v, 1) for v in self.box],
            "face_px": self.face_px, "detector_score": _round(self.detector_score), "sr": self.sr,
            "sr_scale": self.sr_scale,
            "expression": self.expression, "expression_model": self.expression_model,
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "identity": self.identity, "nearest": self.nearest, "distance": _round(self.distance),
            "threshold": _round(self.threshold), "alignment": self.alignment,
            "identity_sr": self.identity_sr,
        }  # fmt: skip
        if self.embedding is not None:
            out["embedding"] = [round(v, 6) for v in self.embedding]
        return out


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class ImageResult:
    path: Path | str
    size: tuple[int, int]
    faces: list[FaceResult]
    outputs: list[Path] = field(default_factory=list)  # files written under --save-dir
    image: Any = field(default=None, repr=False)  # the decoded image, when pixels were kept


@dataclass
class PredictReport:
    images: list[ImageResult] = field(default_factory=list)
    failed: list[tuple[Path | str, str]] = field(default_factory=list)

    @property
    def faces(self) -> int:
        return sum(len(r.faces) for r in self.images)
