"""`eval-fer`: an expression classifier's metrics on a FER split, and accuracy vs face size."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from srfer.core.runtime import resolve_device
from srfer.core.weights import Weights
from srfer.data.degradations import CLEAN, LowResPath
from srfer.data.fer import FerDataset, class_names, load_fer, project_probs
from srfer.eval.metrics import classification_report
from srfer.eval.options import FerEvalOptions, degradations_of
from srfer.eval.results import FerEvaluation, FerSweep
from srfer.eval.sweeps import check_sweep_sizes, column, x8_column
from srfer.infer.load import load_classifier
from srfer.infer.run import Restorer, inference_context, make_restorer, predict_probs

FULL_SIZE = 48  # FER2013's faces: a sweep size this large is the face as it is


def evaluate_fer(options: FerEvalOptions) -> FerEvaluation:
    """Accuracy, per-class P/R/F1, macro F1, confusion matrix and ROC of a classifier
    (`limit`: about that many faces, spread over the classes; 0: all)."""
    o = options
    (how,) = degradations_of(o.degradation, sweep=False)
    dev = resolve_device(o.device)
    model = load_classifier(o.weights, dev)
    restore = make_restorer(o.upscaler, dev, o.sr_weights) if o.upscale else None
    loader, samples, skipped = _fer_loader(o.data, o.split, o.ferplus, o.batch_size, o.limit)
    probs, labels = _fer_probs(model, loader, dev, o.lr_size if o.upscale else None, restore, o.flip_tta, how)
    probs, labels, classes, note = shared_classes(probs, labels, samples.classes)
    protocol = f"{o.lr_size}px → {o.upscaler} → {FULL_SIZE}px" if o.upscale else f"{FULL_SIZE}px input"
    protocol += f" ({how.name} degradation)" if o.upscale and how is not CLEAN else ""
    protocol += " (+ flip TTA: mean of face and mirror)" if o.flip_tta else ""
    return FerEvaluation(
        data=samples.description, images=len(labels), skipped=skipped, weights=str(model.source),
        input=protocol, classes=list(classes), notes=[note] if note else [],
        metrics=classification_report(probs, labels, classes),
    )  # fmt: skip


def _fer_loader(data: Path, split: str, ferplus: Path | None, batch_size: int, limit: int = 0):
    """(loader, samples, skipped files as JSON) of a FER split (`limit`: that many faces)."""
    samples = load_fer(data, split, ferplus, limit)
    skipped = [s.to_json() for s in samples.skipped]
    return DataLoader(FerDataset(samples), batch_size=batch_size), samples, skipped


def _fer_probs(
    model, loader: DataLoader, device: torch.device, lr_size: int | None, restore, flip_tta=False, how=CLEAN
):
    low_res = LowResPath(lr_size, restore, "", how) if lr_size else None
    return predict_probs(model, loader, inference_context(device), low_res, flip_tta)


def shared_classes(
    probs: torch.Tensor, labels: torch.Tensor, data_classes: tuple[str, ...]
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], str | None]:
    """A 7-class (FER2013) classifier on 8-class (FER+) data, or the reverse, is scored on
    the 7 classes both know: an 8-class model's contempt probability is dropped (the rest
    renormalised); FER+ faces labelled contempt are left out for a 7-class model. Returns
    (probs, labels, classes, a note saying which, or None)."""
    model_classes = class_names(probs.shape[1])
    if model_classes == data_classes:
        return probs, labels, data_classes, None
    if len(model_classes) > len(data_classes):
        note = "the classifier's contempt probability is left out (7-class data); the rest renormalised"
        return project_probs(probs, len(data_classes)), labels, data_classes, note
    known = labels < len(model_classes)
    note = f"{int((~known).sum())} contempt faces left out: the classifier knows 7 classes"
    return probs[known], labels[known], model_classes, note


def sweep_fer(options: FerEvalOptions, sizes: list[int], progress=None) -> FerSweep:
    """Accuracy vs face size: HR classifier on bicubic-, SR- and ×8-SR-restored input (the
    CelebA ×8 takes the gray face as RGB), and the `--upscale`-trained classifier (on
    SR-restored input), same images and protocol. Without `upscale_weights`/`x8_weights` and
    no shipped file, that column is left out (and said so in `notes`)."""
    o = options
    dev = resolve_device(o.device)
    hr_model = load_classifier(o.weights, dev)
    notes: list[str] = []
    up_path = Weights.FER_UPSCALE.optional(o.upscale_weights)
    up_model = load_classifier(o.upscale_weights, dev, role=Weights.FER_UPSCALE) if up_path else None
    if up_model is None:
        notes.append(f"no upscale-trained classifier column: {Weights.FER_UPSCALE.missing_note()}")
    restorers: dict[str, Restorer] = {"bicubic": Restorer(), "sr": make_restorer("sr", dev, o.sr_weights)}
    restorers |= x8_column(dev, o.x8_weights, notes)
    loader, samples, skipped = _fer_loader(o.data, o.split, o.ferplus, o.batch_size)
    runs = {"hr_classifier+bicubic": (hr_model, "bicubic"), "hr_classifier+sr": (hr_model, "sr")}
    if "x8_sr" in restorers:
        runs["hr_classifier+x8_sr"] = (hr_model, "x8_sr")
    if up_model is not None:
        runs["upscale_classifier+sr"] = (up_model, "sr")
    check_sweep_sizes(sizes, 4, FULL_SIZE)
    degradations = degradations_of(o.degradation, sweep=True)
    table: dict[str, list[float]] = {column(name, how): [] for how in degradations for name in runs}

    def accuracy(model, lr_size: int | None, restorer: str, how=CLEAN) -> float:
        probs, labels = _fer_probs(model, loader, dev, lr_size, restorers[restorer], how=how)
        probs, labels, _, note = shared_classes(probs, labels, samples.classes)
        if note and note not in notes:
            notes.append(note)
        return float((probs.argmax(1) == labels).float().mean())

    for size in sizes:
        if size >= FULL_SIZE:  # full-size input is not degraded: one pass per model serves every column
            models = {id(m): m for m, _ in runs.values()}
            per_model = {key: accuracy(m, None, "bicubic") for key, m in models.items()}
            results = {column(name, how): per_model[id(model)] for how in degradations
                       for name, (model, _) in runs.items()}  # fmt: skip
        else:
            results = {column(name, how): accuracy(model, size, restorer, how) for how in degradations
                       for name, (model, restorer) in runs.items()}  # fmt: skip
        for name in table:
            table[name].append(results[name])
        if progress is not None:
            progress()
    weights = {"weights": str(hr_model.source), "upscale_weights": str(up_model.source) if up_model else None,
               "sr_weights": str(restorers["sr"].source),
               "x8_weights": str(restorers["x8_sr"].source) if "x8_sr" in restorers else None}  # fmt: skip
    return FerSweep(data=samples.description, skipped=skipped, sizes=sizes, accuracy=table, weights=weights,
                 notes=notes)  # fmt: skip
