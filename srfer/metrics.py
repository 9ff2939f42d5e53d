"""Image-quality metrics (torchmetrics), per image.

Protocol: RGB (or gray) images in [0, 1], quantised to 8 bits first (what a saved PNG
holds), full frame with no border crop, data range 1.0; SSIM with torchmetrics' defaults
(11×11 Gaussian window, σ = 1.5, computed per channel and averaged).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
    multiclass_roc,
)
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from srfer.data.degradations import quantize_8bit

PROTOCOL = "PSNR/SSIM on 8-bit-quantised [0,1] images, all channels, full frame, data_range=1"


def psnr_per_image(pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pairs → (N,) PSNR in dB."""
    return peak_signal_noise_ratio(
        quantize_8bit(pred01).float(),
        quantize_8bit(target01).float(),
        data_range=1.0,
        reduction="none",
        dim=(1, 2, 3),
    )


def ssim_per_image(pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pairs → (N,) SSIM."""
    return structural_similarity_index_measure(
        quantize_8bit(pred01).float(),
        quantize_8bit(target01).float(),
        data_range=1.0,
        reduction="none",
    )


def classification_report(probs: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...]) -> dict:
    """Accuracy, per-class precision/recall/F1, macro F1, confusion matrix (rows = true
    class), one-vs-rest ROC AUC and ROC curves, from (N, C) probabilities."""
    n = len(class_names)
    kw = {"num_classes": n}
    per_class = {
        "precision": multiclass_precision(probs, labels, average=None, **kw),
        "recall": multiclass_recall(probs, labels, average=None, **kw),
        "f1": multiclass_f1_score(probs, labels, average=None, **kw),
        "auc": multiclass_auroc(probs, labels, average=None, **kw),
        "support": torch.bincount(labels, minlength=n),
    }
    fpr, tpr, _ = multiclass_roc(probs, labels, **kw)
    return {
        "accuracy": float(multiclass_accuracy(probs, labels, average="micro", **kw)),
        "macro_f1": float(multiclass_f1_score(probs, labels, average="macro", **kw)),
        "macro_auc": float(per_class["auc"].mean()),
        "per_class": {
            name: {k: (int(v[i]) if k == "support" else float(v[i])) for k, v in per_class.items()}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": multiclass_confusion_matrix(probs, labels, **kw).tolist(),
        "roc": {name: {"fpr": fpr[i].tolist(), "tpr": tpr[i].tolist()} for i, name in enumerate(class_names)},
    }
