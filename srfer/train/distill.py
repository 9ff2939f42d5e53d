"""Knowledge distillation for `train-fer --distill-from`: the training targets become a mix of
each face's label and the teachers' softened probabilities on that face (Hinton, Vinyals &
Dean, "Distilling the Knowledge in a Neural Network", 2015; here with the teacher's
temperature only, so the student keeps the plain cross-entropy of the soft-target path).

The teachers answer once, on the un-augmented training faces, before the first epoch
(offline distillation: on a CPU, running an ensemble inside every step would cost more than
the student's own step). Their answers are cached in the run folder, keyed by the teachers'
files and the training faces, so `--resume` does not recompute them. With `--upscale` the
teachers see the full-resolution face while the student learns from the restored one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from srfer.core.checkpoint import load_checkpoint, save_checkpoint
from srfer.core.console import info
from srfer.core.errors import SrferError
from srfer.core.weights import sha256
from srfer.data.fer import FerDataset, FerSamples
from srfer.infer.load import ensemble_paths, load_classifier
from srfer.infer.run import inference_context, predict_probs

CACHE_NAME = "teacher_probs.safetensors"
CACHE_KIND = "fer-teacher-probs"


def soften(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log p / T): the teacher's distribution at temperature T (T > 1 flattens it)."""
    return F.softmax(probs.clamp_min(1e-12).log() / temperature, dim=1)


def distillation_targets(
    teacher: torch.Tensor, labels: torch.Tensor, weight: float, temperature: float
) -> torch.Tensor:
    """Per face: `weight` × the softened teacher distribution + (1 − weight) × its one-hot label."""
    one_hot = F.one_hot(labels, teacher.shape[1]).to(teacher.dtype)
    return weight * soften(teacher, temperature) + (1 - weight) * one_hot


def faces_fingerprint(samples: FerSamples) -> str:
    """Which training faces (pixels and labels, in order) the cached answers belong to."""
    digest = hashlib.sha256(samples.images.contiguous().numpy().tobytes())
    digest.update(samples.labels.numpy().tobytes())
    return digest.hexdigest()[:32]


def teacher_probabilities(
    weights: Path, samples: FerSamples, device: torch.device, flip: bool, run_dir: Path,
    batch_size: int = 256,
) -> tuple[torch.Tensor, dict[str, Any]]:  # fmt: skip
    """The teachers' mean probabilities on every training face (N, classes), computed once and
    cached in `run_dir`; and what to record about them in the run's meta. The teachers are
    loaded (and their classes checked) first, so a wrong file fails before the long pass."""
    teacher = load_classifier(weights, device)
    if teacher.config.num_classes != len(samples.classes):
        raise SrferError(
            f"--distill-from: the teachers answer {teacher.config.num_classes} classes, the training data "
            f"has {len(samples.classes)}"
        )
    paths = [Path(p) for p in ensemble_paths(weights) if p is not None]
    key = {"teachers": [sha256(p) for p in paths], "flip": flip, "faces": faces_fingerprint(samples)}
    cache = run_dir / CACHE_NAME
    probs = _cached(cache, key)
    if probs is None:
        probs = _answer(teacher, samples, device, flip, batch_size)
        save_checkpoint(cache, CACHE_KIND, key, {"probs": probs})
    accuracy = float((probs.argmax(1) == samples.labels).float().mean())
    meta = {"teachers": [str(p) for p in paths], "flip": flip, "teacher_train_accuracy": round(accuracy, 4),
            "teacher_mean_top_probability": round(float(probs.max(1).values.mean()), 4)}  # fmt: skip
    return probs, meta


def _cached(cache: Path, key: dict[str, Any]) -> torch.Tensor | None:
    if not cache.is_file():
        return None
    ckpt = load_checkpoint(cache, CACHE_KIND)
    return ckpt.tensors["probs"] if ckpt.config == key else None


def _answer(
    teacher: torch.nn.Module, samples: FerSamples, device: torch.device, flip: bool, batch_size: int
) -> torch.Tensor:
    info(f"distillation: the teachers answer on {len(samples):,} training faces (once; cached in the run)")
    loader = DataLoader(FerDataset(samples), batch_size=batch_size)
    probs, _ = predict_probs(teacher, loader, inference_context(device), flip_tta=flip)
    return probs
