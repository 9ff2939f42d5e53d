"""Real small faces: does `srfer predict` say the same of a face when its photo is small (and
re-saved as a low-quality JPEG) as it says on the full-resolution photo?

Each photo is answered at full size (expression, and an embedding per face); every full-size
face is enrolled as its own identity. Then the photo is downscaled so that its largest face is
`--face-px` px, optionally re-saved as JPEG at a quality drawn from `--jpeg` (seeded), and
answered again: a face agrees on expression when its top emotion is the full-size one, and on
identity when the gallery names its own full-size face. Faces are matched by their boxes.

    python benchmarks/predict_agreement.py --folder ../shared/data/samples/wild --face-px 24,16
    python benchmarks/predict_agreement.py --face-px 24,16 --jpeg 30,60

`--canvas N` pastes each small copy in the middle of an N×N gray canvas, so that photos which
would shrink to a thumbnail (≤ 48 px, answered as one face crop without landmarks) reach the
detector and its landmarks instead.

    python benchmarks/predict_agreement.py --folder CELEBA_VAL_PHOTOS --face-px 24,16 --canvas 128

Numbers are measured each run, never stored.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
from pathlib import Path

import torch
from PIL import Image
from predict_fer_accuracy import add_routing_arguments, add_weights_arguments, routing_from, weights_from
from torchvision.ops import box_iou

from srfer.core.imageio import expand_inputs, load_image
from srfer.faces.detect import on_gray_square
from srfer.faces.galleries import open_gallery
from srfer.infer.options import PredictOptions
from srfer.infer.predict import Predictor


def iou(a, b) -> float:
    return float(box_iou(torch.tensor([a], dtype=torch.float), torch.tensor([b], dtype=torch.float))[0, 0])


def small_copy(
    img: Image.Image, factor: float, jpeg: tuple[int, int] | None, rng: random.Random, canvas: int = 0
) -> tuple[Image.Image, tuple[int, int]]:
    """The photo shrunk by `factor` (in the middle of a `canvas`-px gray square when given),
    JPEG-compressed when `jpeg` says; and where its top-left corner lies."""
    size = (max(1, round(img.width / factor)), max(1, round(img.height / factor)))
    small = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
    offset = (0, 0)
    if canvas:
        small, offset = on_gray_square(small, canvas)
    if jpeg is None:
        return small, offset
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=rng.randint(*jpeg))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), offset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, default=Path("../shared/data/samples/wild"))
    parser.add_argument("--face-px", default="24,16", help="Size of each photo's largest face once shrunk.")
    parser.add_argument("--jpeg", default="", help="JPEG quality range, e.g. 30,60 (default: no JPEG).")
    add_routing_arguments(parser)
    add_weights_arguments(parser)
    parser.add_argument("--canvas", type=int, default=0, help="Paste small copies on an N px gray square.")
    parser.add_argument("--limit", type=int, default=0, help="The first N photos only (0: all).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    jpeg = tuple(int(q) for q in args.jpeg.split(",")) if args.jpeg else None
    weights, routing = weights_from(args), routing_from(args)
    paths = expand_inputs([str(args.folder)])
    photos = [(p, load_image(p, "RGB")) for p in paths[: args.limit or None]]
    with tempfile.TemporaryDirectory() as tmp:
        predictor = Predictor(PredictOptions(embeddings=True, batch_size=4), "cpu", weights, routing=routing)
        faces = {Path(r.path): r.faces for r in predictor.run([p for p, _ in photos]).images}
        gallery_path = Path(tmp) / "g.sqlite"
        with open_gallery(gallery_path, create=True) as gallery:
            for path, found in faces.items():
                for f in found:
                    name, vector = f"{path.name}#{f.index}", torch.tensor([f.embedding])
                    gallery.add(name, vector, [str(path)], predictor.embedder_id)
        options = PredictOptions(embeddings=False, min_face=12)
        named = Predictor(options, "cpu", weights, gallery_path, routing=routing)
        for face_px in (int(s) for s in args.face_px.split(",")):
            rng = random.Random(args.seed)
            counts = {"faces_full": 0, "found_small": 0, "expression_agrees": 0, "identity_agrees": 0}
            sizes = []
            for path, img in photos:
                full_faces = faces.get(path, [])
                if not full_faces:
                    continue
                factor = max(f.face_px for f in full_faces) / face_px
                small, (dx, dy) = small_copy(img, factor, jpeg, rng, args.canvas)
                (result,) = named.run([small]).images
                for f in full_faces:
                    counts["faces_full"] += 1
                    box = [v / factor + d for v, d in zip(f.box, (dx, dy, dx, dy), strict=True)]
                    match = max(result.faces, key=lambda s: iou(s.box, box), default=None)
                    if match is None or iou(match.box, box) < 0.3:
                        continue
                    counts["found_small"] += 1
                    sizes.append(match.face_px)
                    counts["expression_agrees"] += match.expression == f.expression
                    counts["identity_agrees"] += match.identity == f"{path.name}#{f.index}"
            found = max(1, counts["found_small"])
            row = {"face_px": face_px, "jpeg": args.jpeg or None, "canvas": args.canvas or None, **counts,
                   "median_small_face_px": sorted(sizes)[len(sizes) // 2] if sizes else None,
                   "expression_agreement": round(counts["expression_agrees"] / found, 3),
                   "identity_agreement": round(counts["identity_agrees"] / found, 3)}  # fmt: skip
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
