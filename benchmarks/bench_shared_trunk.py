"""`make bench`: milliseconds per face of `predict`'s two recognisers run separately (the
embedder on the aligned 150 px chip, the expression classifier on the 48 px gray face, with and
without its flip TTA) and through one shared trunk (`srfer.models.multitask.SharedTrunk`: the
recogniser's first stages once, then its identity stages and the classifier's own). Batch 1 and
16, on the CPU and on CUDA when present, deployed as `predict` runs them; numbers are measured
each run, never stored.

    python benchmarks/bench_shared_trunk.py --classifier FILE [--json]

FILE: an expression classifier trained with `srfer train-fer --shared-stages N` against the
shipped embedder (its shared stages must be that embedder's, or it is refused).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
from bench_sr import print_rows, timed

from srfer.core.errors import SrferError
from srfer.infer.load import load_classifier, load_embedder
from srfer.models.multitask import SharedTrunk


def paths(
    device: torch.device, classifier: Path
) -> dict[str, Callable[[torch.Tensor, torch.Tensor], object]]:
    """Each way from a chip batch (N, 3, 150, 150) and its gray face (N, 1, 48, 48) to an
    embedding and expression logits."""
    embedder = load_embedder(None, device).network
    default = load_classifier(None, device).network  # the shipped one, with its flip TTA
    plain = getattr(default, "classifier", default)
    sharing = load_classifier(classifier, device).network
    try:
        shared = SharedTrunk(embedder, sharing)
    except ValueError as exc:
        raise SrferError(f"{classifier}: {exc}") from None

    def shared_flip(chip: torch.Tensor, _face: torch.Tensor) -> object:
        embedding, logits = shared(chip)
        return embedding, (logits.softmax(1) + sharing.from_maps(shared.prefix(chip.flip(-1))).softmax(1)) / 2

    return {
        "separate, flip TTA (predict)": lambda chip, face: (embedder(chip), default(face)),
        "separate, no flip": lambda chip, face: (embedder(chip), plain(face)),
        "shared trunk, flip TTA": shared_flip,
        "shared trunk, no flip": lambda chip, _face: shared(chip),
        "embedder alone": lambda chip, _face: embedder(chip),
    }


def measure(device: torch.device, classifier: Path) -> dict[str, dict[str, float]]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    report = {}
    for name, way in paths(device, classifier).items():
        row = {}
        for batch in (1, 16):
            chip = torch.rand(batch, 3, 150, 150, device=device)
            face = torch.rand(batch, 1, 48, 48, device=device)

            def infer(chip=chip, face=face, way=way):
                with torch.no_grad():
                    way(chip, face)

            row[f"ms_per_face_batch{batch}"] = 1000 * timed(infer, 5, sync) / batch
        report[f"{device} {name}"] = row
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", type=Path, required=True, help="A --shared-stages classifier file.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    try:
        report = {k: v for device in devices for k, v in measure(device, args.classifier).items()}
    except SrferError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_rows(report, width=44, digits=2)


if __name__ == "__main__":
    main()
