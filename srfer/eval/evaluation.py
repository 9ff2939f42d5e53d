"""Evaluations behind `eval-sr`, `eval-fer` and `eval-embed`: metrics on held-out data, JSON-ready.

It stands on the inference layer, the data readers and the metrics only (never on `train/`
or `predict`); parameters after the data are keyword-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from srfer.core.console import warn
from srfer.core.errors import SrferError
from srfer.core.imageio import skip_summary, tensor_to_pil
from srfer.core.runtime import resolve_device
from srfer.core.weights import missing_note, optional_weights
from srfer.data.degradations import LowResPath, bicubic_resize, to_unit
from srfer.data.faces import SRPairDataset, collate_skipping_failures, discover_faces
from srfer.data.fer import FerDataset, class_names, load_fer, project_probs
from srfer.data.identity import FaceIdentityDataset, discover_identities, generate_pairs, read_lfw_pairs
from srfer.eval.metrics import (
    PROTOCOL,
    classification_report,
    frechet_distance,
    sr_vs_bicubic,
    verification_report,
)
from srfer.faces.align import align_face
from srfer.infer.networks import (
    bicubic_baseline,
    embed_all,
    embedder_aligner,
    embedder_crop_size,
    inference_context,
    load_classifier,
    load_embedder,
    load_generator,
    make_restorer,
    model_device,
    pair_distances,
    predict_probs,
    super_resolve,
)


def evaluate_sr(
    data: Path,
    *,
    split: str = "val",
    weights: Path | None = None,
    device: str = "auto",
    batch_size: int = 32,
    limit: int = 0,
    hr_size: int | None = None,
    progress=None,
    flip_tta: bool = False,
    identity: bool = False,
    embed_weights: Path | None = None,
) -> dict[str, Any]:
    """PSNR/SSIM of bicubic vs the model on `split` of `data`, per image and mean; with
    `identity`, also what a face recogniser makes of the faces (`IdentityJudge`)."""
    dev = resolve_device(device)
    generator = load_generator(weights, dev)
    judge = IdentityJudge(embed_weights, dev) if identity else None
    cfg = generator.config
    hr_size = hr_size or _trained_hr_size(generator)
    source, dataset, loader = _sr_pairs(data, split, limit, hr_size, generator, batch_size)
    rows, skipped = [], []
    for batch in loader:
        skipped += batch.pop("skipped")
        if batch:
            hr = to_unit(batch["hr"]).to(dev)
            sr = super_resolve(generator, to_unit(batch["lr"]), flip_tta=flip_tta)
            bic = bicubic_baseline(batch["lr"].to(dev), hr.shape[-2:])
            columns = sr_vs_bicubic(sr, bic, hr)
            if judge is not None:
                judge.add(hr=hr, sr=sr, bicubic=bic)
            for i, index in enumerate(batch["index"].tolist()):
                rows.append(
                    {"image": str(dataset.paths[index]), **{k: float(v[i]) for k, v in columns.items()}}
                )
        if progress is not None:
            progress(len(rows))
    if not rows:
        raise SrferError(f"no usable images in {source.description} ({skip_summary(skipped)})")
    if skipped:
        warn(skip_summary(skipped, f"image(s) of {len(dataset)}"))
    mean = {
        k: sum(r[k] for r in rows) / len(rows) for k in ("psnr_bicubic", "psnr_sr", "ssim_bicubic", "ssim_sr")
    }
    return {
        "data": source.description,
        "images": len(rows),
        "skipped": [s.to_json() for s in skipped],
        "weights": str(generator.source),
        "scale": cfg.scale,
        "hr_size": hr_size,
        "lr_size": hr_size // cfg.scale,
        "protocol": PROTOCOL,
        "flip_tta": flip_tta,
        "mean": mean,
        "psnr_gain_db": mean["psnr_sr"] - mean["psnr_bicubic"],
        **({"identity": judge.report()} if judge is not None else {}),
        "per_image": rows,
    }


def _trained_hr_size(generator) -> int:
    """The HR size the generator was trained at (its file's record; else 32 px × scale)."""
    return generator.meta.get("data", {}).get("hr_size", 32 * generator.config.scale)


def _sr_pairs(data: Path, split: str, limit: int, hr_size: int, generator, batch_size: int):
    """(source, dataset, loader) of held-out (LR, HR) pairs made as `generator` expects."""
    source = discover_faces(data, split)
    if limit:
        source.paths = source.paths[:limit]
    cfg = generator.config
    dataset = SRPairDataset(source, hr_size, cfg.scale, cfg.channels, augment=False, cache=False)
    workers = min(2, len(source.paths) // batch_size)
    loader = DataLoader(
        dataset, batch_size=batch_size, collate_fn=collate_skipping_failures, num_workers=workers
    )
    return source, dataset, loader


def compare_sr(
    data: Path, models: dict[str, Path], *, split: str = "val", device: str = "auto", batch_size: int = 32,
    limit: int = 0, identity: bool = False, embed_weights: Path | None = None, grid_faces: int = 0,
    progress=None,
) -> dict[str, Any]:  # fmt: skip
    """Several SR models of one scale on the same faces: PSNR/SSIM (and with `identity` the
    recogniser's view, `IdentityJudge`) for bicubic and each model, and with `grid_faces` the
    first faces as picture rows: LR (nearest) | bicubic | each model | HR."""
    dev = resolve_device(device)
    generators = {name: load_generator(path, dev) for name, path in models.items()}
    configs = {(g.config.scale, g.config.channels) for g in generators.values()}
    if len(configs) != 1:
        raise SrferError("compare-sr compares models of one scale and channel count: give the ×8 model alone")
    first = next(iter(generators.values()))
    scale, hr_size = first.config.scale, _trained_hr_size(first)
    source, _, loader = _sr_pairs(data, split, limit, hr_size, first, batch_size)
    judge = IdentityJudge(embed_weights, dev) if identity else None
    sums: dict[str, dict[str, float]] = {name: {"psnr": 0.0, "ssim": 0.0} for name in ("bicubic", *models)}
    seen, skipped, grid = 0, [], []
    for batch in loader:
        skipped += batch.pop("skipped")
        if not batch:
            continue
        hr = to_unit(batch["hr"]).to(dev)
        faces = {"bicubic": bicubic_baseline(batch["lr"].to(dev), hr.shape[-2:])}
        faces |= {name: super_resolve(g, to_unit(batch["lr"])) for name, g in generators.items()}
        for name, restored in faces.items():
            scores = sr_vs_bicubic(restored, faces["bicubic"], hr)
            sums[name]["psnr"] += float(scores["psnr_sr"].sum())
            sums[name]["ssim"] += float(scores["ssim_sr"].sum())
        if judge is not None:
            judge.add(hr=hr, **faces)
        if len(grid) < grid_faces:
            lr_big = torch.nn.functional.interpolate(to_unit(batch["lr"]), size=hr.shape[-2:], mode="nearest")
            for i in range(min(len(hr), grid_faces - len(grid))):
                grid.append([lr_big[i], *(f[i].cpu() for f in faces.values()), hr[i].cpu()])
        seen += len(hr)
        if progress is not None:
            progress(seen)
    if not seen:
        raise SrferError(f"no usable images in {source.description} ({skip_summary(skipped)})")
    means = {name: {k: v / seen for k, v in m.items()} for name, m in sums.items()}
    out: dict[str, Any] = {
        "data": source.description, "images": seen, "skipped": [s.to_json() for s in skipped],
        "weights": {name: str(g.source) for name, g in generators.items()}, "scale": scale,
        "hr_size": hr_size, "lr_size": hr_size // scale, "protocol": PROTOCOL, "mean": means,
    }  # fmt: skip
    if judge is not None:
        out["identity"] = judge.report()
    if grid:
        out["grid_columns"] = [f"LR {hr_size // scale} px", "bicubic", *models, f"HR {hr_size} px"]
        out["grid"] = grid  # tensors: the caller draws them (plots.plot_image_grid) and drops them
    return out


class IdentityJudge:
    """What a face recogniser makes of SR faces: the embeddings of the HR, SR and bicubic faces
    (each aligned as the embedder's contract says, with the landmarks MTCNN finds on the HR
    face — the three are pixel-aligned), reported as the Fréchet distance of SR and of bicubic
    faces to the real ones (lower: closer to real faces as a population) and the mean squared
    distance of each face to its own HR face (lower: identity kept)."""

    def __init__(self, weights: Path | None, device: torch.device) -> None:
        self.embedder = load_embedder(weights, device)
        self.size = embedder_crop_size(self.embedder)
        self.aligner = embedder_aligner(self.embedder, self.size)  # None: a centre-crop embedder
        self.embeddings: dict[str, list[torch.Tensor]] = {}
        self.fallbacks = 0

    @torch.no_grad()
    def add(self, **faces01: torch.Tensor) -> None:
        """Batches (N, 3, S, S) in [0, 1] by name; the first one is the reference (HR)."""
        marks = None
        if self.aligner is not None:
            reference = next(iter(faces01.values()))
            found = self.aligner.landmarks([tensor_to_pil(face) for face in reference.cpu()])
            marks = [m for m, _ in found]
            self.fallbacks += sum(fell_back for _, fell_back in found)
        for name, batch in faces01.items():
            chips = self._chips(batch.cpu(), marks)
            embedded = self.embedder(chips.to(model_device(self.embedder))).float().cpu()
            self.embeddings.setdefault(name, []).append(embedded)

    def _chips(self, batch: torch.Tensor, marks) -> torch.Tensor:
        if marks is None:
            return bicubic_resize(batch, self.size)
        template = self.aligner.template
        pairs = zip(batch, marks, strict=True)
        return torch.stack([align_face(tensor_to_pil(face), m, self.size, template) for face, m in pairs])

    def report(self) -> dict[str, Any]:
        (reference, real), *others = ((k, torch.cat(v)) for k, v in self.embeddings.items())
        out: dict[str, Any] = {"embedder": str(self.embedder.source), "faces": len(real),
                               "landmark_fallbacks": self.fallbacks}  # fmt: skip
        for name, faces in others:
            out[f"frechet_{name}"] = frechet_distance(real, faces)
            out[f"distance_to_{reference}_{name}"] = float((faces - real).square().sum(1).mean())
        return out


def check_sweep_sizes(sizes: list[int], low: int, high: int) -> None:
    """Every size is checked before any work starts."""
    bad = [s for s in sizes if not low <= s <= high]
    if bad or not sizes:
        raise SrferError(f"--sweep sizes {bad or sizes}: use sizes between {low} and {high} px")


def _fer_loader(data: Path, split: str, ferplus: Path | None, batch_size: int, limit: int = 0):
    """(loader, samples, skipped files as JSON) of a FER split (`limit`: that many faces)."""
    samples = load_fer(data, split, ferplus, limit)
    skipped = [s.to_json() for s in samples.skipped]
    return DataLoader(FerDataset(samples), batch_size=batch_size), samples, skipped


def _fer_probs(
    model, loader: DataLoader, device: torch.device, lr_size: int | None, restore, flip_tta: bool = False
):
    low_res = LowResPath(lr_size, restore, "") if lr_size else None
    return predict_probs(model, loader, inference_context(device), low_res, flip_tta)


def shared_classes(
    probs: torch.Tensor, labels: torch.Tensor, data_classes: tuple[str, ...]
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], str | None]:
    """A 7-class (FER2013) classifier on 8-class (FER+) data, or the reverse, is scored on
    the 7 classes both know: an 8-class model's contempt probability is dropped (the rest
    renormalised); FER+ faces labelled contempt are left out for a 7-class model. Returns
    (probs, labels, classes, a note saying which, or None)."""
    model_classes = class_names(probs.shape[1])
    if model_classes == data_classes:
        return probs, labels, data_classes, None
    if len(model_classes) > len(data_classes):
        note = "the classifier's contempt probability is left out (7-class data); the rest renormalised"
        return project_probs(probs, len(data_classes)), labels, data_classes, note
    known = labels < len(model_classes)
    note = f"{int((~known).sum())} contempt faces left out: the classifier knows 7 classes"
    return probs[known], labels[known], model_classes, note


def evaluate_fer(
    data: Path, *, split: str = "val", weights: Path | None = None, device: str = "auto",
    upscale: bool = False, upscaler: str = "sr", lr_size: int = 12, sr_weights: Path | None = None,
    ferplus: Path | None = None, batch_size: int = 256, flip_tta: bool = False, limit: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Accuracy, per-class P/R/F1, macro F1, confusion matrix and ROC of a classifier
    (`limit`: about that many faces, spread over the classes; 0: all)."""
    dev = resolve_device(device)
    model = load_classifier(weights, dev)
    restore = make_restorer(upscaler, dev, sr_weights) if upscale else None
    loader, samples, skipped = _fer_loader(data, split, ferplus, batch_size, limit)
    probs, labels = _fer_probs(model, loader, dev, lr_size if upscale else None, restore, flip_tta)
    probs, labels, classes, note = shared_classes(probs, labels, samples.classes)
    report = classification_report(probs, labels, classes)
    protocol = f"{lr_size}px → {upscaler} → 48px" if upscale else "48px input"
    protocol += " (+ flip TTA: mean of face and mirror)" if flip_tta else ""
    return {"data": samples.description, "images": len(labels), "skipped": skipped,
            "weights": str(model.source), "input": protocol, "classes": list(classes),
            "notes": [note] if note else [], **report}  # fmt: skip


def sweep_fer(
    data: Path, sizes: list[int], *, split: str = "val", weights: Path | None = None,
    upscale_weights: Path | None = None, sr_weights: Path | None = None, device: str = "auto",
    ferplus: Path | None = None, batch_size: int = 256, progress=None, x8_weights: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Accuracy vs face size: HR classifier on bicubic-, SR- and ×8-SR-restored input (the
    CelebA ×8 takes the gray face as RGB), and the `--upscale`-trained classifier (on
    SR-restored input), same images and protocol. Without `upscale_weights`/`x8_weights` and
    no shipped file, that column is left out (and said so in `notes`)."""
    dev = resolve_device(device)
    hr_model = load_classifier(weights, dev)
    notes: list[str] = []
    up_path = optional_weights("fer-upscale", upscale_weights)
    up_model = load_classifier(up_path, dev, role="fer-upscale") if up_path else None
    if up_model is None:
        notes.append(f"no upscale-trained classifier column: {missing_note('fer-upscale')}")
    restorers = {"bicubic": make_restorer("bicubic", dev), "sr": make_restorer("sr", dev, sr_weights)}
    restorers |= _x8_column(dev, x8_weights, notes)
    loader, samples, skipped = _fer_loader(data, split, ferplus, batch_size)
    runs = {"hr_classifier+bicubic": (hr_model, "bicubic"), "hr_classifier+sr": (hr_model, "sr")}
    if "x8_sr" in restorers:
        runs["hr_classifier+x8_sr"] = (hr_model, "x8_sr")
    if up_model is not None:
        runs["upscale_classifier+sr"] = (up_model, "sr")
    check_sweep_sizes(sizes, 4, 48)
    table: dict[str, list[float]] = {name: [] for name in runs}

    def accuracy(model: torch.nn.Module, lr_size: int | None, how: str) -> float:
        probs, labels = _fer_probs(model, loader, dev, lr_size, restorers[how])
        probs, labels, _, note = shared_classes(probs, labels, samples.classes)
        if note and note not in notes:
            notes.append(note)
        return float((probs.argmax(1) == labels).float().mean())

    for size in sizes:
        if size >= 48:  # full-size input is not degraded: one pass per model serves every restorer
            models = {id(m): m for m, _ in runs.values()}
            per_model = {key: accuracy(m, None, "bicubic") for key, m in models.items()}
            results = {name: per_model[id(model)] for name, (model, _) in runs.items()}
        else:
            results = {name: accuracy(model, size, how) for name, (model, how) in runs.items()}
        for name in runs:
            table[name].append(results[name])
        if progress is not None:
            progress()
    return {"data": samples.description, "skipped": skipped, "sizes": sizes, "accuracy": table,
            "weights": str(hr_model.source),
            "upscale_weights": str(up_model.source) if up_model else None,
            "sr_weights": str(restorers["sr"].source),
            "x8_weights": str(restorers["x8_sr"].source) if "x8_sr" in restorers else None,
            "notes": notes}  # fmt: skip


def _x8_column(device: torch.device, weights: Path | None, notes: list[str]) -> dict[str, Any]:
    """The sweeps' ×8 SR column (`x8_sr`): given, or shipped, or left out with a note
    (`weights` "none": left out on request; at large sizes it is the slowest column)."""
    if weights is not None and str(weights) == "none":
        notes.append("no ×8 SR column: left out (--x8-weights none)")
        return {}
    path = optional_weights("sr-x8", weights)
    if path is None:
        notes.append(f"no ×8 SR column: {missing_note('sr-x8')}")
        return {}
    return {"x8_sr": make_restorer("sr", device, path, role="sr-x8")}


def _identity_eval_set(
    data: Path, split: str, pairs_file: Path | None, n_pairs: int, size: int, seed: int, limit: int = 0,
    aligner=None,
):  # fmt: skip
    source = discover_identities(data, split, seed=seed, subset=limit)
    dataset = FaceIdentityDataset(source, size, aligner=aligner)
    if pairs_file is not None:
        if dataset.skipped:
            raise SrferError(f"{data}: pairs.txt cannot be used ({skip_summary(dataset.skipped)})")
        pairs = read_lfw_pairs(pairs_file, source)
    else:
        pairs = generate_pairs(dataset.labels.tolist(), n_pairs, seed=seed)
    return source, dataset, pairs


def _verify(
    model, dataset, pairs, device: torch.device, lr_size: int | None, restore, batch_size: int
) -> dict:
    loader = DataLoader(dataset, batch_size=batch_size)
    low_res = LowResPath(lr_size, restore, "") if lr_size else None
    embeddings = embed_all(model, loader, inference_context(device), low_res)
    return verification_report(*pair_distances(embeddings, pairs))


def evaluate_embed(
    data: Path, *, split: str = "all", pairs_file: Path | None = None, n_pairs: int = 6000,
    weights: Path | None = None, device: str = "auto", upscale: bool = False, upscaler: str = "sr",
    lr_size: int = 32, sr_weights: Path | None = None, batch_size: int = 128, seed: int = 0, limit: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """LFW-protocol verification (10-fold τ) of an embedder on `data`, optionally on faces
    degraded to `lr_size` and restored (`limit`: about that many images, whole identities)."""
    dev = resolve_device(device)
    model = load_embedder(weights, dev)
    size = embedder_crop_size(model)
    source, dataset, pairs = _identity_eval_set(
        data, split, pairs_file, n_pairs, size, seed, limit, embedder_aligner(model)
    )
    restore = make_restorer(upscaler, dev, sr_weights, role="sr") if upscale else None
    report = _verify(model, dataset, pairs, dev, lr_size if upscale else None, restore, batch_size)
    protocol = f"{lr_size}px → {upscaler} → {size}px" if upscale else f"{size}px input"
    pairs_source = str(pairs_file) if pairs_file else f"generated (seed {seed})"
    return {"data": source.description, "identities": len(source.names), "images": len(dataset),
            "skipped": [s.to_json() for s in dataset.skipped], "alignment": dataset.alignment,
            "notes": source.notes, "weights": str(model.source), "input": protocol,
            "pairs_source": pairs_source, **report}  # fmt: skip


def sweep_embed(
    data: Path, sizes: list[int], *, split: str = "all", pairs_file: Path | None = None, n_pairs: int = 6000,
    weights: Path | None = None, sr_weights: Path | None = None, device: str = "auto", batch_size: int = 128,
    seed: int = 0, progress=None, identity_sr_weights: Path | None = None, x8_weights: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Verification accuracy vs probe size, same pairs: bicubic, the (PSNR) SR, the
    identity-aware SR and the ×8 SR (each SR takes the probe at its own size: 16 px → ×8 →
    128 px). Without `identity_sr_weights`/`x8_weights` and no shipped file, that column is
    left out (and said so in `notes`)."""
    dev = resolve_device(device)
    model = load_embedder(weights, dev)
    size = embedder_crop_size(model)
    check_sweep_sizes(sizes, 8, size)
    source, dataset, pairs = _identity_eval_set(
        data, split, pairs_file, n_pairs, size, seed, aligner=embedder_aligner(model)
    )
    restorers = {
        "bicubic": make_restorer("bicubic", dev),
        "sr": make_restorer("sr", dev, sr_weights, role="sr"),
    }
    notes: list[str] = []
    identity_sr = optional_weights("sr-identity", identity_sr_weights)
    if identity_sr is not None:
        restorers["identity_sr"] = make_restorer("sr", dev, identity_sr, role="sr-identity")
    else:
        notes.append(f"no identity-aware SR column: {missing_note('sr-identity')}")
    restorers |= _x8_column(dev, x8_weights, notes)
    table: dict[str, list[float]] = {name: [] for name in restorers}
    for s in sizes:
        if s >= size:  # full-size probes are not degraded: one pass serves every restorer
            accuracy = _verify(model, dataset, pairs, dev, None, None, batch_size)["accuracy"]
            results = dict.fromkeys(restorers, accuracy)
        else:
            results = {name: _verify(model, dataset, pairs, dev, s, restore, batch_size)["accuracy"]
                       for name, restore in restorers.items()}  # fmt: skip
        for name in restorers:
            table[name].append(results[name])
        if progress is not None:
            progress()
    sources = {f"{name}_weights": str(r.source) for name, r in restorers.items() if name != "bicubic"}
    return {"data": source.description, "skipped": [s.to_json() for s in dataset.skipped],
            "alignment": dataset.alignment, "sizes": sizes,
            "accuracy": table, "pairs": len(pairs),
            "weights": str(model.source), "identity_sr_weights": None, **sources, "notes": notes}  # fmt: skip
