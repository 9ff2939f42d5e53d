"""How a low-resolution face is made from a high-resolution one, and brought back naively.

Two models, chosen by name wherever a low-resolution face is made (`--degradation`):

- `clean`: an antialiased bicubic downsample (torch's `antialias=True`, like PIL's/Matlab's
  imresize), quantised to 8 bits — the textbook SR degradation.
- `realistic`: what small faces in CCTV stills, thumbnails and video frames go through, after
  Real-ESRGAN's and BSRGAN's models (Wang et al. 2021, Zhang et al. 2021) sized for faces of
  8–64 px (`RealisticModel` has the ranges and their reasons): optical/motion blur, a random
  resampling kernel, sensor noise, JPEG, and sometimes a second, milder round.
- `mixed`: each face drawn from one or the other (training on both keeps clean faces good).

Every draw is seeded (`seeds`: one per face), so a run, a resumed run and an evaluation see the
same faces; `describe()` is what run records store."""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def quantize_8bit(x01: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] tensor to the 256 levels an 8-bit image can hold."""
    return x01.clamp(0, 1).mul(255).round().div(255)


def to_gray(x01: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) → (N, 1, H, W) with ITU-R 601 luma, as PIL's convert("L") and FER2013."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x01.device).view(1, 3, 1, 1)
    return (x01 * weights).sum(1, keepdim=True)


def bicubic_resize(x01: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of a (C, H, W) or (N, C, H, W) [0, 1] tensor, clamped."""
    batched = x01.dim() == 4
    x = x01 if batched else x01.unsqueeze(0)
    size = (size, size) if isinstance(size, int) else size
    out = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    out = out.clamp(0, 1)
    return out if batched else out.squeeze(0)


@dataclass(frozen=True)
class RealisticModel:
    """The ranges of the realistic degradation, per face. Blur and motion are in pixels of the
    low-resolution face (a lens or a moving head blurs what the sensor records); noise and JPEG
    act on the low-resolution face, where the sensor and the encoder do.

    - blur: optics a little out of focus and the sensor's anti-alias filter soften a small face
      by up to about a pixel on top of the resampling's own blur; Gaussian σ 0.1–0.8 px
      (Real-ESRGAN's first-order range, σ 0.2–3 at the ×4 high resolution, is 0.05–0.75 px here),
      anisotropic (σ ratio up to 1:3, any angle) in 40 %.
    - motion: a walking person or a panning camera: a line of 0.5–2 px in 10 % of faces.
    - resampling: cameras and thumbnailers scale with different kernels: bicubic, bilinear, area.
    - noise: CCTV sensors at night and small pixels: Gaussian σ 1–10 / 255 (colour or gray) in
      70 % of faces, of which a third is signal-dependent (shot noise).
    - JPEG: every thumbnail and most frame grabs are compressed: quality 30–95 in 85 %
      (Real-ESRGAN's range).
    - second round: a re-encoded or re-scaled image (a thumbnail of a thumbnail) in 20 %: a
      milder blur (σ 0.1–0.5 px), noise (σ ≤ 4 / 255) and JPEG again."""

    blur_sigma: tuple[float, float] = (0.1, 0.8)
    anisotropic_share: float = 0.4
    max_axis_ratio: float = 3.0
    motion_share: float = 0.1
    motion_length: tuple[float, float] = (0.5, 2.0)
    kernels: tuple[str, ...] = ("bicubic", "bilinear", "area")
    noise_share: float = 0.7
    noise_sigma: tuple[float, float] = (1.0, 10.0)  # in 8-bit levels
    shot_noise_share: float = 0.33
    gray_noise_share: float = 0.4
    jpeg_share: float = 0.85
    jpeg_quality: tuple[int, int] = (30, 95)
    second_round_share: float = 0.2
    second_blur_sigma: tuple[float, float] = (0.1, 0.5)
    second_noise_sigma: tuple[float, float] = (0.5, 4.0)


