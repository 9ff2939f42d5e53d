"""Image-quality metrics (torchmetrics), per image.

Protocol: RGB (or gray) images in [0, 1], quantised to 8 bits first (what a saved PNG
holds), full frame with no border crop, data range 1.0; SSIM with torchmetrics' defaults
(11×11 Gaussian window, σ = 1.5, computed per channel and averaged).
"""

from __future__ import annotations

import torch
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
