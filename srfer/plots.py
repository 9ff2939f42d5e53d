"""PNG plots people look at rather than read (matplotlib, headless Agg backend)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
