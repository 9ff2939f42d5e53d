"""Five-point face alignment: MTCNN's landmarks → a similarity warp onto a face template.

The template is dlib's 150 px face chip (`get_face_chip_details(shape, 150, 0.25)`, the
input dlib's ResNet-29 recogniser was trained on), expressed in MTCNN's five points: the
eye centres, the nose tip and the mouth corners of dlib's mean face shape (dlib's
`mean_face_shape_x/y`, points 36–41, 42–47, 30, 48 and 54 of the 68-point scheme), with
padding p mapped as (p + m) / (1 + 2p). The padding was chosen by measurement on CelebA
val pairs (docs/weights-history.md, "Alignment").

Faces with no landmarks (a pre-cropped face MTCNN finds nothing in, or one too small to
search) fall back to `CENTRED_FACE`: the mean MTCNN landmarks of srfer's usual crops (CelebA's
centre 128 px crop, the SR models' training faces), so a centred face crop is warped the
same way on average. Callers count and report the fallbacks.

Why hand-rolled: the similarity fit is Umeyama's closed form (a dozen lines of numpy) and
the warp is PIL's affine transform; neither torchvision nor facenet-pytorch offers a
landmark-to-template warp, and scikit-image would be a dependency for one function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from srfer.core.imageio import pil_to_tensor

# dlib's mean face shape (68-point scheme, coordinates in [0, 1] of the face's box): the
# points MTCNN's five landmarks correspond to.
_DLIB_LEFT_EYE = [(0.121737, 0.216423), (0.187122, 0.178758), (0.265825, 0.179852),
                  (0.334606, 0.231733), (0.260918, 0.245099), (0.182743, 0.244077)]  # fmt: skip
_DLIB_RIGHT_EYE = [(0.645647, 0.231733), (0.714428, 0.179852), (0.793132, 0.178758),
                   (0.858516, 0.216423), (0.79751, 0.244077), (0.719335, 0.245099)]  # fmt: skip
_DLIB_NOSE_TIP = (0.490127, 0.515625)
_DLIB_MOUTH = [(0.254149, 0.780233), (0.726104, 0.780233)]


@dataclass(frozen=True)
class FaceTemplate:
    """Where the five landmarks (left eye, right eye, nose, left and right mouth corner, as
    seen in the image) land in a chip, as fractions of its side."""

    name: str
    points: tuple[tuple[float, float], ...]

    def at(self, size: int) -> np.ndarray:
        return np.asarray(self.points, dtype=np.float64) * size

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "points": [[round(x, 6), round(y, 6)] for x, y in self.points],
            "order": "left eye, right eye, nose tip, mouth left, mouth right (image left/right)",
        }


def dlib_template(padding: float = 0.25) -> FaceTemplate:
    """dlib's face chip for `padding` (0.25: the recogniser's training chips)."""
    mean = [
        tuple(np.mean(_DLIB_LEFT_EYE, axis=0)),
        tuple(np.mean(_DLIB_RIGHT_EYE, axis=0)),
        _DLIB_NOSE_TIP,
        *_DLIB_MOUTH,
    ]
    points = tuple(((padding + x) / (1 + 2 * padding), (padding + y) / (1 + 2 * padding)) for x, y in mean)
    return FaceTemplate(f"dlib-chip-padding-{padding:g}", tuple((float(x), float(y)) for x, y in points))


DLIB_TEMPLATE = dlib_template(0.25)

# Mean MTCNN landmarks in CelebA's centre 128×128 crop (fractions of its side), measured on
# 1,995 of 2,000 CelebA train images (every 6th of partition 0; docs/weights-history.md,
# "Alignment"): the fallback for a face crop without landmarks.
CENTRED_FACE = FaceTemplate(
    "celeba-centre-crop-mean-mtcnn",
    ((0.3534, 0.5239), (0.6558, 0.5238), (0.5043, 0.7106), (0.3681, 0.8489), (0.6393, 0.8482)),
)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (scale, rotation, shift; no reflection) that best maps `src`
    points onto `dst` in least squares (Umeyama, 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    var = (s**2).sum() / len(src)
    scale = (sigma * np.diag(sign)).sum() / var if var > 0 else 1.0
    shift = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, shift[:, None]])


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine map, as a 2×3 map."""
    return np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]


