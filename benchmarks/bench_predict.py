"""`make bench`: `srfer predict` end to end on the shipped weights: latency per image with one
face (the astronaut photo, and its ~24 px downscaled copy that goes through SR) and faces/s
on a folder of photos, with the time split into load / detect / SR / expression / embed.

Runs on the CPU, and on CUDA when present. Numbers are measured each run, never stored.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from srfer.core.imageio import expand_inputs
from srfer.infer.predict import PredictOptions, Predictor

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(predictor: Predictor, paths: list[Path], repeats: int) -> dict[str, float]:
    predictor.run(paths[:1])  # warm-up
    for key in predictor.timings:
        predictor.timings[key] = 0.0
    start, faces = time.perf_counter(), 0
    for _ in range(repeats):
        faces += predictor.run(paths).faces
    seconds = time.perf_counter() - start
    split = {f"{k}_ms_per_image": 1000 * v / (repeats * len(paths)) for k, v in predictor.timings.items()}
    return {"ms_per_image": 1000 * seconds / (repeats * len(paths)), "faces_per_s": faces / seconds,
            "faces": faces / repeats, **split}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=Path("../shared/data/samples/wild"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report: dict[str, dict[str, float]] = {}
    for device in devices:
        predictor = Predictor(PredictOptions(embeddings=True), device)
        report[f"{device} astronaut.png (1 face, 512 px)"] = run(predictor, [EXAMPLES / "astronaut.png"], 5)
        small = [EXAMPLES / "astronaut_small.png"]
        report[f"{device} astronaut_small.png (~24 px face, SR)"] = run(predictor, small, 5)
        if args.folder.is_dir():
            report[f"{device} {args.folder} (folder)"] = run(predictor, expand_inputs([str(args.folder)]), 1)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, values in report.items():
        print(section)
        for key, value in values.items():
            print(f"    {key:<24} {value:10.1f}")


if __name__ == "__main__":
    main()
