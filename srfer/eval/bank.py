"""Embedding banks: every face of an identity set embedded once per probe size and degradation
(degraded, then restored as `predict` routes it), kept in a folder so that a verification
head's training and its evaluations reuse them and an interrupted run resumes where it stopped.

A bank file holds one (size, degradation)'s embeddings and a fingerprint of what made them
(the embedder's sha256, the restorer, the images); a file whose fingerprint differs is made
again, never reused."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from srfer.core.checkpoint import load_checkpoint, save_checkpoint
from srfer.core.console import info
from srfer.core.errors import SrferError
from srfer.data.degradations import LowResPath, degradation, degrade
from srfer.data.identity import FaceIdentityDataset, discover_identities
from srfer.infer.heads import IdentityRouteRestorer
from srfer.infer.load import LoadedModel, embedder_aligner
from srfer.infer.run import RunContext, embed_all, inference_context

KIND = "embedding-bank"


@dataclass(frozen=True)
class Probe:
    """How a bank's faces were seen: at `size` px (None: as they are, not degraded) under the
    `degradation` preset."""

    size: int | None
    degradation: str = "clean"

    @property
    def name(self) -> str:
        return "full" if self.size is None else f"{self.size}px_{self.degradation}"


def probes(sizes: Iterable[int], degradations: Iterable[str]) -> list[Probe]:
    """The full-size probe and every size under every degradation."""
    return [Probe(None)] + [Probe(s, d) for d in degradations for s in sizes]


def _fingerprint(model: LoadedModel, paths: list[Path], restorer, probe: Probe) -> dict:
    images = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()
    way = None
    if isinstance(restorer, IdentityRouteRestorer):
        way = restorer.describe(probe.size) if probe.size else None
    elif probe.size:
        way = getattr(restorer, "describe", lambda: str(restorer.source))()
    return {"embedder": model.model_id, "restorer": way, "images": images, "count": len(paths),
            "size": probe.size, "degradation": probe.degradation}  # fmt: skip


def embed_probe(
    model: LoadedModel, dataset, probe: Probe, restorer, ctx: RunContext, batch_size: int = 64
) -> torch.Tensor:
    """The dataset's faces seen as `probe` says → (N, D) embeddings; a route
    (`IdentityRouteRestorer`) embeds each face as predict would."""
    loader = DataLoader(dataset, batch_size=batch_size)
    if probe.size is None:
        return embed_all(model, loader, ctx)
    how = degradation(probe.degradation)
    if isinstance(restorer, IdentityRouteRestorer):
        size = model.contract["crop_size"]
        chips = (degrade(batch["image"], probe.size, how) for batch in loader)
        return torch.cat([restorer.embed(model, lr, size, ctx) for lr in chips])
    return embed_all(model, loader, ctx, LowResPath(probe.size, restorer, "", how))


@dataclass
class Bank:
    """Embeddings of one identity set per probe, and the identity label of each row."""

    embeddings: dict[Probe, torch.Tensor]
    labels: torch.Tensor


def banks(
    folder: Path | None, label: str, model: LoadedModel, paths: list[Path], faces: Callable[[], Dataset],
    wanted: list[Probe], restorer, ctx: RunContext, batch_size: int = 64,
    progress: Callable[[Probe], None] | None = None,
) -> Bank:  # fmt: skip
    """Every probe's embeddings of the faces of `paths`: from `folder/<label>_<probe>.safetensors`
    where that was made the same way, else made now and written there atomically. `faces()`
    makes the dataset (aligned faces with `labels` and `paths`; unusable files dropped) only when
    some probe must be made. `progress` is told each probe done."""
    out: dict[Probe, torch.Tensor] = {}
    labels: torch.Tensor | None = None
    dataset = None
    for probe in wanted:
        fingerprint = _fingerprint(model, paths, restorer, probe)
        path = folder / f"{label}_{probe.name}.safetensors" if folder is not None else None
        saved = _saved(path, fingerprint)
        if saved is None:
            dataset = dataset if dataset is not None else faces()
            saved = {"embeddings": embed_probe(model, dataset, probe, restorer, ctx, batch_size),
                     "labels": dataset.labels}  # fmt: skip
            if path is not None:
                save_checkpoint(path, KIND, fingerprint, saved)
        if labels is not None and not torch.equal(labels, saved["labels"]):
            raise SrferError(
                f"{folder}: its {label} banks hold different faces; delete them to make them anew"
            )
        out[probe], labels = saved["embeddings"], saved["labels"]
        if progress is not None:
            progress(probe)
    assert labels is not None, "no probes wanted"
    return Bank(out, labels)


def _saved(path: Path | None, fingerprint: dict) -> dict[str, torch.Tensor] | None:
    """A bank file's tensors when it was made as `fingerprint` says, else None (made again)."""
    if path is None or not path.is_file():
        return None
    try:
        saved = load_checkpoint(path, KIND)
    except SrferError as exc:
        info(f"{path}: made again ({exc})")
        return None
    if saved.config != fingerprint:
        info(f"{path}: made again (made from other faces, weights or restorer)")
        return None
    return saved.tensors


def identity_banks(
    embedder: LoadedModel, data: Path, split: str, wanted: list[Probe], restorer, folder: Path | None = None,
    seed: int = 0, subset: int = 0,
) -> Bank:  # fmt: skip
    """`split`'s identity-labelled faces (aligned as `embedder` expects) embedded at every probe,
    restored by `restorer` (e.g. `IdentityRouteRestorer`: along predict's route)."""
    source = discover_identities(data, split, seed=seed, subset=subset)
    size = embedder.contract["crop_size"]

    def faces() -> FaceIdentityDataset:
        return FaceIdentityDataset(source, size, aligner=embedder_aligner(embedder))

    ctx = inference_context(embedder.device)
    return banks(folder, split, embedder, source.paths, faces, wanted, restorer, ctx)
