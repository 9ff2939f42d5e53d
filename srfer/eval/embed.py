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
from srfer.eval.bank import Probe, identity_banks, probes
from srfer.eval.metrics import verification_report
from srfer.eval.options import EmbedEvalOptions, degradations_of
from srfer.eval.pair_head import PairSetting, compare, probe_px
from srfer.eval.results import EmbedEvaluation, EmbedSweep
from srfer.eval.sweeps import check_sweep_sizes, column, feature_sr_column, route_restorer, x8_column
from srfer.infer.load import (
    embedder_aligner,
    embedder_threshold,
    load_embedder,
    load_verify_head,
)
from srfer.infer.routing import ROUTING
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
    ways = {name: (model, restore) for name, restore in restorers.items()}
    feature_sr = feature_sr_column(model, dev, o.feature_sr_weights, notes)
    if feature_sr is not None:  # the small face resized bicubically, restored inside the trunk
        ways["feature_sr"] = (feature_sr, Restorer())
    degradations = degradations_of(o.degradation, sweep=True)
    table: dict[str, list[float]] = {column(name, how): [] for how in degradations for name in ways}
    tar: dict[str, list[float]] = {name: [] for name in table}
    for s in sizes:
        if s >= size:  # full-size probes are not degraded: one pass serves every column
            full = _verify(model, dataset, pairs, dev, None, None, o.batch_size)
            results = dict.fromkeys(table, full)
        else:
            verified = {(name, how): _verify(net, dataset, pairs, dev, s, restore, o.batch_size, how)
                        for how in degradations for name, (net, restore) in ways.items()}  # fmt: skip
            results = {column(name, how): report for (name, how), report in verified.items()}
        for name in table:
            table[name].append(results[name]["accuracy"])
            tar[name].append(results[name]["tar_at_far_0.001"])
        if progress is not None:
            progress()
    sources = {f"{name}_weights": str(r.source) for name, r in restorers.items() if name != "bicubic"}
    if "feature_sr" in ways:
        sources["feature_sr_weights"] = str(ways["feature_sr"][0].source)
    weights = {"weights": str(model.source), "identity_sr_weights": None, **sources}
    return EmbedSweep(data=source.description, skipped=[s.to_json() for s in dataset.skipped], sizes=sizes,
                 accuracy=table, weights=weights, notes=notes, alignment=dataset.alignment,
                 pairs=len(pairs), tar_at_far_1e3=tar)  # fmt: skip


HEADS = ("tau", "learned")
ENROLMENTS = ("probe", "full")


def sweep_head(options: EmbedEvalOptions, sizes: list[int], progress=None) -> EmbedSweep:
    """Verification vs probe size with each probe restored as `predict` routes it: the shipped τ
    (one cut for every size), τ fitted on 9 folds per size (LFW protocol) and, with `--head
    learned`, the verification head's own decision; both faces at the probe size, or with
    `--enrol full` a full-size first face against the probe (a gallery's case)."""
    o = options
    if o.head not in HEADS or o.enrol not in ENROLMENTS:
        use = f"use --head {'|'.join(HEADS)}, --enrol {'|'.join(ENROLMENTS)}"
        raise SrferError(f"--head {o.head!r} --enrol {o.enrol!r}: {use}")
    if o.pairs is not None:
        raise SrferError("--pairs: the --head sweep draws its own pairs (use --n-pairs, --seed)")
    dev = resolve_device(o.device)
    model = load_embedder(o.weights, dev)
    head = load_verify_head(model, dev, o.head_weights, o.head) if o.head == "learned" else None
    size = model.contract["crop_size"]
    check_sweep_sizes(sizes, SMALLEST_PROBE, size)
    degradations = degradations_of(o.degradation, sweep=True)
    small = sorted({s for s in sizes if s < size}, reverse=True)
    restorer = route_restorer(model, o.sr_weights, o.x8_weights, o.feature_sr_weights)
    seen = probes(small, [how.name for how in degradations])
    bank = identity_banks(model, o.data, o.split, seen, restorer, o.banks, o.seed, o.limit)
    pairs = generate_pairs(bank.labels.tolist(), o.n_pairs, seed=o.seed)
    tau = embedder_threshold(model)
    names = [f"τ {tau:.4g}", "τ 10-fold"] + (["head"] if head is not None else [])
    accuracy: dict[str, list[float]] = {column(n, how): [] for how in degradations for n in names}
    tar: dict[str, list[float]] = {k: [] for k in accuracy}
    for s in sizes:
        for how in degradations:
            probe = Probe(None) if s >= size else Probe(s, how.name)
            setting = PairSetting(Probe(None) if o.enrol == "full" else probe, probe)
            report = compare(bank, pairs, setting, tau, head, size)
            decides = ROUTING.head_decides(*(probe_px(p, size) for p in (setting.first, setting.second)))
            answers = {names[0]: (report["tau"], "fixed_accuracy"), names[1]: (report["tau"], "accuracy")}
            if head is not None:  # as verify decides: τ where both faces are too large for SR
                answers["head"] = (report["head" if decides else "tau"], "fixed_accuracy")
            for name, (r, key) in answers.items():
                accuracy[column(name, how)].append(r[key])
                tar[column(name, how)].append(r["tar_at_far_0.001"])
        if progress is not None:
            progress()
    pairing = "first face at full size" if o.enrol == "full" else "both faces at the probe size"
    notes = [f"probes restored as predict routes them ({restorer.describe()}); {pairing}"]
    if head is not None:
        notes.append(f"head: as verify decides, τ for two faces of {ROUTING.head_below} px or more")
    weights = {"weights": str(model.source), "head_weights": str(head.source) if head else None}
    return EmbedSweep(data=o.data.as_posix(), skipped=[], sizes=sizes, accuracy=accuracy, weights=weights,
                      notes=notes, alignment=None, pairs=len(pairs), tar_at_far_1e3=tar)  # fmt: skip
