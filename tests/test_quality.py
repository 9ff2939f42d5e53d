"""A face crop's detail score (`srfer.faces.quality.detail`): what tells a sharp small face from
a soft one for `predict`'s routing."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image, ImageFilter
from torchvision.transforms.functional import pil_to_tensor

from srfer.faces.quality import detail
from srfer.infer.routing import ROUTING

FACE = Path(__file__).resolve().parent.parent / "examples/gallery/astronaut_128.png"


def small(px: int, blur: float = 0.0, jpeg: int | None = None) -> torch.Tensor:
    img = Image.open(FACE).convert("RGB")
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    img = img.resize((px, px), Image.Resampling.BICUBIC, reducing_gap=None)
    if jpeg is not None:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=jpeg)
        img = Image.open(buf).convert("RGB")
    return pil_to_tensor(img)


def test_a_sharp_face_scores_about_the_same_at_every_size() -> None:
    scores = [detail(small(px)) for px in (24, 28, 32)]
    assert max(scores) < 1.5 * min(scores)
    assert scores[-1] > ROUTING.soft_detail_below  # a clean downsample is not soft


def test_blur_and_compression_make_a_face_soft() -> None:
    sharp = detail(small(28))
    blurred = detail(small(28, blur=4.0))  # sigma 4 at 128 px: 0.9 px at 28
    compressed = detail(small(28, blur=2.0, jpeg=20))
    assert blurred < 0.6 * sharp and compressed < sharp
    assert blurred < ROUTING.soft_detail_below


def test_a_dim_face_scores_like_a_contrasty_one() -> None:
    crop = small(28).float() / 255
    dim = crop * 0.4 + 0.3  # the same face in flat light
    assert abs(detail(dim) - detail(crop)) < 0.1 * detail(crop)


def test_gray_and_uint8_or_float_crops_agree() -> None:
    crop = small(24)
    gray = (crop.float() * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True) / 255
    assert abs(detail(crop) - detail(crop.float() / 255)) < 1e-3
    assert abs(detail(crop) - detail(gray)) < 0.02 * detail(crop)


def test_a_crop_too_small_to_measure_scores_zero() -> None:
    assert detail(torch.zeros(3, 2, 2)) == 0.0
