"""`srfer enhance`: a whole photo upscaled, its small faces super-resolved and pasted back.

The photo is upscaled ×`scale` (2 or 4) bicubically; every face MTCNN finds (from 12 px) is cut
as a square around its box with `MARGIN` of context, given to the face SR at its own pixels
(fully convolutional: a 20 px crop comes out at 80 px from the ×4), resized to the crop's size ×
`scale` where the model's factor differs, and pasted back where the crop lies in the upscaled
photo — the inverse of the crop, which is a translation and a scale — through a feathered mask
(`feather_mask`), so no seam shows. Everything else stays bicubic. docs/routing.md has the
measurements behind the choices (the ×4 for every face, the margin)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from srfer.core.errors import SrferError
from srfer.core.imageio import (
    MAX_IMAGE_PIXELS,
    ImageSource,
    load_image,
    make_folder,
    pil_to_tensor,
    refuse_overwriting,
    save_image_atomic,
    source_label,
    tensor_to_pil,
    unique_output,
)
from srfer.core.runtime import resolve_device
from srfer.core.weights import SR_MODELS
from srfer.data.degradations import bicubic_resize
from srfer.faces.detect import Face, FaceDetector, cut_face
from srfer.faces.framing import DET_THRESHOLD, PNET_WINDOW
from srfer.infer.load import load_generator
from srfer.infer.options import EnhanceOptions
from srfer.infer.run import super_resolve

SCALES = (2, 4)
MARGIN = 0.5  # crop = (1 + MARGIN) × the face box: the face and context around it
FEATHER = 0.125  # of the crop's side: the band over which a pasted face fades into the photo


@dataclass
class EnhancedFace:
    """One face of an enhanced photo: its box and crop in the input's pixels, its size, and the
    factor of the SR that restored it."""

    box: tuple[float, float, float, float]
    crop: tuple[int, int, int, int]
    face_px: int
    sr_scale: int
    restored: Image.Image | None = field(default=None, repr=False)  # the pasted face, at the output's scale

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 1) for v in self.box], "crop": list(self.crop), "face_px": self.face_px,
                "sr_scale": self.sr_scale}  # fmt: skip


@dataclass
class Enhancement:
    """An enhanced photo: `image` (the input × `scale`) and the faces found in it."""

    source: str
    size: tuple[int, int]
    scale: int
    image: Image.Image = field(repr=False)
    faces: list[EnhancedFace]

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.source, "size": list(self.size), "output_size": list(self.image.size),
                "scale": self.scale, "faces": [f.to_dict() for f in self.faces]}  # fmt: skip


def feather_mask(side: int, feather: float = FEATHER) -> torch.Tensor:
    """(side, side) weights: 1 inside, falling to 0 at the square's edges along a raised cosine
    over `feather` × side, so the pasted face blends into the photo without a seam."""
    band = max(1.0, feather * side)
    edge = torch.minimum(torch.arange(side), torch.arange(side).flip(0)).float() + 0.5
    ramp = 0.5 - 0.5 * torch.cos(math.pi * (edge / band).clamp(max=1.0))
    return ramp[:, None] * ramp[None, :]


class Enhancer:
    """The detector and the face SR, loaded once; `enhance(image)` per photo. `model`: a shipped
    SR (`SR_MODELS`: psnr, gan, identity, x8, robust) unless `weights` names a file."""

    def __init__(
        self, scale: int = 4, model: str = "psnr", device: str = "auto", runtime: str = "torch",
        weights: Path | None = None, min_face: int = PNET_WINDOW, det_threshold: float = DET_THRESHOLD,
        margin: float = MARGIN,
    ) -> None:  # fmt: skip
        if scale not in SCALES:
            raise SrferError(f"--scale {scale}: use {' or '.join(map(str, SCALES))}")
        if model not in SR_MODELS:
            raise SrferError(f"--model {model!r}: use one of {', '.join(SR_MODELS)}")
        self.scale, self.device = scale, resolve_device(device)
        role = SR_MODELS[model]
        self.sr = load_generator(role.resolve(weights), self.device, role, runtime)
        if self.sr.config.channels != 3:
            raise SrferError(f"{self.sr.source}: enhance needs an RGB face SR")
        self.detector = FaceDetector(self.device, min_face, det_threshold, margin, thumbnail_landmarks=False)

    def enhance(self, source: ImageSource, label: str | None = None) -> Enhancement:
        """`source` × `scale`, its faces super-resolved; `label` names it in messages and answers."""
        label = label or source_label(source)
        img = load_image(source, "RGB")
        width, height = img.size
        out_w, out_h = width * self.scale, height * self.scale
        if out_w * out_h > MAX_IMAGE_PIXELS:
            raise SrferError(
                f"{label}: ×{self.scale} makes {out_w}×{out_h} px, over the {MAX_IMAGE_PIXELS:,} px limit; "
                "use a smaller --scale or photo"
            )
        canvas = bicubic_resize(pil_to_tensor(img), (out_h, out_w))
        faces = [self._paste(canvas, img, face) for face in self.detector.detect([img])[0]]
        return Enhancement(label, img.size, self.scale, tensor_to_pil(canvas), faces)

    @torch.no_grad()
    def _paste(self, canvas: torch.Tensor, img: Image.Image, face: Face) -> EnhancedFace:
        crop = pil_to_tensor(cut_face(img, face))
        side = crop.shape[-1] * self.scale
        restored = super_resolve(self.sr, crop[None])[0].cpu()
        if restored.shape[-1] != side:
            restored = bicubic_resize(restored, side)
        _blend(canvas, restored, [v * self.scale for v in face.crop])
        return EnhancedFace(face.box, face.crop, face.size_px, self.sr.config.scale, tensor_to_pil(restored))


def _blend(canvas: torch.Tensor, face: torch.Tensor, where: list[int]) -> None:
    """`face` (3, S, S) onto `canvas` (3, H, W) at the square `where` (left, top, right, bottom,
    which may reach past the canvas), through the feathered mask; in place."""
    left, top, right, bottom = where
    mask = feather_mask(right - left)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(right, canvas.shape[2]), min(bottom, canvas.shape[1])
    if x0 >= x1 or y0 >= y1:
        return
    patch = face[:, y0 - top : y1 - top, x0 - left : x1 - left]
    weight = mask[y0 - top : y1 - top, x0 - left : x1 - left]
    region = canvas[:, y0:y1, x0:x1]
    canvas[:, y0:y1, x0:x1] = weight * patch + (1 - weight) * region


@dataclass
class EnhanceReport:
    done: list[tuple[Enhancement, Path]] = field(default_factory=list)  # each photo and where it went
    failed: list[tuple[Path, str]] = field(default_factory=list)


def enhance_files(
    paths: list[Path], out_dir: Path, options: EnhanceOptions | None = None, device: str = "auto",
    progress=None,
) -> EnhanceReport:  # fmt: skip
    """Every photo into `out_dir` as <stem>.png (clashes within a run renamed; an earlier run's
    files kept unless `options.overwrite`), with `save_faces` its faces as <stem>_face<i>.png;
    bad files are reported in `failed` and skipped."""
    options = options or EnhanceOptions()
    enhancer = Enhancer(options.scale, options.model, device, options.runtime, options.weights,
                        options.min_face, options.det_threshold)  # fmt: skip
    make_folder(out_dir)
    taken: set[str] = set()
    jobs = [(path, unique_output(out_dir, path.stem, taken)) for path in paths]
    if not options.overwrite:
        targets = [target for _, target in jobs]
        faces = (
            [f for t in targets for f in t.parent.glob(f"{t.stem}_face*.png")] if options.save_faces else []
        )
        refuse_overwriting(targets + faces)
    report = EnhanceReport()
    for path, target in jobs:
        try:
            result = enhancer.enhance(path, str(path))
        except SrferError as exc:
            report.failed.append((path, str(exc)))
        else:
            save_image_atomic(result.image, target)
            if options.save_faces:
                for i, face in enumerate(result.faces):
                    if face.restored is not None:
                        save_image_atomic(face.restored, target.with_name(f"{target.stem}_face{i}.png"))
            report.done.append((result, target))
        if progress is not None:
            progress(1)
    return report
