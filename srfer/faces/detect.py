"""Face detection with MTCNN (Zhang et al., 2016: `srfer.faces.cascade` on `srfer.models.mtcnn`'s
networks, whose weights ship in the facenet-pytorch wheel) and square crops framed like
srfer's training faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from srfer.core.errors import SrferError
from srfer.faces.cascade import Cascade, CascadeConfig
from srfer.faces.framing import (
    DET_THRESHOLD,
    DETECT_MAX_SIDE,
    DIRECT_FACE_MAX_SIDE,
    FRAME_MARGIN,
    FRAME_SHIFT_UP,
    MIN_FACE,
    PNET_WINDOW,
    THUMBNAIL_CANVAS,
)


@dataclass
class Face:
    """A detected (or given) face: the MTCNN box in image pixels and the square crop used."""

    box: tuple[float, float, float, float]
    score: float | None  # detector confidence; None when the whole image was taken as the face
    crop: tuple[int, int, int, int]  # square (left, top, right, bottom), may extend past the image
    # MTCNN's five points (eyes, nose, mouth corners; 5×2 image pixels), None when not detected
    landmarks: np.ndarray | None = None

    @property
    def size_px(self) -> int:
        """The face's size in the source image: its box's longer side."""
        x1, y1, x2, y2 = self.box
        return max(1, round(max(x2 - x1, y2 - y1)))


def square_crop(
    box: tuple[float, float, float, float], margin: float = FRAME_MARGIN, shift_up: float = FRAME_SHIFT_UP
) -> tuple[int, int, int, int]:
    """A square around `box`: side (1 + margin) × its longer side, raised by shift_up × that side."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - shift_up * side
    half = max(1, round(side * (1 + margin) / 2))
    left, top = round(cx) - half, round(cy) - half
    return left, top, left + 2 * half, top + 2 * half


def whole_image_face(img: Image.Image) -> Face:
    """The whole image as one face (small crops, `--no-detect`), squared by centre crop."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    crop = (left, top, left + side, top + side)
    return Face(box=tuple(float(v) for v in crop), score=None, crop=crop)  # type: ignore[arg-type]


def cut_face(img: Image.Image, face: Face) -> Image.Image:
    """The face's square crop; parts outside the image are filled with edge-neutral grey."""
    return img.crop(face.crop) if _inside(img, face.crop) else _padded_crop(img, face.crop)


def _inside(img: Image.Image, crop: tuple[int, int, int, int]) -> bool:
    left, top, right, bottom = crop
    return left >= 0 and top >= 0 and right <= img.width and bottom <= img.height


def _padded_crop(img: Image.Image, crop: tuple[int, int, int, int]) -> Image.Image:
    left, top, right, bottom = crop
    canvas = Image.new(img.mode, (right - left, bottom - top), 128 if img.mode == "L" else (128, 128, 128))
    canvas.paste(img, (-left, -top))
    return canvas


class FaceDetector:
    """MTCNN over PIL RGB images → faces per image (largest first)."""

    def __init__(
        self, device: torch.device, min_face: int = MIN_FACE, threshold: float = DET_THRESHOLD,
        margin: float = FRAME_MARGIN, thumbnail_landmarks: bool = True,
    ) -> None:  # fmt: skip
        if not 0 < threshold < 1:
            raise SrferError(f"--det-threshold {threshold}: use a probability between 0 and 1")
        if min_face < PNET_WINDOW:
            raise SrferError(f"--min-face {min_face}: MTCNN cannot find faces under {PNET_WINDOW} px")
        self.margin = margin
        self.thumbnail_landmarks = thumbnail_landmarks  # off where nothing aligns by them
        # the last of the three stage thresholds decides what counts as a face
        self.cascade = Cascade(CascadeConfig(min_face, (0.6, 0.7, threshold)), device)

    def detect(self, images: list[Image.Image]) -> list[list[Face]]:
        """Faces of every image, boxes and crops in its own pixels; images at most
        DIRECT_FACE_MAX_SIDE px are one face each, with the landmarks MTCNN finds for it."""
        return [self._faces(img) for img in images]

    def _faces(self, img: Image.Image) -> list[Face]:
        if min(img.size) <= DIRECT_FACE_MAX_SIDE:
            face = whole_image_face(img)
            face.landmarks = self._thumbnail_landmarks(img) if self.thumbnail_landmarks else None
            return [face]
        searched = _no_bigger_than(img, DETECT_MAX_SIDE)
        rgb = searched if searched.mode == "RGB" else searched.convert("RGB")
        boxes, points = self.cascade.detect(np.asarray(rgb, dtype=np.uint8))
        scale = img.width / searched.width
        faces = []
        for row, marks in zip(boxes.astype(np.float64), points.astype(np.float64), strict=True):
            box = tuple(float(v) * scale for v in row[:4])
            faces.append(Face(box, float(row[4]), square_crop(box, self.margin), marks * scale))  # type: ignore[arg-type]
        return faces

    def _thumbnail_landmarks(self, img: Image.Image) -> np.ndarray | None:
        """The five points of the largest face found with its centre inside a thumbnail put in
        the middle of a gray square (THUMBNAIL_CANVAS × its longer side), in the thumbnail's
        pixels; None when there is none, or for a long strip (not a face's thumbnail). Its face
        is as small as the image, whatever `min_face` asks of faces in photos, so the search
        starts at P-Net's smallest window."""
        if max(img.size) > THUMBNAIL_CANVAS * DIRECT_FACE_MAX_SIDE:
            return None
        canvas, (dx, dy) = on_gray_square(img.convert("RGB"), THUMBNAIL_CANVAS * max(img.size))
        boxes, points = self.cascade.detect(np.asarray(canvas, dtype=np.uint8), min_face=PNET_WINDOW)
        centres = (boxes[:, :2] + boxes[:, 2:4]) / 2 - (dx, dy) if len(boxes) else np.empty((0, 2))
        inside = [i for i, (x, y) in enumerate(centres) if 0 <= x < img.width and 0 <= y < img.height]
        return points[inside[0]].astype(np.float64) - (dx, dy) if inside else None  # largest first


def on_gray_square(img: Image.Image, side: int) -> tuple[Image.Image, tuple[int, int]]:
    """`img` in the middle of a mid-gray square of `side` px (at least its own size), and where
    its top-left corner lies."""
    side = max(side, *img.size)
    offset = ((side - img.width) // 2, (side - img.height) // 2)
    canvas = Image.new(img.mode, (side, side), 128 if img.mode == "L" else (128, 128, 128))
    canvas.paste(img, offset)
    return canvas, offset


def _no_bigger_than(img: Image.Image, side: int) -> Image.Image:
    scale = side / max(img.size)
    return (
        img if scale >= 1 else img.resize((round(img.width * scale), round(img.height * scale)), resample=3)
    )
