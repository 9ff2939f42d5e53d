"""`make bench`: CPU speed of `predict` on a folder of photos and of `upscale` on face crops,
as ratios against the plain path (one process, torch) measured in the same run, with the
answers compared so that a speed-up never hides a change of result.

Paths compared (all fp32):
- each shipped network alone: torch vs ONNX Runtime, batch 1 and 64.
- predict: one process (torch) · worker processes (`--workers`) · worker processes + ONNX
  Runtime (`--runtime onnx`); end to end, worker start and model loading included.
- upscale: torch · ONNX Runtime · each in worker processes.

Numbers are measured each run, never stored. ONNX graphs are exported into a temporary
cache first (not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from srfer.imageio import expand_inputs, load_image, pil_to_tensor
from srfer.predict import PredictOptions, Predictor
from srfer.predict_workers import run_in_workers
from srfer.upscale import upscale_files


def predict_faces(paths: list[Path], runtime: str, workers: int) -> tuple[float, list[dict]]:
    """Seconds for the whole job (models loaded, workers started) and the JSON answers."""
    start = time.perf_counter()
    predictor = Predictor(PredictOptions(embeddings=True, runtime=runtime), "cpu")
    report = run_in_workers(predictor, paths, workers)
    seconds = time.perf_counter() - start
    return seconds, [face.to_json() for image in report.images for face in image.faces]


def largest_difference(a: list[dict], b: list[dict]) -> dict[str, float]:
    """How far two predict answers are apart: probabilities, embeddings, labels that differ."""
    assert len(a) == len(b), "different numbers of faces"
    pairs = list(zip(a, b, strict=True))
    prob = max(
        abs(x["probabilities"][k] - y["probabilities"][k]) for x, y in pairs for k in x["probabilities"]
    )
    emb = max(abs(p - q) for x, y in pairs for p, q in zip(x["embedding"], y["embedding"], strict=True))
    labels = sum(x["expression"] != y["expression"] for x, y in pairs)
    return {"max_prob_delta": prob, "max_embedding_delta": emb, "expressions_differing": labels}


def bench_predict(folder: Path, repeats: int, workers: int) -> dict:
    paths = expand_inputs([str(folder)]) * repeats
    runs = {"torch, 1 process": ("torch", 1), f"torch, {workers} workers": ("torch", workers),
            f"onnx, {workers} workers": ("onnx", workers), "onnx, 1 process": ("onnx", 1)}  # fmt: skip
    Predictor(PredictOptions(embeddings=True, runtime="onnx"), "cpu")  # export the graphs (untimed)
    out, base = {"photos": len(paths)}, None
    for name, (runtime, n) in runs.items():
        seconds, faces = predict_faces(paths, runtime, n)
        rate = len(faces) / seconds
        base = base or (rate, faces)
        out[name] = {"faces_per_s": rate, "photos_per_s": len(paths) / seconds, "ratio": rate / base[0],
                     **largest_difference(base[1], faces)}  # fmt: skip
    return out


def bench_upscale(crops: list[Path], workers: int) -> dict:
    out, base = {"crops": len(crops)}, None
    with tempfile.TemporaryDirectory() as tmp:
        upscale_files(crops[:1], Path(tmp) / "warm", runtime="onnx")  # export the graph (untimed)
        for runtime in ("torch", "onnx"):
            for n in (1, workers):
                target = Path(tmp) / f"{runtime}{n}"
                start = time.perf_counter()
                report = upscale_files(crops, target, runtime=runtime, workers=n)
                rate = len(report.written) / (time.perf_counter() - start)
                images = [pil_to_tensor(load_image(dst)) for _, dst, _, _ in report.written]
                base = base or (rate, images)
                delta = max(float((x - y).abs().max()) for x, y in zip(base[1], images, strict=True)) * 255
                out[f"{runtime}, {n} process(es)"] = {"faces_per_s": rate, "ratio": rate / base[0],
                                                      "max_delta_8bit_levels": delta}  # fmt: skip
    return out


def bench_networks(batches: tuple[int, ...] = (1, 64)) -> dict:
    """faces/s of each shipped network in torch and in ONNX Runtime (this process's threads)."""
    from srfer.inference import (
        embedder_crop_size,
        load_classifier,
        load_embedder,
        load_generator,
        super_resolve,
    )
    from srfer.onnx_runtime import on_runtime

    cpu = torch.device("cpu")
    embedder = load_embedder(None, cpu)
    chip = embedder_crop_size(embedder)
    networks = {
        "SR x4 (32 px in)": (load_generator(None, cpu), (3, 32, 32), True),
        "expression MCNN (48 px)": (load_classifier(None, cpu), (1, 48, 48), False),
        "embedder dlib ResNet-29": (embedder, (3, chip, chip), False),
    }
    out = {}
    for name, (model, shape, is_sr) in networks.items():
        twin = on_runtime(model, "onnx", cpu, side=shape[-1] if not is_sr else None)
        row = {}
        for batch in batches:
            x = torch.rand(batch, *shape)
            rates = {}
            for runtime, net in (("torch", model), ("onnx", twin)):
                call = (lambda n=net, x=x: super_resolve(n, x)) if is_sr else (lambda n=net, x=x: n(x))
                with torch.no_grad():
                    call()
                    repeats = max(3, 64 // batch)
                    start = time.perf_counter()
                    for _ in range(repeats):
                        call()
                rates[runtime] = batch * repeats / (time.perf_counter() - start)
            row |= {f"torch_b{batch}": rates["torch"], f"onnx_b{batch}": rates["onnx"],
                    f"ratio_b{batch}": rates["onnx"] / rates["torch"]}  # fmt: skip
        out[name] = row
    return out


def celeba_crops(celeba: Path, count: int, folder: Path) -> list[Path]:
    """`count` CelebA val faces as 32×32 PNG crops (centre 128 crop, antialiased ↓4)."""
    from srfer.data.degradations import bicubic_resize, quantize_8bit
    from srfer.data.faces import center_crop_hr, discover_faces
    from srfer.imageio import save_image_atomic, tensor_to_pil

    paths = []
    for i, path in enumerate(discover_faces(celeba, "val").paths[:count]):
        hr = center_crop_hr(path, 128, 3).float().div(255)
        lr = quantize_8bit(bicubic_resize(hr[None], 32))[0]
        paths.append(folder / f"crop{i:04d}.png")
        save_image_atomic(tensor_to_pil(lr), paths[-1])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=Path("../shared/data/samples/wild"))
    parser.add_argument("--celeba", type=Path, default=Path("../shared/data/celeba"))
    parser.add_argument("--repeats", type=int, default=3, help="Pass over the folder this many times.")
    parser.add_argument("--crops", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp())
    os.environ["SRFER_CACHE"] = str(cache)
    report: dict = {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        report["networks (faces/s)"] = bench_networks()
        if args.folder.is_dir():
            report["predict"] = bench_predict(args.folder, args.repeats, args.workers)
        if args.celeba.is_dir():
            crops = celeba_crops(args.celeba, args.crops, cache / "crops")
            report["upscale"] = bench_upscale(crops, args.workers)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, values in report.items():
        if not isinstance(values, dict):
            print(f"{section}: {values}")
            continue
        print(section)
        for name, row in values.items():
            if isinstance(row, dict):
                print(f"    {name:<22} " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()))
            else:
                print(f"    {name:<22} {row}")


if __name__ == "__main__":
    main()