def warp(img: Image.Image, matrix: np.ndarray, size: int) -> Image.Image:
    """`img` through the 2×3 map image → chip, as a size×size chip (black outside the image).

    A face much larger than the chip is first shrunk with an antialiasing resize (an affine
    warp alone samples, and aliases, when it shrinks), so the warp itself stays near 1:1."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.9:
        # the chip's footprint in the image, with a margin, resized by `scale`
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
        inv = _inverse(matrix)
        foot = corners @ inv[:, :2].T + inv[:, 2]
        left, top = np.floor(foot.min(0)).astype(int) - 2
        right, bottom = np.ceil(foot.max(0)).astype(int) + 2
        region = img.crop((left, top, right, bottom))
        out_w, out_h = max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale))
        img = region.resize((out_w, out_h), resample=Image.Resampling.BICUBIC, reducing_gap=None)
        fx, fy = out_w / (right - left), out_h / (bottom - top)
        # chip = M · (crop pixel / f + offset)
        pre = np.array([[1 / fx, 0, left], [0, 1 / fy, top], [0, 0, 1]])
        matrix = matrix @ pre
    inverse = _inverse(matrix)  # PIL maps output → input
    return img.transform(
        (size, size), Image.Transform.AFFINE, tuple(inverse.reshape(-1)), resample=Image.Resampling.BILINEAR
    )


def align_face(
    img: Image.Image, landmarks: np.ndarray, size: int, template: FaceTemplate = DLIB_TEMPLATE
) -> torch.Tensor:
    """The face with these five landmarks (image pixels) as an aligned (3, size, size) RGB
    tensor in [0, 1]."""
    matrix = similarity(np.asarray(landmarks, np.float64).reshape(5, 2), template.at(size))
    return pil_to_tensor(warp(img.convert("RGB"), matrix, size))


def centred_landmarks(crop: tuple[int, int, int, int]) -> np.ndarray:
    """Fallback landmarks for a square face crop (left, top, right, bottom) framed like srfer's
    training crops: `CENTRED_FACE` scaled into it."""
    left, top, right, _ = crop
    return CENTRED_FACE.at(right - left) + np.array([left, top], np.float64)


def template_from_json(spec: dict | None) -> FaceTemplate | None:
    """The template a checkpoint's input contract names (None: centre-cropped faces)."""
    if not spec:
        return None
    return FaceTemplate(spec["name"], tuple((float(x), float(y)) for x, y in spec["points"]))


def _central_face(faces: list, width: int, height: int):
    """The detection nearest the image centre (datasets hold one centred subject per image)."""
    with_marks = [f for f in faces if f.landmarks is not None]
    if not with_marks:
        return None
    cx, cy = width / 2, height / 2
    return min(
        with_marks,
        key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2,
    )


@dataclass
class AlignedFaces:
    """What `FaceAligner` made of a list of files: a uint8 chip or a `Skipped` per file, and
    the files aligned with the fallback landmarks (no face found)."""

    chips: list
    fallbacks: list

    def report(self) -> dict:
        aligned = sum(1 for c in self.chips if isinstance(c, torch.Tensor))
        return {
            "aligned_by_landmarks": aligned - len(self.fallbacks),
            "fallback_centre_crop": len(self.fallbacks),
            "fallback_examples": [str(p) for p in self.fallbacks[:5]],
        }


class FaceAligner:
    """Face image files → chips aligned onto `template`: MTCNN's landmarks of the face nearest
    the image centre, or, where MTCNN finds none (tiny or pre-cropped faces), the fallback
    landmarks of the image's centre square (`centred_landmarks`), counted in `fallbacks`."""

    def __init__(
        self, size: int, template: FaceTemplate = DLIB_TEMPLATE, batch_size: int = 64,
        device: torch.device | None = None,
    ) -> None:  # fmt: skip
        from srfer.faces.detect import FaceDetector

        self.size, self.template, self.batch_size = size, template, batch_size
        self.detector = FaceDetector(device or torch.device("cpu"))

    def __call__(self, paths: list) -> AlignedFaces:
        from srfer.core.errors import SrferError
        from srfer.core.imageio import Skipped, load_face

        chips: list = []
        fallbacks: list = []
        for start in range(0, len(paths), self.batch_size):
            batch = paths[start : start + self.batch_size]
            images: list = []
            for path in batch:
                try:
                    images.append(load_face(path, "RGB"))
                except SrferError as exc:
                    images.append(Skipped(path, str(exc)))
            found = iter(self.landmarks([img for img in images if not isinstance(img, Skipped)]))
            for path, img in zip(batch, images, strict=True):
                if isinstance(img, Skipped):
                    chips.append(img)
                    continue
                marks, fell_back = next(found)
                if fell_back:
                    fallbacks.append(path)
                chip = align_face(img, marks, self.size, self.template)
                chips.append(chip.mul(255).round().to(torch.uint8))
        return AlignedFaces(chips, fallbacks)

    def landmarks(self, images: list) -> list[tuple[np.ndarray, bool]]:
        """Each PIL image's five points: its central face's, or (True) the fallback's."""
        from srfer.faces.detect import whole_image_face

        out = []
        for img, faces in zip(images, self.detector.detect(images) if images else [], strict=True):
            face = _central_face(faces, *img.size)
            if face is None:
                out.append((centred_landmarks(whole_image_face(img).crop), True))
            else:
                out.append((face.landmarks, False))
        return out

    def chips_and_report(self, paths: list) -> tuple[list, dict]:
        """`self(paths)`'s chips and its report (template named); fallbacks counted in one warning."""
        from srfer.core.console import warn

        aligned = self(paths)
        if aligned.fallbacks:
            warn(f"{len(aligned.fallbacks)} face(s) without landmarks aligned by the centre-crop fallback")
        return aligned.chips, {"template": self.template.name, **aligned.report()}
