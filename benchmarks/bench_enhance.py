"""`srfer enhance` against plain bicubic on photos whose faces are small because they were made
small: each photo is downscaled ×scale (antialiased bicubic, 8-bit), enhanced back to its own
size, and compared with the original — PSNR/SSIM inside the face boxes MTCNN finds on the
original, and over the whole photo — beside the bicubic upscale of the same small photo.

    python benchmarks/bench_enhance.py --folder ../shared/data/samples/wild
    python benchmarks/bench_enhance.py --celeba ../shared/data/celeba --celeba-n 100
    python benchmarks/bench_enhance.py --folder ../shared/data/samples/wild --figure docs/enhance.png

Prints one JSON object per photo set; numbers are measured each run, never stored.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from srfer.core.imageio import expand_inputs, load_image, pil_to_tensor, tensor_to_pil
from srfer.data.degradations import bicubic_resize, quantize_8bit
from srfer.data.faces import discover_faces
from srfer.eval.metrics import psnr_per_image, ssim_per_image
from srfer.faces.detect import FaceDetector
from srfer.infer.enhance import Enhancer

SSIM_MIN_SIDE = 11  # SSIM's window


def shrink(photo: torch.Tensor, scale: int) -> torch.Tensor:
    """The photo cut to a multiple of `scale` and downscaled by it, 8-bit."""
    h, w = (photo.shape[1] // scale) * scale, (photo.shape[2] // scale) * scale
    return quantize_8bit(bicubic_resize(photo[:, :h, :w], (h // scale, w // scale)))


def box_scores(out: torch.Tensor, ref: torch.Tensor, boxes: list) -> list[tuple[float, float | None]]:
    rows = []
    for x1, y1, x2, y2 in boxes:
        left, top = max(int(x1), 0), max(int(y1), 0)
        right, bottom = min(round(x2), ref.shape[2]), min(round(y2), ref.shape[1])
        if right - left < 2 or bottom - top < 2:
            continue
        a, z = out[None, :, top:bottom, left:right], ref[None, :, top:bottom, left:right]
        ssim = float(ssim_per_image(a, z)) if min(right - left, bottom - top) >= SSIM_MIN_SIDE else None
        rows.append((float(psnr_per_image(a, z)), ssim))
    return rows


FIGURE_SIDE = 192  # px a picture of the figure is drawn at
FIGURE_ROWS = 3


def figure_row(small: torch.Tensor, outputs: dict[str, torch.Tensor], ref: torch.Tensor, box) -> list:
    """The area around a face: the small photo (nearest), bicubic, enhance, the original."""
    x1, y1, x2, y2 = box
    half = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    right, bottom = min(ref.shape[2], round(cx + half)), min(ref.shape[1], round(cy + half))
    scale = ref.shape[1] // small.shape[1]
    nearest = torch.nn.functional.interpolate(small[None], scale_factor=scale, mode="nearest")[0]
    views = [nearest, outputs["bicubic"], outputs["enhance"], ref]
    return [bicubic_resize(v[:, top:bottom, left:right], FIGURE_SIDE) for v in views]


def measure(
    paths: list[Path], enhancer: Enhancer, detector: FaceDetector, scale: int, figure: list | None = None
) -> dict:
    faces: dict[str, list] = {"enhance": [], "bicubic": []}
    whole: dict[str, list] = {"enhance": [], "bicubic": []}
    seconds, restored, sizes = [], 0, []
    for path in paths:
        original = pil_to_tensor(load_image(path, "RGB"))
        small = shrink(original, scale)
        ref = original[:, : small.shape[1] * scale, : small.shape[2] * scale]
        boxes = [f.box for f in detector.detect([tensor_to_pil(ref)])[0]]
        start = time.perf_counter()
        result = enhancer.enhance(tensor_to_pil(small), str(path))
        seconds.append(time.perf_counter() - start)
        restored += len(result.faces)
        sizes += [f.face_px for f in result.faces]
        outputs = {"enhance": pil_to_tensor(result.image), "bicubic": bicubic_resize(small, ref.shape[1:])}
        if figure is not None and boxes:  # the picture shows the smallest faces
            x1, y1, x2, y2 = boxes[0]
            figure.append((max(x2 - x1, y2 - y1), figure_row(small, outputs, ref, boxes[0])))
        for name, out in outputs.items():
            faces[name] += box_scores(out, ref, boxes)
            whole[name].append(float(psnr_per_image(out[None], ref[None])))

    def mean(values) -> float | None:
        values = [v for v in values if v is not None]
        return round(statistics.fmean(values), 3) if values else None

    report = {"photos": len(paths), "faces_scored": len(faces["enhance"]), "faces_restored": restored,
              "small_face_px_median": statistics.median(sizes) if sizes else None,
              "seconds_per_photo": round(statistics.fmean(seconds), 3)}  # fmt: skip
    for name in ("enhance", "bicubic"):
        report[f"face_psnr_{name}"] = mean(p for p, _ in faces[name])
        report[f"face_ssim_{name}"] = mean(s for _, s in faces[name])
        report[f"photo_psnr_{name}"] = mean(whole[name])
    if report["face_psnr_enhance"] is not None:
        report["face_psnr_gain_db"] = round(report["face_psnr_enhance"] - report["face_psnr_bicubic"], 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, help="Photos (e.g. ../shared/data/samples/wild).")
    parser.add_argument("--celeba", type=Path, help="CelebA root: its val photos (178×218).")
    parser.add_argument("--celeba-n", type=int, default=100, help="How many CelebA val photos.")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--model", default="psnr")
    parser.add_argument(
        "--min-face", type=int, default=None, help="Smallest face searched (default: enhance's)."
    )
    parser.add_argument("--figure", type=Path, help="Also draw small | bicubic | enhance | original here.")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    extra = {"min_face": args.min_face} if args.min_face else {}
    enhancer = Enhancer(args.scale, args.model, args.device, **extra)
    detector = FaceDetector(enhancer.device)
    sets = {}
    if args.folder:
        sets[str(args.folder)] = expand_inputs([str(args.folder)])
    if args.celeba:
        paths = discover_faces(args.celeba, "val").paths
        sets[f"{args.celeba} val"] = paths[:: max(1, len(paths) // args.celeba_n)][: args.celeba_n]
    figure: list | None = [] if args.figure else None
    for name, paths in sets.items():
        row = {"set": name, "scale": args.scale, "model": args.model}
        print(json.dumps({**row, **measure(paths, enhancer, detector, args.scale, figure)}), flush=True)
    if args.figure and figure:
        from srfer.core.plots import plot_image_grid

        columns = [
            f"the photo ÷{args.scale}",
            f"bicubic ×{args.scale}",
            f"srfer enhance ×{args.scale}",
            "original",
        ]
        rows = [row for _, row in sorted(figure, key=lambda item: item[0])[:FIGURE_ROWS]]
        print(plot_image_grid(rows, columns, args.figure))


if __name__ == "__main__":
    main()
