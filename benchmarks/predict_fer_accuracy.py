"""Expression accuracy of `srfer predict` itself on small faces: FER2013 validation faces
shrunk to N px (the sweep's antialiased bicubic, 8-bit PNG) and given to the Predictor as face crops
(`--no-detect`), with the tiny-face path (FER SR + `--upscale`-trained classifier for faces
≤ `ROUTING.tiny_up_to`, `srfer.infer.routing`) on and off. This checks the routing `predict` does, end to
end, on the shipped weights; `srfer eval-fer --sweep` measures the models themselves.

    python benchmarks/predict_fer_accuracy.py --data ../shared/data/fer2013 --sizes 16,20
    python benchmarks/predict_fer_accuracy.py --sizes 24,28 --tiny-up-to 64   # the path above its threshold

Not part of `make bench` (minutes per size on a CPU). Numbers are measured each run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import torch
from PIL import Image

from srfer.data.degradations import bicubic_resize
from srfer.data.fer import EMOTIONS, load_fer
from srfer.infer.options import PredictOptions
from srfer.infer.predict import Predictor
from srfer.infer.routing import ROUTING, Routing


def shrink_to_files(data: Path, split: str, size: int, folder: Path) -> tuple[list[Path], list[str]]:
    samples = load_fer(data, split)
    paths, labels = [], []
    small = bicubic_resize(samples.images.float() / 255, size).mul(255).round().to(torch.uint8)
    for i, (image, label) in enumerate(zip(small, samples.labels, strict=True)):
        path = folder / f"{i:05d}.png"
        Image.fromarray(image.squeeze(0).numpy(), mode="L").save(path)
        paths.append(path)
        labels.append(EMOTIONS[int(label)])
    return paths, labels


def accuracy(tiny: bool, paths: list[Path], labels: list[str], device: str, routing: Routing) -> float:
    options = PredictOptions(detect=False, tiny_expression=tiny, batch_size=64)
    predictor = Predictor(options, device, routing=routing)
    report = predictor.run(paths)
    said = {r.path: r.faces[0].expression for r in report.images}
    return sum(said.get(p) == y for p, y in zip(paths, labels, strict=True)) / len(paths)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--sizes", default="16,20")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny-up-to", type=int, default=None,
                        help=f"Route faces up to this many px to the tiny-face path (default: predict's "
                             f"{ROUTING.tiny_up_to}); to measure the path above the threshold.")  # fmt: skip
    args = parser.parse_args()
    routing = ROUTING if args.tiny_up_to is None else dataclasses.replace(ROUTING, tiny_up_to=args.tiny_up_to)
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            paths, labels = shrink_to_files(args.data, args.split, size, Path(tmp))
            row = {"face_px": size, "faces": len(paths)}
            for tiny in (False, True):
                key = "tiny_path" if tiny else "hr_classifier"
                row[key] = round(accuracy(tiny, paths, labels, args.device, routing), 4)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