@dataclass(frozen=True)
class Degradation:
    """A named degradation: `realistic_share` of the faces realistic (`RealisticModel`), the
    rest clean. `degradation(hr, size, seeds)`: (N, C, H, W) [0, 1] → (N, C, size, size), 8-bit."""

    name: str
    realistic_share: float
    model: RealisticModel = RealisticModel()

    def describe(self) -> dict:
        out: dict = {"name": self.name, "realistic_share": self.realistic_share}
        if self.realistic_share:
            out["realistic"] = asdict(self.model)
        return out

    def __call__(self, hr01: torch.Tensor, size: int | tuple[int, int], seeds: Sequence[int]) -> torch.Tensor:
        size = (size, size) if isinstance(size, int) else size
        if self.realistic_share == 0:
            return quantize_8bit(bicubic_resize(hr01, size))
        out = []
        for face, seed in zip(hr01, seeds, strict=True):
            rng = np.random.default_rng(seed)
            if rng.random() < self.realistic_share:
                out.append(_realistic(face, size, self.model, rng))
            else:
                out.append(quantize_8bit(bicubic_resize(face, size)))
        return torch.stack(out)


CLEAN = Degradation("clean", 0.0)
REALISTIC = Degradation("realistic", 1.0)
MIXED = Degradation("mixed", 0.5)
DEGRADATIONS = {d.name: d for d in (CLEAN, REALISTIC, MIXED)}


def degradation(name: str) -> Degradation:
    from srfer.core.errors import SrferError

    if name not in DEGRADATIONS:
        raise SrferError(f"--degradation {name!r}: use one of {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name]


def content_seeds(faces: torch.Tensor, salt: int = 0) -> list[int]:
    """A seed per face from its pixels (and `salt`): the same face is degraded alike wherever it
    is evaluated, whatever batch it comes in."""
    return [
        zlib.crc32(quantize_8bit(f).mul(255).to(torch.uint8).numpy().tobytes()) ^ salt for f in faces.cpu()
    ]


# --------------------------------------------------------------------------- the steps
def _realistic(
    hr01: torch.Tensor, size: tuple[int, int], m: RealisticModel, rng: np.random.Generator
) -> torch.Tensor:
    """One face (C, H, W) → (C, *size): blur, resample, noise, JPEG, maybe a second round."""
    scale = hr01.shape[-1] / size[1]
    x = _blur(hr01, _uniform(rng, m.blur_sigma) * scale, rng, m)
    if rng.random() < m.motion_share:
        x = _convolve(x, _motion_kernel(_uniform(rng, m.motion_length) * scale, rng.uniform(0, math.pi)))
    x = _resample(x, size, m.kernels[rng.integers(len(m.kernels))])
    x = _noise(x, rng, m, m.noise_sigma)
    x = _jpeg(x, rng, m)
    if rng.random() < m.second_round_share:
        x = _blur(x, _uniform(rng, m.second_blur_sigma), rng, m, anisotropic=False)
        x = _noise(x, rng, m, m.second_noise_sigma)
        x = _jpeg(x, rng, m)
    return quantize_8bit(x)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _blur(x: torch.Tensor, sigma: float, rng, m: RealisticModel, anisotropic: bool = True) -> torch.Tensor:
    if sigma < 0.1:
        return x
    sx = sy = sigma
    angle = 0.0
    if anisotropic and rng.random() < m.anisotropic_share:
        sy = sigma / rng.uniform(1.0, m.max_axis_ratio)
        angle = rng.uniform(0, math.pi)
    return _convolve(x, _gaussian_kernel(sx, sy, angle))


def _gaussian_kernel(sx: float, sy: float, angle: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * max(sx, sy)))
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    kernel = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return kernel / kernel.sum()


def _motion_kernel(length: float, angle: float) -> torch.Tensor:
    radius = max(1, math.ceil(length / 2))
    kernel = torch.zeros(2 * radius + 1, 2 * radius + 1)
    steps = max(2, 4 * radius)
    for t in torch.linspace(-length / 2, length / 2, steps):
        x, y = radius + float(t) * math.cos(angle), radius + float(t) * math.sin(angle)
        kernel[round(y), round(x)] += 1
    return kernel / kernel.sum()


