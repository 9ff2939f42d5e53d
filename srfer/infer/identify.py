"""`srfer enroll` and `srfer identify`: face crops → embeddings → a gallery (1:N search).

Faces are framed as the embedder's input contract says: aligned by MTCNN's landmarks onto
its template (the dlib network; a crop where no face is found uses the centre-crop fallback
landmarks, counted in `fallbacks`), or a centre crop at its crop size (srfer's own
embedders). Files that cannot be read are reported in `failed` and the rest go on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from srfer.core.errors import SrferError
from srfer.core.imageio import Skipped
from srfer.core.runtime import resolve_device
from srfer.data.faces import center_crop_hr
from srfer.faces.galleries import open_gallery
from srfer.faces.gallery import Match
from srfer.infer.load import LoadedModel, embedder_aligner, embedder_threshold, load_embedder


def _face_crops(paths: list[Path], embedder: LoadedModel) -> tuple[list, list[Path]]:
    """A uint8 face tensor or a `Skipped` per file, and the files aligned by the fallback."""
    aligner = embedder_aligner(embedder)
    if aligner is not None:
        aligned = aligner(paths)
        return aligned.chips, aligned.fallbacks
    size, crops = embedder.contract["crop_size"], []
    for path in paths:
        try:
            crops.append(center_crop_hr(path, size, 3))
        except SrferError as exc:
            crops.append(Skipped(path, str(exc)))
    return crops, []


@torch.no_grad()
def embed_face_files(paths: list[Path], embedder: LoadedModel, device: torch.device):
    """Embeddings of face files framed as the embedder expects; bad files are returned as
    (path, reason) instead of stopping the batch. Also: the files aligned by the fallback."""
    crops, fallbacks = _face_crops(paths, embedder)
    good = [p for p, c in zip(paths, crops, strict=True) if not isinstance(c, Skipped)]
    failed = [(c.path, c.reason) for c in crops if isinstance(c, Skipped)]
    if not good:
        return torch.empty(0), good, failed, fallbacks
    faces = torch.stack([c for c in crops if not isinstance(c, Skipped)]).float().div(255)
    return embedder(faces.to(device)).cpu(), good, failed, fallbacks


@dataclass
class EnrollReport:
    added: int
    failed: list[tuple[Path, str]] = field(default_factory=list)
    fallbacks: list[Path] = field(default_factory=list)  # no landmarks found: centre-crop fallback


def enroll(
    name: str, paths: list[Path], gallery: str | Path, weights: Path | None = None, device: str = "auto"
) -> EnrollReport:
    """Add `name`'s face embeddings to `gallery` (created if missing). With no readable
    face, nothing is written and `added` is 0."""
    dev = resolve_device(device)
    model = load_embedder(weights, dev)
    embeddings, good, failed, fallbacks = embed_face_files(paths, model, dev)
    if not good:
        return EnrollReport(0, failed)
    with open_gallery(gallery, create=True) as g:
        added = g.add(name, embeddings, [str(p) for p in good], model.model_id)
    return EnrollReport(added, failed, fallbacks)


@dataclass
class IdentifyReport:
    threshold: float
    matches: list[tuple[Path, Match]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    fallbacks: list[Path] = field(default_factory=list)  # no landmarks found: centre-crop fallback


def identify(
    paths: list[Path], gallery: str | Path, weights: Path | None = None, threshold: float | None = None,
    device: str = "auto",
) -> IdentifyReport:  # fmt: skip
    """The nearest enrolled identity of each face crop, or "unknown" beyond τ (the model's
    stored τ unless `threshold` is given)."""
    dev = resolve_device(device)
    with open_gallery(gallery) as g:  # a bad gallery fails before any model is loaded
        model = load_embedder(weights, dev)
        tau = threshold if threshold is not None else embedder_threshold(model)
        embeddings, good, failed, fallbacks = embed_face_files(paths, model, dev)
        matches = g.identify(embeddings, model.model_id, tau) if good else []
    return IdentifyReport(tau, list(zip(good, matches, strict=True)), failed, fallbacks)
