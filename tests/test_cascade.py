"""srfer's MTCNN driver (`srfer.faces.cascade`) against facenet-pytorch's, whose answers it must keep."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from srfer.faces import cascade
from srfer.faces.cascade import Cascade, CascadeConfig, SummedArea, nms, nms_by_smaller_area
from srfer.models.mtcnn import CeilMaxPool

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def photos() -> dict[str, Image.Image]:
    """The shipped astronaut in several framings: a face large, small, mirrored, tiled, none."""
    astronaut = Image.open(EXAMPLES / "astronaut.png").convert("RGB")
    tiled = Image.new("RGB", (700, 460), (90, 90, 90))
    for i, side in enumerate((300, 150, 80)):
        tiled.paste(astronaut.resize((side, side), Image.BICUBIC), (10 + 320 * (i > 0) + 160 * (i > 1), 10))
    return {
        "astronaut": astronaut,
        "small": Image.open(EXAMPLES / "astronaut_small.png").convert("RGB"),
        "mirrored": ImageOps.mirror(astronaut).resize((333, 333), Image.BICUBIC),
        "tiled": tiled,
        "blank": Image.new("RGB", (200, 120), (0, 0, 0)),
    }


def test_the_cascade_answers_like_facenet_pytorch() -> None:
    from facenet_pytorch import MTCNN

    reference = MTCNN(keep_all=True, thresholds=[0.6, 0.7, 0.9], select_largest=True, device="cpu")
    ours = Cascade(CascadeConfig(20, (0.6, 0.7, 0.9)), torch.device("cpu"))
    found = 0
    for name, img in photos().items():
        boxes, probs, points = reference.detect(img, landmarks=True)
        got_boxes, got_points = ours.detect(np.array(img))
        if boxes is None:
            assert len(got_boxes) == 0, name
            continue
        boxes, probs, points = (np.asarray(a, dtype=np.float64) for a in (boxes, probs, points))
        found += len(boxes)
        assert got_boxes.shape == (len(boxes), 5), name
        np.testing.assert_allclose(got_boxes[:, :4], boxes, atol=1e-3, err_msg=name)
        np.testing.assert_allclose(got_boxes[:, 4], probs, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(got_points, points, atol=1e-3, err_msg=name)
    assert found >= 5  # the astronaut in four photos, three times in the tiled one


def test_summed_area_resizes_are_adaptive_average_pooling() -> None:
    """Pyramid levels (down), R-/O-Net windows (down, up, thin, at the borders) agree with
    `adaptive_avg_pool2d`, the resize facenet-pytorch uses, to float32 rounding."""
    pixels = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    photo = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    table = SummedArea(pixels, torch.device("cpu"))
    for size in [(58, 79), (41, 56), (12, 17), (97, 131)]:
        got = table.resize(size)
        assert got.shape == (1, 3, *size)
        torch.testing.assert_close(
            got, torch.nn.functional.adaptive_avg_pool2d(photo, size), atol=1e-4, rtol=0
        )
    corners = torch.tensor(
        [[0, 0, 131, 97], [5, 7, 29, 31], [100, 60, 110, 97], [3, 3, 4, 90], [0, 90, 131, 97]]
    )
    for side in (24, 48):
        got = table.windows(corners, side)
        assert got.shape == (len(corners), 3, side, side)
        for window, (left, top, right, bottom) in zip(got, corners.tolist(), strict=True):
            expected = torch.nn.functional.adaptive_avg_pool2d(photo[:, :, top:bottom, left:right], side)[0]
            torch.testing.assert_close(window, expected, atol=1e-4, rtol=0)


SIZES = [(8, 8), (9, 12), (12, 7), (3, 3), (5, 4), (2, 5), (22, 22), (23, 9)]  # odd, even, under a window


@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("height, width", SIZES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_the_separable_pool_is_max_pool_2d_ceil_mode(
    kernel: int, height: int, width: int, channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = torch.randn(2, 10, height, width)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = torch.nn.MaxPool2d(kernel, 2, ceil_mode=True)(x)
    monkeypatch.setattr(CeilMaxPool, "SMALL", 0)  # the separable path even for tiny inputs
    got = CeilMaxPool(kernel)(x)
    assert torch.equal(got, expected)
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def random_boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crowded boxes (many overlaps) with scores, a few of them tied."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g) * 100
    size = 5 + torch.rand(n, 2, generator=g) * 40
    scores = torch.rand(n, generator=g)
    scores[: n // 10] = 0.5
    return torch.cat([corner, corner + size], dim=1), scores


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_keeps_what_torchvision_keeps(threshold: float, monkeypatch) -> None:
    from torchvision.ops import nms as torchvision_nms

    monkeypatch.setattr(cascade, "NMS_BLOCK", 7)  # several blocks: the overlaps are cut in pieces
    for seed in range(5):
        boxes, scores = random_boxes(60, seed)
        expected = torchvision_nms(boxes, scores, threshold)
        got = nms(boxes, scores, threshold)
        untied = scores[expected] != 0.5  # tied scores may come in either order
        assert set(got.tolist()) == set(expected.tolist())
        assert got[untied].tolist() == expected[untied].tolist()


def test_the_last_stage_nms_measures_overlap_by_the_smaller_box() -> None:
    from facenet_pytorch.models.utils.detect_face import batched_nms_numpy

    for seed in range(5):
        boxes, scores = random_boxes(40, seed)
        scores = scores + torch.arange(40) * 1e-4  # no ties: the reference sorts unstably
        expected = batched_nms_numpy(boxes, scores, torch.zeros(40), 0.7, "Min")
        assert nms_by_smaller_area(torch.cat([boxes, scores[:, None]], 1), 0.7).tolist() == expected.tolist()


def test_the_nets_load_without_importing_torchvision() -> None:
    """facenet-pytorch's package imports torchvision, whose ops import torch._dynamo: seconds
    more for every process that detects faces (the CLI, each worker)."""
    code = (
        "import sys, numpy, torch\n"
        "from srfer.faces.detect import FaceDetector\n"
        "FaceDetector(torch.device('cpu')).detect([__import__('PIL.Image').Image.new('RGB', (64, 64))])\n"
        "print(sorted(m for m in ('torchvision', 'facenet_pytorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