def _convolve(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    channels, pad = x.shape[0], kernel.shape[-1] // 2
    weight = kernel.to(x.dtype)[None, None].expand(channels, 1, *kernel.shape)
    padded = F.pad(x[None], (pad,) * 4, mode="replicate")
    return F.conv2d(padded, weight, groups=channels)[0]


def _resample(x: torch.Tensor, size: tuple[int, int], kernel: str) -> torch.Tensor:
    if kernel == "area":
        return F.interpolate(x[None], size=size, mode="area")[0].clamp(0, 1)
    return F.interpolate(x[None], size=size, mode=kernel, align_corners=False, antialias=True)[0].clamp(0, 1)


def _noise(x: torch.Tensor, rng: np.random.Generator, m: RealisticModel, sigma_range) -> torch.Tensor:
    if rng.random() >= m.noise_share:
        return x
    sigma = _uniform(rng, sigma_range) / 255
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    shape = (1, *x.shape[1:]) if rng.random() < m.gray_noise_share else x.shape
    noise = torch.randn(shape, generator=gen)
    if rng.random() < m.shot_noise_share:  # shot noise grows with the signal
        noise = noise * (x.clamp(min=0.02).sqrt() * 2)
    return (x + sigma * noise).clamp(0, 1)


def _jpeg(x: torch.Tensor, rng: np.random.Generator, m: RealisticModel) -> torch.Tensor:
    if rng.random() >= m.jpeg_share:
        return x
    quality = int(rng.integers(m.jpeg_quality[0], m.jpeg_quality[1] + 1))
    pixels = quantize_8bit(x).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(pixels[:, :, 0], "L") if pixels.shape[2] == 1 else Image.fromarray(pixels, "RGB")
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    back = np.asarray(Image.open(buffer).convert(img.mode), dtype=np.uint8)
    back = back[:, :, None] if back.ndim == 2 else back
    return torch.from_numpy(back.copy()).permute(2, 0, 1).float().div(255)


# ------------------------------------------------------------------- the rest, as before
def downsample(hr01: torch.Tensor, scale: int, how: Degradation = CLEAN, seed: int = 0) -> torch.Tensor:
    """HR (C, H, W) [0, 1] → LR [0, 1], 1/scale the size, 8-bit, by `how`."""
    h, w = hr01.shape[-2:]
    return how(hr01[None], (h // scale, w // scale), [seed])[0]


def to_signed(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1], the range the generator reads and writes (tanh output)."""
    return x01 * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def degrade_and_restore(
    x01: torch.Tensor, lr_size: int, restore, how: Degradation = CLEAN, salt: int = 0
) -> torch.Tensor:
    """(N, C, S, S) faces → degraded to lr_size by `how` → `restore(lr)` → back to S.

    `restore` maps an LR batch in [0, 1] to any size (bicubic, or an SR generator); the
    result is resized to S when the restorer's scale does not land on it exactly."""
    size = x01.shape[-2:]
    restored = restore(degrade(x01, lr_size, how, salt))
    return restored if restored.shape[-2:] == size else bicubic_resize(restored, tuple(size))


def degrade(x01: torch.Tensor, lr_size: int, how: Degradation = CLEAN, salt: int = 0) -> torch.Tensor:
    """(N, C, S, S) faces → (N, C, lr_size, lr_size) 8-bit faces degraded by `how` (its draws
    from each face's pixels and `salt`)."""
    if how.realistic_share:
        return how(x01.cpu(), lr_size, content_seeds(x01, salt)).to(x01.device)
    return quantize_8bit(bicubic_resize(x01, lr_size))


class LowResPath:
    """Degrade faces to a low resolution and restore them, so a recogniser learns on what
    it will see. With several sizes, one is drawn per batch (mixed-resolution training),
    deterministically from the step number so resumed runs draw the same; so are the
    realistic degradation's draws (from each face's pixels and the step)."""

    def __init__(self, lr_sizes: int | tuple[int, ...], restore, name: str, how: Degradation = CLEAN) -> None:
        self.lr_sizes = (lr_sizes,) if isinstance(lr_sizes, int) else tuple(lr_sizes)
        self.restore, self.name, self.how = restore, name, how

    def describe(self) -> dict:
        return {"lr_sizes": list(self.lr_sizes), "upscaler": self.name, "degradation": self.how.describe()}

    def __call__(self, x01: torch.Tensor, step: int = 0) -> torch.Tensor:
        size = self.lr_sizes[step % len(self.lr_sizes)]
        with torch.no_grad():
            return degrade_and_restore(x01, size, self.restore, self.how, salt=step * 7919)
