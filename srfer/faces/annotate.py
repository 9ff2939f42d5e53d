"""What `srfer predict --save-dir` writes: the photo with boxes and labels, and for each
super-resolved face a strip input crop | bicubic | SR (`upscale --compare` writes the same
strips), for looking rather than reading."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from srfer.core.imageio import save_image_atomic, tensor_to_pil
from srfer.data.degradations import bicubic_resize

BOX_COLOUR = (255, 196, 0)
TEXT_COLOUR = (0, 0, 0)


def face_label(face) -> str:
    """'happy 0.81 · alice d=0.42' (identity only when a gallery was asked)."""
    label = f"{face.expression} {face.confidence:.2f}"
    if face.identity is not None:
        label += f" · {face.identity}" + (f" d={face.distance:.2f}" if face.distance is not None else "")
    return label + (" · SR" if face.sr else "")


def comparison_strip(lr01: torch.Tensor, sr01: torch.Tensor) -> torch.Tensor:
    """input (nearest) | bicubic | SR, side by side at the SR size."""
    size = tuple(sr01.shape[-2:])
    nearest = torch.nn.functional.interpolate(lr01[None], size=size, mode="nearest")[0]
    gap = torch.ones(sr01.shape[0], size[0], 4)
    return torch.cat([nearest, gap, bicubic_resize(lr01, size), gap, sr01.cpu()], dim=2)


MIN_CANVAS = 512  # small inputs are drawn on an enlarged copy so labels stay readable


def annotate(img: Image.Image, faces: list) -> Image.Image:
    """A copy of `img` with each face's box and label; line and text scale with the image."""
    zoom = max(1, -(-MIN_CANVAS // max(img.size)))  # ceil: a 123 px photo is drawn at ×5
    out = img.convert("RGB").resize((img.width * zoom, img.height * zoom), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(out)
    line = max(1, round(max(out.size) / 400))
    font = ImageFont.load_default(size=max(10, round(max(out.size) / 45)))
    for face in faces:
        x1, y1, x2, y2 = (v * zoom for v in face.box)
        draw.rectangle((x1, y1, x2, y2), outline=BOX_COLOUR, width=line)
        text = f"{face.index}: {face_label(face)}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        height = bottom - top + 2 * line
        ty = y1 - height if y1 - height >= 0 else y2  # above the box, else below it
        draw.rectangle((x1, ty, x1 + right - left + 2 * line, ty + height), fill=BOX_COLOUR)
        draw.text((x1 + line, ty + line - top), text, fill=TEXT_COLOUR, font=font)
    return out


def strips(faces: list) -> dict[int, Image.Image]:
    """Face index → input | bicubic | SR, for every super-resolved face whose pixels were kept."""
    return {face.index: tensor_to_pil(comparison_strip(face.crop01, face.face01)) for face in faces
            if face.sr and face.crop01 is not None and face.face01 is not None}  # fmt: skip


def save_annotations(img: Image.Image, result, save_dir: Path, stem: str) -> list[Path]:
    """<stem>_annotated.png, and <stem>_face<i>_sr.png (input | bicubic | SR) per SR face."""
    written = [save_dir / f"{stem}_annotated.png"]
    save_image_atomic(annotate(img, result.faces), written[0])
    for index, strip in strips(result.faces).items():
        written.append(save_dir / f"{stem}_face{index}_sr.png")
        save_image_atomic(strip, written[-1])
    return written
