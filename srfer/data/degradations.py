"""How a low-resolution face is made from a high-resolution one, and brought back naively.

LR = antialiased bicubic downsample (torch's `antialias=True`, like PIL's/Matlab's
imresize), quantised to 8 bits because real low-resolution inputs are 8-bit images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quantize_8bit(x01: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] tensor to the 256 levels an 8-bit image can hold."""
    return x01.clamp(0, 1).mul(255).round().div(255)


def bicubic_resize(x01: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of a (C, H, W) or (N, C, H, W) [0, 1] tensor, clamped."""
    batched = x01.dim() == 4
    x = x01 if batched else x01.unsqueeze(0)
    size = (size, size) if isinstance(size, int) else size
    out = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    out = out.clamp(0, 1)
    return out if batched else out.squeeze(0)


def downsample(hr01: torch.Tensor, scale: int) -> torch.Tensor:
    """HR [0, 1] → LR [0, 1], 1/scale the size, 8-bit quantised."""
    h, w = hr01.shape[-2:]
    return quantize_8bit(bicubic_resize(hr01, (h // scale, w // scale)))


def to_signed(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1], the range the generator reads and writes (tanh output)."""
    return x01 * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def degrade_and_restore(x01: torch.Tensor, lr_size: int, restore) -> torch.Tensor:
    """(N, C, S, S) faces → antialiased bicubic ↓ to lr_size, 8-bit → `restore(lr)` → back to S.

    `restore` maps an LR batch in [0, 1] to any size (bicubic, or an SR generator); the
    result is resized to S when the restorer's scale does not land on it exactly."""
    size = x01.shape[-2:]
    lr = quantize_8bit(bicubic_resize(x01, lr_size))
    restored = restore(lr)
    return restored if restored.shape[-2:] == size else bicubic_resize(restored, tuple(size))


class LowResPath:
    """Degrade faces to a low resolution and restore them, so a recogniser learns on what
    it will see. With several sizes, one is drawn per batch (mixed-resolution training),
    deterministically from the step number so resumed runs draw the same."""

    def __init__(self, lr_sizes: int | tuple[int, ...], restore, name: str) -> None:
        self.lr_sizes = (lr_sizes,) if isinstance(lr_sizes, int) else tuple(lr_sizes)
        self.restore, self.name = restore, name

    def describe(self) -> dict:
        return {"lr_sizes": list(self.lr_sizes), "upscaler": self.name}

    def __call__(self, x01: torch.Tensor, step: int = 0) -> torch.Tensor:
        with torch.no_grad():
            return degrade_and_restore(x01, self.lr_sizes[step % len(self.lr_sizes)], self.restore)
