"""`srfer enroll` and `srfer identify`: face crops → embeddings → a gallery (1:N search).

Crops are framed like the embedder's training faces (a centre crop at its crop size); files
that cannot be read are reported in `failed` and the rest go on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from srfer.data.faces import center_crop_hr
from srfer.errors import SrferError
from srfer.gallery import Gallery, Match
from srfer.inference import embedder_crop_size, embedder_threshold, load_embedder, model_id
from srfer.runtime import resolve_device


@torch.no_grad()
def embed_face_files(paths: list[Path], embedder: nn.Module, size: int, device: torch.device):
    """Embeddings of face crops (center crop like the training data); bad files are
    returned as (path, reason) instead of stopping the batch."""
    faces, good, failed = [], [], []
    for path in paths:
        try:
            faces.append(center_crop_hr(path, size, 3).float().div(255))
            good.append(path)
        except SrferError as exc:
            failed.append((path, str(exc)))
    if not faces:
        return torch.empty(0), good, failed
    return embedder(torch.stack(faces).to(device)).cpu(), good, failed


@dataclass
class EnrollReport:
    added: int
    failed: list[tuple[Path, str]] = field(default_factory=list)


def enroll(
    name: str, paths: list[Path], gallery: Path, weights: Path | None = None, device: str = "auto"
) -> EnrollReport:
    """Add `name`'s face embeddings to `gallery` (created if missing). With no readable
    face, nothing is written and `added` is 0."""
    dev = resolve_device(device)
    model = load_embedder(weights, dev)
    embeddings, good, failed = embed_face_files(paths, model, embedder_crop_size(model), dev)
    if not good:
        return EnrollReport(0, failed)
    with Gallery(gallery, create=True) as g:
        added = g.add(name, embeddings, [str(p) for p in good], model_id(model))
    return EnrollReport(added, failed)


@dataclass
class IdentifyReport:
    threshold: float
    matches: list[tuple[Path, Match]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def identify(
    paths: list[Path], gallery: Path, weights: Path | None = None, threshold: float | None = None,
    device: str = "auto",
) -> IdentifyReport:  # fmt: skip
    """The nearest enrolled identity of each face crop, or "unknown" beyond τ (the model's
    stored τ unless `threshold` is given)."""
    dev = resolve_device(device)
    with Gallery(gallery) as g:  # a bad gallery fails before any model is loaded
        model = load_embedder(weights, dev)
        tau = threshold if threshold is not None else embedder_threshold(model)
        embeddings, good, failed = embed_face_files(paths, model, embedder_crop_size(model), dev)
        matches = g.identify(embeddings, model_id(model), tau) if good else []
    return IdentifyReport(tau, list(zip(good, matches, strict=True)), failed)
