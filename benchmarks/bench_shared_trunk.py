"""`make bench`: milliseconds per face of `predict`'s two recognisers run separately (the
embedder on the aligned 150 px chip, the expression classifier on the 48 px gray face, with and
without its flip TTA) and through one shared trunk (`srfer.models.multitask.SharedTrunk`: the
recogniser's first stages once, then its identity stages and the classifier's own). Batch 1 and
16, on the CPU and on CUDA when present, deployed as `predict` runs them; numbers are measured
each run, never stored.

    python benchmarks/bench_shared_trunk.py [--shared-stages 2 | --classifier FILE] [--json]

FILE: an expression classifier trained with `srfer train-fer --shared-stages N` against the
shipped embedder (its shared stages must be that embedder's, or it is refused). Without one,
the branch is built untrained (time does not depend on the weights' values): no sharing
classifier ships, since none loses little enough accuracy (docs/results.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
from bench_sr import bench_devices, emit, timed

from srfer.accel.deploy import switch_to_cpu_deploy
from srfer.core.errors import SrferError
from srfer.infer.load import load_classifier, load_embedder
from srfer.models.dlib_resnet import INPUT_SIZE
from srfer.models.fer import FerConfig, build_fer
from srfer.models.multitask import SharedTrunk

Way = Callable[[torch.Tensor, torch.Tensor], object]


def sharing_classifier(device: torch.device, classifier: Path | None, stages: int) -> torch.nn.Module:
    """The trained file, or an untrained branch on the shipped embedder's first `stages` stages."""
    if classifier is not None:
        return load_classifier(classifier, device).network
    trained = load_embedder(None, device, deploy=False).network.backbone
    model = build_fer(FerConfig(arch="dlib-resnet29", trunk_size=INPUT_SIZE, shared_stages=stages))
    model.share_trunk_(trained)
    model = model.eval().to(device, memory_format=torch.channels_last)
    return switch_to_cpu_deploy(model) if device.type == "cpu" else model


def paths(device: torch.device, classifier: Path | None, stages: int) -> dict[str, Way]:
    """Each way from a chip batch (N, 3, 150, 150) and its gray face (N, 1, 48, 48) to an
    embedding and expression logits."""
    embedder = load_embedder(None, device).network
    default = load_classifier(None, device).network  # the shipped one, with its flip TTA
    plain = getattr(default, "classifier", default)
    sharing = sharing_classifier(device, classifier, stages)
    try:
        shared = SharedTrunk(embedder, sharing)
    except ValueError as exc:
        raise SrferError(f"{classifier or 'the untrained branch'}: {exc}") from None

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


def measure(device: torch.device, classifier: Path | None, stages: int) -> dict[str, dict[str, float]]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    report = {}
    for name, way in paths(device, classifier, stages).items():
        row = {}
        for batch in (1, 16):
            chip = torch.rand(batch, 3, INPUT_SIZE, INPUT_SIZE, device=device)
            face = torch.rand(batch, 1, 48, 48, device=device)

            def infer(chip=chip, face=face, way=way):
                with torch.no_grad():
                    way(chip, face)

            row[f"ms_per_face_batch{batch}"] = 1000 * timed(infer, 5, sync) / batch
        report[f"{device} {name}"] = row
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", type=Path, default=None, help="A --shared-stages classifier file.")
    parser.add_argument(
        "--shared-stages", type=int, default=2, help="Without --classifier: the branch point."
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, dict[str, float]] = {}
    try:
        for device in bench_devices():
            report |= measure(device, args.classifier, args.shared_stages)
    except SrferError as exc:
        raise SystemExit(f"error: {exc}") from None
    emit(report, args.json, width=44, digits=2)


if __name__ == "__main__":
    main()
