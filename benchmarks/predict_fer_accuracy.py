"""Expression accuracy of `srfer predict` itself on small faces: FER2013 validation faces
shrunk to N px (`--degradation`: the sweep's antialiased bicubic, or the realistic model; 8-bit
PNG) and given to the Predictor as face crops (`--no-detect`), with the tiny-face path (FER SR +
`--upscale`-trained classifier for faces ≤ `ROUTING.tiny_up_to`, for soft faces ≤
`ROUTING.soft_up_to`, beside the HR classifier for sharp faces ≤ `ROUTING.both_up_to`;
`srfer.infer.routing`) on and off. This checks the routing `predict` does, end to end, on the
shipped weights; `srfer eval-fer --sweep` measures the models themselves.

    python benchmarks/predict_fer_accuracy.py --data ../shared/data/fer2013 --sizes 16,20
    python benchmarks/predict_fer_accuracy.py --sizes 24,28 --tiny-up-to 64   # the path above its threshold
    python benchmarks/predict_fer_accuracy.py --sizes 32 --paths hr --x8-below 64 --degradation realistic

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

from srfer.data.degradations import CLEAN, Degradation, content_seeds, degradation
from srfer.data.fer import EMOTIONS, load_fer
from srfer.infer.options import PredictOptions, PredictWeights
from srfer.infer.predict import Predictor
from srfer.infer.routing import ROUTING, Routing


def shrink_to_files(
    data: Path, split: str, size: int, folder: Path, how: Degradation = CLEAN
) -> tuple[list[Path], list[str]]:
    samples = load_fer(data, split)
    paths, labels = [], []
    faces = samples.images.float() / 255
    small = how(faces, size, content_seeds(faces)).mul(255).round().to(torch.uint8)
    for i, (image, label) in enumerate(zip(small, samples.labels, strict=True)):
        path = folder / f"{i:05d}.png"
        Image.fromarray(image.squeeze(0).numpy(), mode="L").save(path)
        paths.append(path)
        labels.append(EMOTIONS[int(label)])
    return paths, labels


def add_routing_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that move `predict`'s routing thresholds (`srfer.infer.routing`), to measure them."""
    parser.add_argument("--tiny-up-to", type=int, default=None,
                        help=f"Route faces up to this many px to the tiny-face path (default: predict's "
                             f"{ROUTING.tiny_up_to}); to measure the path above the threshold.")  # fmt: skip
    below = ROUTING.x8_below.expression
    x8_help = f"Expression faces under this many px get the ×8 SR, others the ×4 (default: {below})."
    parser.add_argument("--x8-below", type=int, default=None, help=x8_help)
    parser.add_argument("--soft-detail-below", type=float, default=None,
                        help=f"Faces ≤ {ROUTING.soft_up_to} px with less detail take the tiny path "
                             f"(default: {ROUTING.soft_detail_below:g}; 0: by size only).")  # fmt: skip
    both_help = (
        f"Sharp faces above --tiny-up-to up to this get the mean of both classifiers (default: "
        f"{ROUTING.both_up_to}; as --tiny-up-to: the HR one alone)."
    )
    parser.add_argument("--both-up-to", type=int, default=None, help=both_help)


def routing_from(args: argparse.Namespace) -> Routing:
    routing = ROUTING
    if args.tiny_up_to is not None:
        routing = dataclasses.replace(routing, tiny_up_to=args.tiny_up_to)
    if args.soft_detail_below is not None:
        routing = dataclasses.replace(routing, soft_detail_below=args.soft_detail_below)
    if args.both_up_to is not None:
        routing = dataclasses.replace(routing, both_up_to=args.both_up_to)
    if args.x8_below is not None:
        x8_below = dataclasses.replace(routing.x8_below, expression=args.x8_below)
        routing = dataclasses.replace(routing, x8_below=x8_below)
    return routing


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """`predict`'s own weights options (--sr-weights, --embed-weights, …), to measure other files."""
    for field in dataclasses.fields(PredictWeights):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, type=Path, help=field.metadata["help"].replace("%", "%%"))


def weights_from(args: argparse.Namespace) -> PredictWeights:
    return PredictWeights(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PredictWeights)})


def accuracy(
    tiny: bool, paths: list[Path], labels: list[str], device: str, routing: Routing, weights: PredictWeights
) -> float:
    options = PredictOptions(detect=False, tiny_expression=tiny, batch_size=64)
    predictor = Predictor(options, device, weights, routing=routing)
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
    parser.add_argument("--degradation", default="clean", help="clean, realistic or mixed.")
    parser.add_argument("--paths", default="hr,tiny", help="hr (tiny path off), tiny (on), or both.")
    add_routing_arguments(parser)
    add_weights_arguments(parser)
    args = parser.parse_args()
    weights = weights_from(args)
    how = degradation(args.degradation)
    routing = routing_from(args)
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            paths, labels = shrink_to_files(args.data, args.split, size, Path(tmp), how)
            row = {"face_px": size, "faces": len(paths), "degradation": how.name}
            for tiny in [p == "tiny" for p in args.paths.split(",")]:
                key = "tiny_path" if tiny else "hr_classifier"
                row[key] = round(accuracy(tiny, paths, labels, args.device, routing, weights), 4)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
