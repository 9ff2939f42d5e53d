"""The options of `eval-sr`, `compare-sr`, `eval-fer` and `eval-embed`, declared once: each field
carries its default, help and bounds; the CLI is generated from these classes and the
evaluations read them. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srfer.core.options import DEGRADATION_HELP, REQUIRED, SEED_HELP, device_option, option

SPLIT_HELP = "train, val, test or all."
UPSCALE_HELP = "Evaluate on faces degraded to --lr-size and restored."
UPSCALER_HELP = "With --upscale: sr or bicubic."
LR_SIZE_HELP = "With --upscale: the low resolution in px."
X8_HELP = "With --sweep: the ×8 SR of the x8_sr column (default: the shipped ×8; none: leave it out)."
RECOGNISER_HELP = "The recogniser for --identity (default: shipped)."
SWEEP_DEGRADATION_HELP = (
    DEGRADATION_HELP + " A sweep takes several, comma-separated, side by side (default clean,realistic; "
    "one evaluation: clean)."
)
HEAD_HELP = (
    "With --sweep: tau or learned. Both restore each probe as predict routes it (soft faces bicubic, else "
    "SR) and compare the shipped τ (and τ fitted on 9 folds) with, for learned, the verification head "
    "(pairs scored from both embeddings and both faces' sizes)."
)
ENROL_HELP = (
    "With --head: probe (both faces of a pair at the probe size) or full (the first at full size, as a "
    "gallery's enrolment, the second at the probe size)."
)
BANKS_HELP = (
    "With --head: keep the probes' embeddings in this folder and reuse them (train-verify-head's banks)."
)
IDENTITY_HELP = (
    "Also embed HR, SR and bicubic faces with the face recogniser: Fréchet distance to the real "
    "faces and distance to each face's own HR embedding (lower is better)."
)


@dataclass(kw_only=True)
class SrEvalOptions:
    """`eval-sr`: PSNR/SSIM of one SR model vs bicubic."""

    data: Path = option(REQUIRED, "CelebA root or face folder.")
    split: str = option("val", SPLIT_HELP)
    weights: Path | None = option(None, "SR checkpoint (default: the shipped model).")
    limit: int = option(0, "Evaluate the first N images only (0: all).", min=0)
    hr_size: int | None = option(None, "HR crop size (default: the checkpoint's).")
    flip_tta: bool = option(False, "Average with the mirrored face's result (2× the compute).")
    identity: bool = option(False, IDENTITY_HELP)
    embed_weights: Path | None = option(None, RECOGNISER_HELP)
    degradation: str = option("clean", DEGRADATION_HELP)
    batch_size: int = option(32, "Images per batch.", min=1)
    device: str = device_option()


@dataclass(kw_only=True)
class CompareSrOptions:
    """`compare-sr`: several SR models of one scale on the same faces."""

    data: Path = option(REQUIRED, "CelebA root or face folder.")
    models: str = option(
        "psnr,identity,gan",
        "Comma-separated shipped names (psnr, identity, gan; x8 alone) or checkpoint paths.",
    )
    split: str = option("val", SPLIT_HELP)
    limit: int = option(0, "The first N images only (0: all).", min=0)
    identity: bool = option(
        False, "Also the face recogniser's view: Fréchet distance to real faces, distance to own HR."
    )
    embed_weights: Path | None = option(None, RECOGNISER_HELP)
    grid_faces: int = option(6, "Rows (faces) of --grid.", min=1)
    degradation: str = option("clean", DEGRADATION_HELP)
    batch_size: int = option(32, "Images per batch.", min=1)
    device: str = device_option()


@dataclass(kw_only=True)
class FerEvalOptions:
    """`eval-fer`: one classifier's metrics, or accuracy vs face size (`sweep_fer`)."""

    data: Path = option(REQUIRED, "FER2013 root (with --split), a split folder, or fer2013.csv.")
    split: str = option("val", "train, val or test.")
    ferplus: Path | None = option(None, "fer2013new.csv for FER+ labels (with a CSV).")
    weights: Path | None = option(
        None, "Classifier checkpoint (default: the shipped one); a,b,c: the ensemble of those files."
    )
    upscale: bool = option(False, UPSCALE_HELP, flags=("--upscale",))
    upscaler: str = option("sr", UPSCALER_HELP)
    lr_size: int = option(12, LR_SIZE_HELP)
    sr_weights: Path | None = option(None, "SR checkpoint (default: the shipped FER SR).")
    upscale_weights: Path | None = option(None, "With --sweep: the --upscale-trained classifier.")
    x8_weights: Path | None = option(None, X8_HELP)
    flip_tta: bool = option(False, "Average each face's probabilities with its mirror's (not with --sweep).")
    limit: int = option(0, "About N faces, spread over the classes (0: all); not with --sweep.", min=0)
    degradation: str = option("", SWEEP_DEGRADATION_HELP)
    batch_size: int = option(256, "Images per batch.", min=1)
    device: str = device_option()


@dataclass(kw_only=True)
class EmbedEvalOptions:
    """`eval-embed`: verification (1:1) of one embedder, or accuracy vs probe size (`sweep_embed`)."""

    data: Path = option(REQUIRED, "CelebA root or identity folders (LFW layout).")
    split: str = option("all", "all, or CelebA's/a seeded split: train, val, test.")
    pairs: Path | None = option(None, "LFW pairs.txt (default: balanced seeded pairs).")
    n_pairs: int = option(6000, "Generated pairs (without --pairs).", min=20)
    weights: Path | None = option(None, "Embedder checkpoint (default: the shipped one).")
    upscale: bool = option(False, "Probe faces degraded to --lr-size and restored.", flags=("--upscale",))
    upscaler: str = option("sr", UPSCALER_HELP)
    lr_size: int = option(32, LR_SIZE_HELP)
    sr_weights: Path | None = option(None, "SR checkpoint (default: the shipped CelebA ×4).")
    identity_sr_weights: Path | None = option(
        None, "With --sweep: the identity-aware SR for a third column (default: the shipped one)."
    )
    x8_weights: Path | None = option(None, X8_HELP)
    feature_sr_weights: Path | None = option(
        None,
        "With --sweep: the feature-level SR of the feature_sr column, and of the route --head measures "
        "(default: shipped; none: leave it out).",
    )
    limit: int = option(0, "About N images, whole identities spread over all (0: all).", min=0)
    degradation: str = option("", SWEEP_DEGRADATION_HELP)
    head: str = option("", HEAD_HELP)
    head_weights: Path | None = option(
        None, "With --head learned: the head's file (default: the shipped one)."
    )
    enrol: str = option("probe", ENROL_HELP)
    banks: Path | None = option(None, BANKS_HELP)
    batch_size: int = option(128, "Images per batch.", min=1)
    device: str = device_option()
    seed: int = option(0, SEED_HELP)


def degradations_of(spec: str, sweep: bool) -> list:
    """`--degradation` as the models it names: one for an evaluation, one or more for a sweep
    (both by default there, side by side)."""
    from srfer.core.errors import SrferError
    from srfer.data.degradations import degradation

    names = [n.strip() for n in (spec or ("clean,realistic" if sweep else "clean")).split(",") if n.strip()]
    if not sweep and len(names) != 1:
        raise SrferError(
            f"--degradation {spec!r}: one evaluation takes one degradation (a --sweep takes several)"
        )
    return [degradation(n) for n in names]
