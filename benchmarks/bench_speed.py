"""`make bench`: CPU speed of `predict` on a folder of photos and of `upscale` on face crops,
as ratios against the code before the speed work (`--baseline`, a git revision, default
BASELINE_REV) measured in the same run on the same machine, with the answers compared so that
a speed-up never hides a change of result.

Each path runs in its own Python process (`python -c RUNNER` with PYTHONPATH on that code):
the baseline from `git archive <rev>` of this repository (its code and shipped weights), the
rest from this tree. A process loads its models (timed as `load_s`), runs one input untimed
(first-call set-up), then times the whole folder. Every path runs `--rounds` times,
round-robin; `faces_per_s` is its best round (`slowest_round` shows the spread). All fp32.

Paths: baseline · torch (default: one input per core in flight) · `--runtime onnx` ·
`--workers 2` (processes); and each shipped network alone, torch vs ONNX Runtime. Numbers are
measured each run, never stored.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

# The last commit before issue 16's CPU work (channels-last networks, srfer.faces.cascade's MTCNN
# driver, photos in flight on threads, freed memory kept, PNG level 1): "today's code".
BASELINE_REV = "c27eb77884bb4f1ee1fadcf99b3f6168154bbf80"
REPO = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter on whichever srfer is first on PYTHONPATH; argv[1] is a JSON job.
RUNNER = r"""
import json, sys, time
from pathlib import Path
job = json.loads(sys.argv[1])
import srfer
assert Path(srfer.__file__).resolve().is_relative_to(Path(job["tree"]).resolve()), srfer.__file__
if not job["baseline"]:  # what the CLI now does before any command
    from srfer.core.process import keep_freed_memory
    keep_freed_memory()
paths = [Path(p) for p in job["inputs"]]
runtime = job["runtime"]
start = time.perf_counter()
if job["task"] == "predict":
    if job["baseline"]:  # the baseline's flat layout, one photo after another
        from srfer.predict import PredictOptions, Predictor
        predictor = Predictor(PredictOptions(embeddings=True), "cpu")
        run = predictor.run
    else:
        from srfer.infer.options import PredictOptions, PredictWeights
        from srfer.infer.parallel import run_in_workers
        from srfer.infer.predict import Predictor
        weights, x8 = None, True
        if job["same_models"]:  # the expression files the baseline shipped, and no ×8 (it had none)
            shipped = Path(job["baseline_weights"])
            weights = PredictWeights(fer_weights=shipped / "fer_mcnn.safetensors",
                                     upscale_fer_weights=shipped / "fer_mcnn_upscale_sr12.safetensors")
            x8 = False
        predictor = Predictor(PredictOptions(embeddings=True, runtime=runtime, x8=x8), "cpu", weights)
        run = lambda ps: run_in_workers(predictor, ps, job["workers"])
    loaded = time.perf_counter()
    run(paths[:1])
    timed = time.perf_counter()
    report = run(paths)
    seconds = time.perf_counter() - timed
    answers = [{"box": list(f.box), "expression": f.expression, "probabilities": f.probabilities,
                "embedding": f.embedding} for image in report.images for f in image.faces]
else:
    out = Path(job["out"])
    if job["baseline"]:
        from srfer.upscale import upscale_files
        upscale = lambda ps, folder: upscale_files(ps, folder, device="cpu")
    else:
        from srfer.infer.options import UpscaleOptions
        from srfer.infer.upscale import upscale_files
        options = UpscaleOptions(runtime=runtime)
        upscale = lambda ps, folder: upscale_files(ps, folder, options, "cpu", workers=job["workers"])
    loaded = time.perf_counter()
    upscale(paths[:1], out / "warm")
    timed = time.perf_counter()
    report = upscale(paths, out / "all")
    seconds = time.perf_counter() - timed
    answers = [str(dst) for _, dst, _, _ in report.written]
# an editable install can serve a module the tree lacks: make sure none came from elsewhere
strays = [m.__file__ for name, m in sys.modules.items() if name.startswith("srfer")
          and getattr(m, "__file__", None) and not Path(m.__file__).resolve().is_relative_to(job["tree"])]
