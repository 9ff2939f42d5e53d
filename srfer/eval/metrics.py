"""Image-quality metrics (torchmetrics), per image.

Protocol: RGB (or gray) images in [0, 1], quantised to 8 bits first (what a saved PNG
holds), full frame with no border crop, data range 1.0; SSIM with torchmetrics' defaults
(11×11 Gaussian window, σ = 1.5, computed per channel and averaged).
"""

from __future__ import annotations

import warnings

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

PROTOCOL = (
    "PSNR/SSIM on 8-bit-quantised [0,1] images, all channels, full frame, data_range=1, PSNR capped at 100 dB"
)


PSNR_CAP_DB = 100.0


def psnr_per_image(pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pairs → (N,) PSNR in dB, capped at PSNR_CAP_DB: identical images (e.g. the
    blank frames in FER2013, which bicubic restores exactly) would make a mean infinite."""
    psnr = peak_signal_noise_ratio(
        quantize_8bit(pred01).float(),
        quantize_8bit(target01).float(),
        data_range=1.0,
        reduction="none",
        dim=(1, 2, 3),
    )
    return psnr.clamp(max=PSNR_CAP_DB)


def ssim_per_image(pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pairs → (N,) SSIM."""
    return structural_similarity_index_measure(
        quantize_8bit(pred01).float(),
        quantize_8bit(target01).float(),
        data_range=1.0,
        reduction="none",
    )


def sr_vs_bicubic(sr01: torch.Tensor, bicubic01: torch.Tensor, hr01: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR/SSIM of the model and of the bicubic baseline against HR."""
    return {
        "psnr_sr": psnr_per_image(sr01, hr01),
        "psnr_bicubic": psnr_per_image(bicubic01, hr01),
        "ssim_sr": ssim_per_image(sr01, hr01),
        "ssim_bicubic": ssim_per_image(bicubic01, hr01),
    }


def classification_report(probs: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...]) -> dict:
    """Accuracy, per-class precision/recall/F1, macro F1, confusion matrix (rows = true
    class), one-vs-rest ROC AUC and ROC curves, from (N, C) probabilities.

    Classes absent from `labels` have no recall, F1, AUC or ROC (None, and listed in
    `absent_classes`); the macro means are over the classes present, so a small or
    one-sided evaluation set is not dragged down by zeros that mean "undefined"."""
    n = len(class_names)
    kw = {"num_classes": n}
    support = torch.bincount(labels, minlength=n)
    present = support > 0
    with warnings.catch_warnings():  # torchmetrics warns about absent classes; we say so instead
        warnings.simplefilter("ignore", UserWarning)
        per_class = {
            "precision": multiclass_precision(probs, labels, average=None, **kw),
            "recall": multiclass_recall(probs, labels, average=None, **kw),
            "f1": multiclass_f1_score(probs, labels, average=None, **kw),
            "auc": multiclass_auroc(probs, labels, average=None, **kw),
        }
        fpr, tpr, _ = multiclass_roc(probs, labels, **kw)
        # torchmetrics' own macro F1 when every class is present (the numbers reported so far)
        macro_f1 = multiclass_f1_score(probs, labels, average="macro", **kw) if present.all() else None
    undefined_when_absent = ("recall", "f1", "auc")

    def row(i: int) -> dict:
        out = {k: (None if not present[i] and k in undefined_when_absent else float(v[i]))
               for k, v in per_class.items()}  # fmt: skip
        return {**out, "support": int(support[i])}

    return {
        "accuracy": float(multiclass_accuracy(probs, labels, average="micro", **kw)),
        "macro_f1": float(macro_f1 if macro_f1 is not None else per_class["f1"][present].mean()),
        "macro_auc": float(per_class["auc"][present].mean()),
        "absent_classes": [name for i, name in enumerate(class_names) if not present[i]],
        "per_class": {name: row(i) for i, name in enumerate(class_names)},
        "confusion_matrix": multiclass_confusion_matrix(probs, labels, **kw).tolist(),
        "roc": {
            name: {"fpr": fpr[i].tolist(), "tpr": tpr[i].tolist()}
            for i, name in enumerate(class_names)
            if present[i]
        },  # fmt: skip
    }


def best_threshold(distances: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """τ maximising accuracy of `d ≤ τ ⇒ same person`; candidates are midpoints between
    sorted distances. Returns (τ, accuracy)."""
    d = distances.double().sort().values
    candidates = torch.cat([d[:1] - 1e-6, (d[1:] + d[:-1]) / 2, d[-1:] + 1e-6])
    correct = ((distances.double()[None, :] <= candidates[:, None]) == same[None, :]).double().mean(1)
    best = int(correct.argmax())
    return float(candidates[best]), float(correct[best])


def verification_report(
    distances: torch.Tensor,
    same: torch.Tensor,
    folds: int = 10,
    far_targets: tuple[float, ...] = (1e-3, 1e-2),
) -> dict:
    """LFW protocol: τ chosen on 9 folds, accuracy on the 10th (mean ± std over folds);
    ROC AUC, EER and TAR at fixed FAR on all pairs; τ on all pairs for deployment."""
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    same = same.bool()
    n = len(distances)
    fold_of = torch.arange(n) * folds // n  # contiguous folds, as LFW's pairs.txt
    accuracies, thresholds = [], []
    for f in range(folds):
        test, train = fold_of == f, fold_of != f
        if not test.any() or not train.any():
            continue
        tau, _ = best_threshold(distances[train], same[train])
        thresholds.append(tau)
        accuracies.append(float(((distances[test] <= tau) == same[test]).double().mean()))
    scores, target = -distances.float(), same.long()
    fpr, tpr, _ = binary_roc(scores, target)
    fnr = 1 - tpr
    eer_at = int((fpr - fnr).abs().argmin())
    tar = {
        f"tar_at_far_{far:g}": float(tpr[fpr <= far].max()) if (fpr <= far).any() else 0.0
        for far in far_targets
    }
    acc = torch.tensor(accuracies, dtype=torch.float64)
    return {
        "pairs": n,
        "accuracy": float(acc.mean()),
        "accuracy_std": float(acc.std()) if len(acc) > 1 else 0.0,
        "fold_thresholds": thresholds,
        "threshold": best_threshold(distances, same)[0],
        "roc_auc": float(binary_auroc(scores, target)),
        "eer": float((fpr[eer_at] + fnr[eer_at]) / 2),
        **tar,
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    }


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two sets of feature rows (N, D), as FID
    (Heusel et al., 2017) does with Inception features: ‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½).

    Hand-written (ten lines) because torchmetrics' FID owns its feature network; here the
    features are a face recogniser's embeddings of aligned chips. Tr((Σa Σb)^½) is the sum of
    √λ over Σa^½ Σb Σa^½, which is symmetric PSD, so float64 `eigh` suffices."""
    a, b = a.double(), b.double()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    means = (a.mean(0) - b.mean(0)).square().sum()
    return float(means + cov_a.trace() + cov_b.trace() - 2 * cross)
