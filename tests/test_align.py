"""Five-point alignment: the similarity fit, the warp, dlib's template and the fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import synthetic_face

from srfer.faces.align import (
    CENTRED_FACE,
    DLIB_TEMPLATE,
    FaceAligner,
    align_face,
    centred_landmarks,
    dlib_template,
    similarity,
)


def test_similarity_recovers_a_known_map() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    m = similarity(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)
    mirrored = dst * [-1, 1]  # a reflection is not a similarity: the fit must not flip
    assert np.linalg.det(similarity(src, mirrored)[:, :2]) > 0


def test_dlib_template_is_the_mean_face_with_padding() -> None:
    pts = np.array(DLIB_TEMPLATE.points)
    # symmetric eyes and mouth about the mean face's midline (x = 0.490127 before padding)
    mid = (0.25 + 0.490127) / 1.5
    assert pts[0, 1] == pytest.approx(pts[1, 1]) and (pts[0, 0] + pts[1, 0]) / 2 == pytest.approx(
        mid, abs=1e-3
    )
    assert pts[2, 0] == pytest.approx(mid) and pts[3, 1] == pytest.approx(pts[4, 1])
    assert pts.min() > 0 and pts.max() < 1
    wider = np.array(dlib_template(0.4).points)  # more padding: a smaller face in the chip
    assert np.ptp(wider[:, 0]) < np.ptp(pts[:, 0])


def _dots(size: int, points: np.ndarray, radius: float) -> Image.Image:
    """A black image with a bright disc around each point."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    lit = np.zeros((size, size), bool)
    for x, y in points:
        lit |= (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
    return Image.fromarray(np.repeat(lit[..., None] * np.uint8(255), 3, axis=2))


@pytest.mark.parametrize("face_scale", [0.5, 2.0, 6.0])  # a small face is enlarged, a large one shrunk
def test_align_face_puts_the_landmarks_on_the_template(face_scale: float) -> None:
    size = 64
    target = DLIB_TEMPLATE.at(size)
    angle = 0.25
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    marks = (target - size / 2) @ (face_scale * rot).T + 40 * face_scale + size
    img = _dots(int(marks.max() + 40 * face_scale), marks, radius=max(2.0, 1.5 * face_scale))
    chip = align_face(img, marks, size)
    assert chip.shape == (3, size, size) and chip.min() >= 0 and chip.max() <= 1
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    for x, y in target:  # each dot's centroid lands within half a pixel of its template position
        near = ((xx - x) ** 2 + (yy - y) ** 2 < 16).float() * chip[0]
        assert near.sum() > 1, (x, y)
        cx, cy = float((near * xx).sum() / near.sum()), float((near * yy).sum() / near.sum())
        assert abs(cx - x) < 0.5 and abs(cy - y) < 0.5, ((cx, cy), (x, y))


def test_the_fallback_places_a_centred_face() -> None:
    marks = centred_landmarks((10, 20, 138, 148))
    np.testing.assert_allclose(marks, CENTRED_FACE.at(128) + [10, 20])


def test_aligner_counts_fallbacks_and_skips_bad_files(tmp_path) -> None:
    good = tmp_path / "face.png"
    synthetic_face((40, 40), 0).save(good)  # too small to search: the fallback aligns it
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    aligned = FaceAligner(32)([good, bad])
    assert isinstance(aligned.chips[0], torch.Tensor) and aligned.chips[0].dtype == torch.uint8
    assert aligned.chips[0].shape == (3, 32, 32) and aligned.chips[1].path == bad
    report = aligned.report()
    assert report["fallback_centre_crop"] == 1 and report["aligned_by_landmarks"] == 0
