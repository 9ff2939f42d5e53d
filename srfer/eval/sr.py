"""`eval-sr` and `compare-sr`: PSNR/SSIM of SR models vs bicubic on held-out faces, and what a
face recogniser makes of their faces (`IdentityJudge`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from srfer.core.console import warn
from srfer.core.errors import SrferError
from srfer.core.imageio import skip_summary, tensor_to_pil
from srfer.core.runtime import resolve_device
from srfer.core.weights import sr_models_from
from srfer.data.degradations import CLEAN, bicubic_resize, to_unit
from srfer.data.faces import SRPairDataset, collate_skipping_failures, discover_faces
from srfer.eval.metrics import PROTOCOL, frechet_distance, sr_vs_bicubic
from srfer.eval.options import CompareSrOptions, SrEvalOptions, degradations_of
from srfer.eval.results import SrComparison, SrEvaluation
from srfer.faces.align import align_face
from srfer.infer.load import LoadedModel, embedder_aligner, load_embedder, load_generator
from srfer.infer.run import bicubic_baseline, super_resolve

MEANS = ("psnr_bicubic", "psnr_sr", "ssim_bicubic", "ssim_sr")


def evaluate_sr(options: SrEvalOptions, progress=None) -> SrEvaluation:
    """PSNR/SSIM of bicubic vs the model on `split` of `data`, per image and mean; with
    `identity`, also what a face recogniser makes of the faces (`IdentityJudge`)."""
    dev = resolve_device(options.device)
    generator = load_generator(options.weights, dev)
    judge = IdentityJudge(options.embed_weights, dev) if options.identity else None
    scale = generator.config.scale
    hr_size = options.hr_size or generator.contract["hr_size"]
    (how,) = degradations_of(options.degradation, sweep=False)
    source, dataset, loader = _sr_pairs(options.data, options.split, options.limit, hr_size, generator,
                                        options.batch_size, how)  # fmt: skip
    rows, skipped = [], []
    for batch in loader:
        skipped += batch.pop("skipped")
        if batch:
            hr = to_unit(batch["hr"]).to(dev)
            sr = super_resolve(generator, to_unit(batch["lr"]), flip_tta=options.flip_tta)
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
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in MEANS}
    return SrEvaluation(
        data=source.description, images=len(rows), skipped=[s.to_json() for s in skipped],
        weights=str(generator.source), scale=scale, hr_size=hr_size, lr_size=hr_size // scale,
        protocol=PROTOCOL, degradation=how.name, flip_tta=options.flip_tta, mean=mean,
        psnr_gain_db=mean["psnr_sr"] - mean["psnr_bicubic"],
        identity=judge.report() if judge is not None else None, per_image=rows,
    )  # fmt: skip


def _sr_pairs(
    data: Path, split: str, limit: int, hr_size: int, generator: LoadedModel, batch_size: int, how=CLEAN
):
    """(source, dataset, loader) of held-out (LR, HR) pairs made as `generator` expects, the LR
    faces degraded by `how`."""
    source = discover_faces(data, split)
    if limit:
        source.paths = source.paths[:limit]
    cfg = generator.config
    dataset = SRPairDataset(
        source, hr_size, cfg.scale, cfg.channels, augment=False, cache=False, degradation=how
    )
    workers = min(2, len(source.paths) // batch_size)
    loader = DataLoader(
        dataset, batch_size=batch_size, collate_fn=collate_skipping_failures, num_workers=workers
    )
    return source, dataset, loader


def compare_sr(options: CompareSrOptions, grid: bool = False, progress=None) -> SrComparison:
    """Several SR models of one scale on the same faces: PSNR/SSIM (and with `identity` the
    recogniser's view, `IdentityJudge`) for bicubic and each model, and with `grid` the first
    `grid_faces` faces as picture rows: LR (nearest) | bicubic | each model | HR."""
    dev = resolve_device(options.device)
    models = sr_models_from(options.models)
    generators = {name: load_generator(path, dev) for name, path in models.items()}
    configs = {(g.config.scale, g.config.channels) for g in generators.values()}
    if len(configs) != 1:
        raise SrferError("compare-sr compares models of one scale and channel count: give the ×8 model alone")
    first = next(iter(generators.values()))
    scale, hr_size = first.config.scale, first.contract["hr_size"]
    (how,) = degradations_of(options.degradation, sweep=False)
    source, _, loader = _sr_pairs(
        options.data, options.split, options.limit, hr_size, first, options.batch_size, how
    )
    judge = IdentityJudge(options.embed_weights, dev) if options.identity else None
    sums: dict[str, dict[str, float]] = {name: {"psnr": 0.0, "ssim": 0.0} for name in ("bicubic", *models)}
    seen, skipped, rows = 0, [], []
    grid_faces = options.grid_faces if grid else 0
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
        if len(rows) < grid_faces:
            lr_big = torch.nn.functional.interpolate(to_unit(batch["lr"]), size=hr.shape[-2:], mode="nearest")
            for i in range(min(len(hr), grid_faces - len(rows))):
                rows.append([lr_big[i], *(f[i].cpu() for f in faces.values()), hr[i].cpu()])
        seen += len(hr)
        if progress is not None:
            progress(seen)
    if not seen:
        raise SrferError(f"no usable images in {source.description} ({skip_summary(skipped)})")
    return SrComparison(
        data=source.description, images=seen, skipped=[s.to_json() for s in skipped],
        weights={name: str(g.source) for name, g in generators.items()}, scale=scale, hr_size=hr_size,
        lr_size=hr_size // scale, protocol=PROTOCOL, degradation=how.name,
        mean={name: {k: v / seen for k, v in m.items()} for name, m in sums.items()},
        identity=judge.report() if judge is not None else None, grid_rows=rows or None,
        grid_columns=[f"LR {hr_size // scale} px", "bicubic", *models, f"HR {hr_size} px"] if rows else None,
    )  # fmt: skip


class IdentityJudge:
    """What a face recogniser makes of SR faces: the embeddings of the HR, SR and bicubic faces
    (each aligned as the embedder's contract says, with the landmarks MTCNN finds on the HR
    face — the three are pixel-aligned), reported as the Fréchet distance of SR and of bicubic
    faces to the real ones (lower: closer to real faces as a population) and the mean squared
    distance of each face to its own HR face (lower: identity kept)."""

    def __init__(self, weights: Path | None, device: torch.device) -> None:
        self.embedder = load_embedder(weights, device)
        self.size = self.embedder.contract["crop_size"]
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
            embedded = self.embedder(chips.to(self.embedder.device)).float().cpu()
            self.embeddings.setdefault(name, []).append(embedded)

    def _chips(self, batch: torch.Tensor, marks) -> torch.Tensor:
        if marks is None or self.aligner is None:
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
