"""Reading and writing images safely: every failure becomes a one-line `SrferError`.

Handles EXIF orientation, RGBA/palette/16-bit/grayscale inputs and refuses decompression
bombs (PIL's own pixel limit) instead of allocating gigabytes.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from srfer.core.errors import SrferError, TooLarge, writing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"}
# PIL's default limit (~89.5 Mpx, a 9459×9459 image); above it we refuse rather than warn.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
MIN_FACE_SIDE = 8  # px; below this there is no face left to super-resolve or recognise
SKIPS_SHOWN = 5  # skip reports name this many files, then count the rest


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float images are rescaled to 8 bits rather than clipped (PIL clips)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I") and arr.max() > 255 else max(arr.max(), 1.0)
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8), "L")
    return img


ImageSource = str | Path | bytes | Image.Image | np.ndarray  # a file, its bytes, a PIL image, an RGB array


def source_label(source: ImageSource) -> str:
    """How messages and answers name an image: its path, or what it is in memory."""
    if isinstance(source, Image.Image):
        return f"<{source.width}×{source.height} PIL image>"
    if isinstance(source, np.ndarray):
        return f"<{'×'.join(map(str, source.shape))} array>"
    if isinstance(source, bytes):
        return f"<{len(source):,} bytes>"
    return str(source)


def load_image(source: ImageSource, mode: str = "RGB") -> Image.Image:
    """Decode an image fully into a PIL image in `mode` ("RGB" or "L"): a file (`path`), a PIL
    image, or an RGB (H, W, 3) / gray (H, W) uint8 array. Every failure is one `SrferError`."""
    if isinstance(source, bytes):
        return decode_bytes(source, source_label(source), mode)
    if isinstance(source, Image.Image):
        _check_pixels(source_label(source), source.width, source.height)
        return _normalised(source, mode)
    if isinstance(source, np.ndarray):
        return _normalised(_from_array(source), mode)
    if not isinstance(source, str | Path):
        kind = type(source).__name__
        raise SrferError(f"{kind}: give an image as a path, a PIL image or an RGB uint8 array")
    path = Path(source)
    if not path.exists():
        raise SrferError(f"{path}: no such file")
    if path.is_dir():
        raise SrferError(f"{path}: is a folder, expected an image file")
    return _decode(path, str(path), mode)


def decode_bytes(data: bytes, label: str, mode: str = "RGB") -> Image.Image:
    """`load_image` for an encoded image in memory (an upload); `label` names it in messages."""
    return _decode(io.BytesIO(data), label, mode)


def _decode(file: Path | io.BytesIO, label: str, mode: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                _check_pixels(label, img.width, img.height)
                img.load()
                return _normalised(ImageOps.exif_transpose(img), mode)
    except SrferError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(f"{label}: image too large ({exc})") from None
    except UnidentifiedImageError:
        raise SrferError(f"{label}: not an image file (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise SrferError(f"{label}: corrupt or truncated image ({exc})") from None


def _check_pixels(label: str, width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise TooLarge(
            f"{label}: {width}×{height} px is over the {MAX_IMAGE_PIXELS:,} px limit "
            "(decompression-bomb guard)"
        )


def _normalised(img: Image.Image, mode: str) -> Image.Image:
    """8-bit, transparency flattened on white (not black), in `mode`."""
    img = _to_8bit(img)
    if img.mode in ("P", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert(mode)


def _from_array(array: np.ndarray) -> Image.Image:
    label = source_label(array)
    if array.dtype != np.uint8:
        raise SrferError(f"{label}: an image array must be uint8 (0–255), not {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise SrferError(f"{label}: an image array must be (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) gray")
    _check_pixels(label, array.shape[1], array.shape[0])
    mode = "L" if array.ndim == 2 else "RGB" if array.shape[2] == 3 else "RGBA"
    return Image.fromarray(np.ascontiguousarray(array), mode)


def admit_face(path: str | Path, width: int, height: int) -> None:
    """The one admission rule for face images, whoever reads them (training, evaluation,
    predict, upscale): at least MIN_FACE_SIDE px per side."""
    if min(width, height) < MIN_FACE_SIDE:
        raise SrferError(
            f"{path}: {width}×{height} px is too small for a face (at least {MIN_FACE_SIDE} px per side)"
        )


def load_face(source: ImageSource, mode: str = "RGB") -> Image.Image:
    """`load_image` for face data: decoded, then admitted by `admit_face`."""
    img = load_image(source, mode)
    admit_face(source_label(source), *img.size)
    return img


@dataclass
class Skipped:
    """A file that was left out, and why (the reason names the file)."""

    path: Path
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


def skip_summary(skipped: list[Skipped], what: str = "file(s)") -> str:
    """'skipped 3 file(s): a.png: …; b.png: …; c.png: …' (the first SKIPS_SHOWN, then a count)."""
    shown = "; ".join(s.reason for s in skipped[:SKIPS_SHOWN])
    more = f"; and {len(skipped) - SKIPS_SHOWN} more" if len(skipped) > SKIPS_SHOWN else ""
    return f"skipped {len(skipped)} {what}: {shown}{more}"


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image → float tensor (C, H, W) in [0, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """Float tensor (C, H, W) in [0, 1] → 8-bit PIL image (L or RGB)."""
    arr = x.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


def save_image_atomic(img: Image.Image, path: str | Path) -> None:
    """Write via a temporary file + rename so an interrupted run never leaves half a PNG.

    PNGs use zlib level 1, not Pillow's 6: a few times faster for slightly larger files
    (`upscale` writes one per face; docs/performance.md)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    file_format = path.suffix.lstrip(".").upper().replace("JPG", "JPEG") or "PNG"
    with writing(path, partial=tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp, format=file_format, **({"compress_level": 1} if file_format == "PNG" else {}))
        os.replace(tmp, path)


def make_folder(path: str | Path) -> Path:
    """An output folder, created up front so that an unwritable place fails before the work."""
    path = Path(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def unique_output(out_dir: Path, stem: str, taken: set[str]) -> Path:
    """OUT/<stem>.png, or OUT/<stem>-1.png, … when another input of the same run had the same stem."""
    name, n = f"{stem}.png", 0
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return out_dir / name


def refuse_overwriting(targets: list[Path]) -> None:
    """Files an earlier run left where this run would write are kept: the run is refused before
    any work (commands offer --overwrite)."""
    existing = [t for t in targets if t.exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise SrferError(
            f"{existing[0]}{more} already exist(s) from an earlier run: pass --overwrite to replace them, "
            "or choose another --out"
        )


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files, folders (recursive) and glob patterns → sorted unique image paths.

    A named file is kept whatever its suffix, and so is a named file that does not exist: like
    a corrupt one, it is reported and skipped when read, and the rest still run. Folder and
    glob members are filtered by image suffix.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            found += [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            found.append(path)  # missing: `load_image` says so, and the rest still run
    unique = list(dict.fromkeys(found))
    if not unique:
        raise SrferError(f"no images found in {', '.join(map(str, inputs))}")
    return unique
