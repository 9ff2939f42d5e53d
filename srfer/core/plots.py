"""PNG plots people look at rather than read (matplotlib, headless Agg backend)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from srfer.core.errors import writing  # noqa: E402


def plot_training_curves(history: list[dict[str, Any]], path: Path, pairs: list[tuple[str, str]]) -> None:
    """One panel per (metric, baseline-or-empty) pair against epoch; atomic write."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.6), squeeze=False)
    for ax, (key, baseline) in zip(axes[0], pairs, strict=True):
        ax.plot(epochs, [r.get(key) for r in history], marker="o", label=key)
        if baseline:
            ax.plot(epochs, [r.get(baseline) for r in history], linestyle="--", label=baseline)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        with writing(path, partial=tmp):
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(tmp, dpi=110)
            os.replace(tmp, path)
    finally:
        plt.close(fig)
    return path


def plot_confusion(matrix: list[list[int]], names: tuple[str, ...], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix heat map with counts (rows: true class)."""
    import numpy as np

    counts = np.array(matrix, dtype=float)
    rates = counts / np.clip(counts.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(counts[i, j])}\n{rates[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_roc(
    roc: dict[str, dict[str, list[float]]], aucs: dict[str, float], path: Path, title: str = ""
) -> Path:
    """One-vs-rest ROC curves, one per class, AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5.6, 5))
    for name, curve in roc.items():
        ax.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {aucs[name]:.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_sweep(
    sizes: list[int], series: dict[str, list[float | None]], path: Path, ylabel: str, title: str
) -> Path:
    """Metric vs face size, one line per method (None values are gaps)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in series.items():
        ax.plot(sizes, [float("nan") if v is None else v for v in values], marker="o", label=name)
    ax.set_xlabel("face size (px)")
    ax.set_ylabel(ylabel)
    ax.set_xticks(sizes)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_image_grid(rows: list[list[Any]], columns: list[str], path: Path, title: str = "") -> Path:
    """Images (C, H, W) in [0, 1] as a grid, one titled column per method (e.g. LR | bicubic |
    SR models | HR); each shown at its own pixels, so it's faces people compare, not plots."""
    height, width = rows[0][0].shape[-2:]
    size = (len(columns) * width / 80 + 0.2, len(rows) * height / 80 + 0.6)
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False, figsize=size)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = axes[r][c]
            pixels = image.clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
