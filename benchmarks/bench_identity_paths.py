"""`make bench`: milliseconds per face of each way a small face reaches an identity embedding:
bicubic (the aligned chip resized to the embedder's crop), the ×4 pixel SR, the ×8 pixel SR,
and feature-level SR (bicubic, then the trunk's maps restored inside the recogniser), each
followed by the embedder; and the learned verification head's cost per pair. Batch 1 and 64, on
the CPU and on CUDA when present. Shipped weights (or the given files); numbers are measured
each run, never stored.

    python benchmarks/bench_identity_paths.py --size 16 [--feature-sr-weights F] [--json]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
from bench_sr import bench_devices, emit, timed

from srfer.core.weights import Weights
from srfer.data.degradations import bicubic_resize
from srfer.infer.heads import verify_logits
from srfer.infer.load import load_embedder, load_feature_sr, load_generator, load_verify_head
from srfer.infer.run import super_resolve


def paths(device: torch.device, feature_sr: Path | None) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Each way from an LR chip batch (N, 3, s, s) in [0, 1] to embeddings."""
    embedder = load_embedder(None, device)
    crop = embedder.contract["crop_size"]
    x4 = load_generator(None, device, Weights.SR)
    x8 = load_generator(None, device, Weights.SR_X8)

    def through(sr):
        def run(lr: torch.Tensor) -> torch.Tensor:
            small = bicubic_resize(lr, crop // sr.config.scale)
            return embedder(bicubic_resize(super_resolve(sr, small), crop))

        return run

    ways = {
        "bicubic": lambda lr: embedder(bicubic_resize(lr, crop)),
        "sr_x4": through(x4),
        "sr_x8": through(x8),
    }
    # the shipped feature SR where it was made for this embedder, unless a file is named
    whole = load_feature_sr(embedder, feature_sr, device, explicit=feature_sr is not None)
    if whole is not None:
        ways["feature_sr"] = lambda lr: whole(bicubic_resize(lr, crop))
    return ways


def measure(device: torch.device, size: int, feature_sr: Path | None) -> dict[str, dict[str, float]]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    report = {}
    for name, way in paths(device, feature_sr).items():
        row = {}
        for batch in (1, 64):
            lr = torch.rand(batch, 3, size, size, device=device)

            def infer(lr=lr, way=way):
                with torch.no_grad():
                    way(lr)

            row[f"ms_per_face_batch{batch}"] = 1000 * timed(infer, 3, sync) / batch
        report[f"{device} {size}px {name}"] = row
    head = load_verify_head(load_embedder(None, device), device, how="auto")
    if head is not None:
        a = torch.nn.functional.normalize(torch.randn(64, 128, device=device), dim=1)
        px = torch.full((64,), float(size), device=device)
        seconds = timed(lambda: verify_logits(head, a, a.flip(0), px, px), 10, sync)
        report[f"{device} verification head"] = {"ms_per_pair_batch64": 1000 * seconds / 64}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16, help="The probe size in px.")
    parser.add_argument(
        "--feature-sr-weights", type=Path, default=None, help="A feature SR file (default: the shipped one)."
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, dict[str, float]] = {}
    for device in bench_devices():
        report |= measure(device, args.size, args.feature_sr_weights)
    emit(report, args.json, width=34, digits=3)


if __name__ == "__main__":
    main()
