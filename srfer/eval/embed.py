"""`eval-embed`: LFW-protocol verification (10-fold τ) of an embedder, and accuracy vs probe size."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from srfer.core.errors import SrferError
from srfer.core.imageio import skip_summary
from srfer.core.runtime import resolve_device
from srfer.core.weights import Weights
from srfer.data.degradations import CLEAN, LowResPath
from srfer.data.identity import FaceIdentityDataset, discover_identities, generate_pairs, read_lfw_pairs
from srfer.eval.metrics import verification_report
from srfer.eval.options import EmbedEvalOptions, degradations_of
from srfer.eval.results import EmbedEvaluation, EmbedSweep
from srfer.eval.sweeps import check_sweep_sizes, column, x8_column
from srfer.infer.load import embedder_aligner, load_embedder
from srfer.infer.run import Restorer, embed_all, inference_context, make_restorer, pair_distances

SMALLEST_PROBE = 8  # px


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
    model, dataset, pairs, device: torch.device, lr_size: int | None, restore, batch_size: int, how=CLEAN
) -> dict:
    loader = DataLoader(dataset, batch_size=batch_size)
    low_res = LowResPath(lr_size, restore, "", how) if lr_size else None
    embeddings = embed_all(model, loader, inference_context(device), low_res)
    return verification_report(*pair_distances(embeddings, pairs))


def evaluate_embed(options: EmbedEvalOptions) -> EmbedEvaluation:
    """LFW-protocol verification (10-fold τ) of an embedder on `data`, optionally on faces
    degraded to `lr_size` and restored (`limit`: about that many images, whole identities)."""
    o = options
    (how,) = degradations_of(o.degradation, sweep=False)
    dev = resolve_device(o.device)
    model = load_embedder(o.weights, dev)
    size = model.contract["crop_size"]
    source, dataset, pairs = _identity_eval_set(
        o.data, o.split, o.pairs, o.n_pairs, size, o.seed, o.limit, embedder_aligner(model)
    )
    restore = make_restorer(o.upscaler, dev, o.sr_weights, role=Weights.SR) if o.upscale else None
    report = _verify(model, dataset, pairs, dev, o.lr_size if o.upscale else None, restore, o.batch_size, how)
    protocol = f"{o.lr_size}px → {o.upscaler} → {size}px" if o.upscale else f"{size}px input"
    protocol += f" ({how.name} degradation)" if o.upscale and how is not CLEAN else ""
    return EmbedEvaluation(
        data=source.description, identities=len(source.names), images=len(dataset),
        skipped=[s.to_json() for s in dataset.skipped], alignment=dataset.alignment, notes=source.notes,
        weights=str(model.source), input=protocol,
        pairs_source=str(o.pairs) if o.pairs else f"generated (seed {o.seed})", metrics=report,
    )  # fmt: skip


def sweep_embed(options: EmbedEvalOptions, sizes: list[int], progress=None) -> EmbedSweep:
    """Verification accuracy vs probe size, same pairs: bicubic, the (PSNR) SR, the
    identity-aware SR and the ×8 SR (each SR takes the probe at its own size: 16 px → ×8 →
    128 px). Without `identity_sr_weights`/`x8_weights` and no shipped file, that column is
    left out (and said so in `notes`)."""
    o = options
    dev = resolve_device(o.device)
    model = load_embedder(o.weights, dev)
    size = model.contract["crop_size"]
    check_sweep_sizes(sizes, SMALLEST_PROBE, size)
    source, dataset, pairs = _identity_eval_set(
        o.data, o.split, o.pairs, o.n_pairs, size, o.seed, aligner=embedder_aligner(model)
    )
    restorers: dict[str, Restorer] = {
        "bicubic": Restorer(),
        "sr": make_restorer("sr", dev, o.sr_weights, role=Weights.SR),
    }
    notes: list[str] = []
    identity_sr = Weights.SR_IDENTITY.optional(o.identity_sr_weights)
    if identity_sr is not None:
        restorers["identity_sr"] = make_restorer("sr", dev, identity_sr, role=Weights.SR_IDENTITY)
    else:
        notes.append(f"no identity-aware SR column: {Weights.SR_IDENTITY.missing_note()}")
    restorers |= x8_column(dev, o.x8_weights, notes)
    degradations = degradations_of(o.degradation, sweep=True)
    table: dict[str, list[float]] = {column(name, how): [] for how in degradations for name in restorers}
    for s in sizes:
        if s >= size:  # full-size probes are not degraded: one pass serves every column
            accuracy = _verify(model, dataset, pairs, dev, None, None, o.batch_size)["accuracy"]
            results = dict.fromkeys(table, accuracy)
        else:
            verified = {(name, how): _verify(model, dataset, pairs, dev, s, restore, o.batch_size, how)
                        for how in degradations for name, restore in restorers.items()}  # fmt: skip
            results = {column(name, how): report["accuracy"] for (name, how), report in verified.items()}
        for name in table:
            table[name].append(results[name])
        if progress is not None:
            progress()
    sources = {f"{name}_weights": str(r.source) for name, r in restorers.items() if name != "bicubic"}
    weights = {"weights": str(model.source), "identity_sr_weights": None, **sources}
    return EmbedSweep(data=source.description, skipped=[s.to_json() for s in dataset.skipped], sizes=sizes,
                 accuracy=table, weights=weights, notes=notes, alignment=dataset.alignment,
                 pairs=len(pairs))  # fmt: skip
