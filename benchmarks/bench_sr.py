"""`make bench`: SR generator inference faces/s (batch 1 and 64), training images/s and the
data loader's images/s, on this machine's CPU and on CUDA when present.

Speed targets live here, not in timed tests. Numbers are measured each run, never stored.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from srfer.core.runtime import amp_dtype, autocast
from srfer.models import Generator, GeneratorConfig


def print_rows(report: dict[str, dict[str, float]], width: int = 42, digits: int = 1) -> None:
    """One line per measured value: section, key, value."""
    for section, values in report.items():
        for key, value in values.items():
            print(f"{section:<{width}} {key:<22} {value:10.{digits}f}")


def bench_devices() -> list[torch.device]:
    """Where a benchmark measures: the CPU, and CUDA when present."""
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def emit(report: dict[str, dict[str, float]], as_json: bool, width: int, digits: int) -> None:
    """The report as JSON (`--json`) or as `print_rows` lines."""
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_rows(report, width, digits)


def timed(fn, repeats: int, sync) -> float:
    """Best-of-`repeats` seconds for one call (after one warm-up call)."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def bench_device(device: torch.device, config: GeneratorConfig, lr_size: int) -> dict[str, float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = Generator(config).to(device).to(memory_format=torch.channels_last)
    dtype = amp_dtype(device)
    repeats = 3 if device.type == "cpu" else 20
    results = {}
    gen.eval()
    for batch in (1, 64):
        x = torch.rand(batch, config.channels, lr_size, lr_size, device=device) * 2 - 1
        x = x.contiguous(memory_format=torch.channels_last)

        def infer(x=x):
            with torch.no_grad(), autocast(device, dtype):
                gen(x)

        results[f"infer_faces_per_s_batch{batch}"] = batch / timed(
            infer, 3 if device.type == "cpu" else 20, sync
        )
    gen.train()
    opt = torch.optim.Adam(gen.parameters(), lr=1e-4)
    batch = 16 if device.type == "cpu" else 64
    lr = (torch.rand(batch, config.channels, lr_size, lr_size, device=device) * 2 - 1).contiguous(
        memory_format=torch.channels_last
    )
    hr = torch.rand(batch, config.channels, lr_size * config.scale, lr_size * config.scale, device=device)

    def step():
        with autocast(device, dtype):
            loss = torch.nn.functional.mse_loss(gen(lr).float(), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()

    results[f"train_images_per_s_batch{batch}"] = batch / timed(step, repeats, sync)
    return results


def bench_loader(data: Path, workers: int, images: int) -> dict[str, float]:
    """Images/s the SR data loader delivers (decode on the fly, no cache)."""
    from torch.utils.data import DataLoader

    from srfer.data.faces import SRPairDataset, collate_skipping_failures, discover_faces

    source = discover_faces(data, "train")
    source.paths = source.paths[:images]
    dataset = SRPairDataset(source, cache=False)
    loader = DataLoader(dataset, batch_size=32, num_workers=workers, collate_fn=collate_skipping_failures)
    start = time.perf_counter()
    n = sum(len(b["hr"]) for b in loader)
    return {f"loader_images_per_s_{workers}_workers": n / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/celeba"))
    parser.add_argument("--lr-size", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = GeneratorConfig()  # the shipped seed architecture: 16 blocks, 64 features, ×4
    report: dict[str, dict[str, float] | str] = {
        "model": f"SRResNet {config.blocks} blocks × {config.features} ch, {args.lr_size}→"
        f"{args.lr_size * config.scale} px",
        "torch_threads": str(torch.get_num_threads()),
    }
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        report[str(device)] = bench_device(device, config, args.lr_size)
    if args.data.is_dir():
        report["loader"] = {**bench_loader(args.data, 0, 256), **bench_loader(args.data, 2, 512)}
    else:
        report["loader"] = f"skipped: {args.data} not found"
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, values in report.items():
        if isinstance(values, dict):
            for key, value in values.items():
                print(f"{section:>7} {key:<34} {value:10.1f}")
        else:
            print(f"{section:>7} {values}")


if __name__ == "__main__":
    main()
