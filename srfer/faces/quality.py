"""How much detail a face crop holds for its contrast, measured at its own pixels: what tells
a sharp small face (a clean downsample, a good camera) from a soft one (optics and motion
blur, compression).

`detail` is the mean absolute response of Immerkær's 3×3 Laplacian mask (Immerkær 1996, "Fast
noise variance estimation"; the difference of two Laplacians, blind to ramps and planes) on the
8-bit luma, scaled like his σ estimate, times the face's width, over the luma's standard
deviation. The width: a face's structure (eyes, mouth, hairline) spans a fixed share of it, so
a sharp face scores about the same at any size. The contrast: edges respond in proportion to
it, so a dim or washed-out face scores like a contrasty one (without it, FER2013's tight,
contrasty crops and CelebA-framed colour crops differ by ~1.7× at the same sharpness). Blur and
JPEG lower the score; noise raises it, so a noisy face counts as sharp: the measure only ever
sends soft faces to the paths trained on degraded ones. Hand-written because it is a few lines
of torch; no library names this estimate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from srfer.data.degradations import to_gray

_MASK = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]).view(1, 1, 3, 3)
_FLAT = 1.0  # luma std (8-bit levels) below which a crop counts as flat: no division by ~0


def detail(crop: torch.Tensor) -> float:
    """A (C, H, W) face (C 1 or 3; [0, 1] floats or uint8) → its detail score."""
    x = crop.float() / 255 if crop.dtype == torch.uint8 else crop.float()
    gray = to_gray(x.unsqueeze(0)) if x.shape[0] == 3 else x.unsqueeze(0)
    if min(gray.shape[-2:]) < 3:
        return 0.0
    gray = gray.clamp(0, 1).mul(255).round()
    response = F.conv2d(gray, _MASK).abs().mean()
    contrast = max(float(gray.std()), _FLAT)
    return float(response) * math.sqrt(math.pi / 2) / 6 * max(gray.shape[-2:]) / contrast