assert not strays, strays
print(json.dumps({"load_s": loaded - start, "seconds": seconds, "answers": answers}))
"""


def run_job(tree: Path, **job) -> dict:
    """The runner on the srfer in `tree`; its JSON answer."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    payload = json.dumps({"tree": str(tree.resolve()), **job})
    done = subprocess.run([sys.executable, "-c", RUNNER, payload], env=env, capture_output=True, text=True,
                          cwd=tree)  # `python -c` puts the working folder first on sys.path  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bench_speed: the {tree} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_tree(rev: str, into: Path) -> Path | None:
    """`git archive` of srfer/ and weights/ at `rev`, or None (no git, or a shallow clone)."""
    archive = into / "baseline.tar"
    try:
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev, "srfer", "weights"],
                       check=True, capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"bench_speed: no baseline ({rev} not in this clone: {exc}); ratios are against torch")
        return None
    tree = into / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def predict_differences(base: list[dict], other: list[dict]) -> dict:
    """How far two predict answers are apart (faces matched in order)."""
    if len(base) != len(other):
        return {"faces": len(other), "baseline_faces": len(base)}
    pairs = list(zip(base, other, strict=True))
    box = max((abs(p - q) for x, y in pairs for p, q in zip(x["box"], y["box"], strict=True)), default=0.0)
    prob = max((abs(x["probabilities"][k] - y["probabilities"][k])
                for x, y in pairs for k in x["probabilities"]), default=0.0)  # fmt: skip
    emb = max((abs(p - q) for x, y in pairs for p, q in zip(x["embedding"], y["embedding"], strict=True)),
              default=0.0)  # fmt: skip
    labels = sum(x["expression"] != y["expression"] for x, y in pairs)
    return {"max_box_delta_px": box, "max_prob_delta": prob, "max_embedding_delta": emb,
            "expressions_differing": labels}  # fmt: skip


def upscale_differences(base: list[str], other: list[str]) -> dict:
    from srfer.core.imageio import load_image, pil_to_tensor

    delta = max(float((pil_to_tensor(load_image(a)) - pil_to_tensor(load_image(b))).abs().max())
                for a, b in zip(base, other, strict=True))  # fmt: skip
    return {"max_delta_8bit_levels": round(delta * 255, 3)}


# name → (tree: "baseline" or "this", runtime, worker processes, predict with the baseline's
# expression models: like for like, since the default classifier has since changed)
PATHS = {
    "baseline (torch, one input at a time)": ("baseline", "torch", 1, False),
    "torch, the baseline's models": ("this", "torch", 1, True),
    "torch": ("this", "torch", 1, False),
    "onnx": ("this", "onnx", 1, False),
    "torch, --workers 2": ("this", "torch", 2, False),
}


def bench_task(task: str, inputs: list[Path], trees: dict[str, Path], scratch: Path, rounds: int) -> dict:
    """Every path `rounds` times, round-robin (so that a slow spell of this shared machine hits
    all paths alike); a path's rate is its best round, as `timeit` takes the best repeat."""
    like_for_like = task == "predict" and "baseline" in trees  # the baseline's files come from its tree
    paths = {name: spec for name, spec in PATHS.items()
             if spec[0] in trees and (like_for_like or not spec[3])}  # fmt: skip
    baseline_weights = str(trees["baseline"] / "weights") if "baseline" in trees else None
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    for round_ in range(rounds):
        for index, (name, (which, runtime, workers, same_models)) in enumerate(paths.items()):
            runs[name].append(run_job(  # each path and round writes its own folder: upscale's
                # answers are its files, compared after all rounds
                trees[which], task=task, inputs=[str(p.resolve()) for p in inputs], runtime=runtime,
                workers=workers, out=str(scratch / f"{task}-path{index}-round{round_}"),
                same_models=same_models, baseline=which == "baseline", baseline_weights=baseline_weights,
            ))  # fmt: skip
    out: dict = {"inputs": len(inputs), "rounds": rounds}
    base = None
    for name, results in runs.items():
        rates = [len(r["answers"]) / r["seconds"] for r in results]
        answers = results[0]["answers"]
        base = base or (max(rates), answers)
        diff = (predict_differences if task == "predict" else upscale_differences)(base[1], answers)
        out[name] = {"faces_per_s": round(max(rates), 2), "ratio": round(max(rates) / base[0], 2),
                     "slowest_round": round(min(rates), 2), "load_s": round(results[0]["load_s"], 2),
                     **diff}  # fmt: skip
    return out


def bench_networks(batches: tuple[int, ...] = (1, 64)) -> dict:
    """faces/s of each shipped network in torch and in ONNX Runtime (this process's threads)."""
    from srfer.accel.onnx import on_runtime
    from srfer.core.weights import Weights
    from srfer.infer.load import load_classifier, load_embedder, load_generator
    from srfer.infer.run import super_resolve

    cpu = torch.device("cpu")
    embedder = load_embedder(None, cpu)
    chip = embedder.contract["crop_size"]
    networks = {"SR x4 (32 px in)": (load_generator(None, cpu), (3, 32, 32), True)}
    classifier = load_classifier(Weights.FER.resolve(), cpu)  # the default's network (predict adds flip TTA)
    size, channels = classifier.config.input_size, classifier.config.in_channels
    networks[f"expression {classifier.config.arch} ({size} px)"] = (classifier, (channels, size, size), False)
    networks[f"embedder dlib ResNet-29 ({chip} px)"] = (embedder, (3, chip, chip), False)
    out = {}
    for name, (model, shape, is_sr) in networks.items():
        twin = on_runtime(
            model.network, "onnx", cpu, model.sources[0], model.meta, None if is_sr else shape[-1]
        )
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
            row |= {f"torch_b{batch}": round(rates["torch"], 1), f"onnx_b{batch}": round(rates["onnx"], 1),
                    f"ratio_b{batch}": round(rates["onnx"] / rates["torch"], 2)}  # fmt: skip
        out[name] = row
    return out


def celeba_crops(celeba: Path, count: int, folder: Path) -> list[Path]:
    """`count` CelebA val faces as 32×32 PNG crops (centre 128 crop, antialiased ↓4)."""
    from srfer.core.imageio import save_image_atomic, tensor_to_pil
    from srfer.data.degradations import bicubic_resize, quantize_8bit
    from srfer.data.faces import center_crop_hr, discover_faces

    paths = []
    for i, path in enumerate(discover_faces(celeba, "val").paths[:count]):
        hr = center_crop_hr(path, 128, 3).float().div(255)
        lr = quantize_8bit(bicubic_resize(hr[None], 32))[0]
        paths.append(folder / f"crop{i:04d}.png")
        save_image_atomic(tensor_to_pil(lr), paths[-1])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, default=Path("../shared/data/samples/wild"))
    parser.add_argument("--celeba", type=Path, default=Path("../shared/data/celeba"))
    parser.add_argument("--repeats", type=int, default=3, help="Pass over the folder this many times.")
    parser.add_argument("--crops", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3,
                        help="Run every path this many times, round-robin; each keeps its best.")  # fmt: skip
    parser.add_argument("--baseline", default=BASELINE_REV, help="The git revision the ratios are against.")
    parser.add_argument("--only", choices=("networks", "predict", "upscale"), action="append",
                        help="Run only this part (repeatable; default: all three).")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp())
    os.environ["SRFER_CACHE"] = str(scratch / "cache")  # ONNX graphs exported here (not timed)
    report: dict = {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "baseline": args.baseline}  # fmt: skip
    try:
        trees = {"this": REPO}
        baseline = baseline_tree(args.baseline, scratch)
        if baseline is not None:
            trees["baseline"] = baseline
        parts = set(args.only or ("networks", "predict", "upscale"))
        if "networks" in parts:
            report["networks (faces/s)"] = bench_networks()
        if "predict" in parts and args.folder.is_dir():
            from srfer.core.imageio import expand_inputs

            photos = [Path(p) for p in expand_inputs([str(args.folder)])] * args.repeats
            report["predict (faces/s)"] = bench_task("predict", photos, trees, scratch, args.rounds)
        if "upscale" in parts and args.celeba.is_dir():
            crops = celeba_crops(args.celeba, args.crops, scratch / "crops")
            report["upscale (faces/s)"] = bench_task("upscale", crops, trees, scratch, args.rounds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, values in report.items():
        if not isinstance(values, dict):
            print(f"{section}: {values}")
            continue
        print(section)
        for name, row in values.items():
            text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()) \
                if isinstance(row, dict) else row  # fmt: skip
            print(f"    {name:<38} {text}")


if __name__ == "__main__":
    main()
