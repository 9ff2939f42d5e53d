"""The options of `predict`, `upscale` and `enhance`, declared once: each field carries its default, help
and bounds; the CLI is generated from these classes (`srfer.cli.common.with_options`) and the
jobs read them. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srfer.core.errors import SrferError
from srfer.core.options import RUNTIME_HELP, check_runtime, option
from srfer.faces.framing import DET_THRESHOLD, FRAME_MARGIN, MIN_FACE, PNET_WINDOW
from srfer.infer.routing import ROUTING, SR_MODES

_X8 = ROUTING.x8_below
HEAD_CHOICES = ("auto", "learned", "tau")
VERIFY_HEAD_HELP = (
    "auto: the learned verification head (both embeddings and both faces' sizes) when one made for the "
    "embedder is shipped or given, else τ; learned: the head; tau: one cut on the squared L2 distance."
)
OVERWRITE_HELP = (
    "Replace files an earlier run left in --out (without it, such a run is refused before any work)."
)


@dataclass(kw_only=True)
class PredictOptions:
    """How `predict` treats each photo (the routing values: `srfer.infer.routing.ROUTING`)."""

    sr: str = option(
        "auto",
        f"auto: super-resolve faces under {ROUTING.sr_below} px (with the ×8 model under "
        f"{_X8.expression} px for the expression, {_X8.identity} px for the embedder); always; never.",
    )
    detect: bool = option(True, "--no-detect: each input is one face crop.")
    min_face: int = option(
        MIN_FACE, "Smallest face MTCNN looks for, in px (slower when low).", min=PNET_WINDOW
    )
    det_threshold: float = option(DET_THRESHOLD, "MTCNN's final-stage face probability threshold.")
    margin: float = option(FRAME_MARGIN, "Crop = (1 + margin) × the face box (training framing).", min=0.0)
    batch_size: int = option(16, "Images per batch.", min=1)
    threshold: float | None = option(None, "Gallery τ on squared L2 (default: the model's).")
    embeddings: bool = option(False, "Add each face's embedding to --json.", flags=("--embeddings",))
    tiny_expression: bool = option(
        True,
        f"Faces ≤ {ROUTING.tiny_up_to} px, and soft (blurred, compressed) faces ≤ {ROUTING.soft_up_to} px: "
        "expression from the grayscale FER SR + the classifier trained on such restored faces; sharp "
        f"faces ≤ {ROUTING.both_up_to} px: the mean of its answer and the default classifier's.",
    )
    x8: bool = option(True, "--no-x8: the ×4 SR for every face, the smallest too.")
    runtime: str = option("torch", RUNTIME_HELP)

    def __post_init__(self) -> None:
        if self.sr not in SR_MODES:
            raise SrferError(f"--sr {self.sr!r}: use one of {', '.join(SR_MODES)}")
        check_runtime(self.runtime)


@dataclass(kw_only=True)
class PredictWeights:
    """Checkpoints for `Predictor`; None = the shipped default for that role (the optional
    ones, the identity-aware SR, the ×8, the feature SR and the tiny-face path's, are left out
    when not shipped)."""

    sr_weights: Path | None = option(None, "SR checkpoint (default: the shipped CelebA ×4).")
    fer_weights: Path | None = option(
        None, "Expression checkpoint (default: shipped); a,b,c: the ensemble of those files (mean prob.)"
    )
    embed_weights: Path | None = option(None, "Embedder checkpoint (default: shipped).")
    identity_sr_weights: Path | None = option(
        None, "SR for the faces the embedder sees (default: the shipped identity-aware SR, if any)."
    )
    sr_x8_weights: Path | None = option(
        None,
        f"×8 SR for faces under {_X8.expression} / {_X8.identity} px (default: the shipped CelebA ×8).",
    )
    feature_sr_weights: Path | None = option(
        None,
        f"Feature-level SR inside the embedder for its sharp faces under {ROUTING.feature_sr_below} px "
        "(default: the shipped one, when made for the embedder; none: leave it out).",
    )
    fer_sr_weights: Path | None = option(None, "FER-domain SR for tiny faces (default: shipped).")
    upscale_fer_weights: Path | None = option(
        None, "Classifier for tiny faces, trained with train-fer --upscale (default: shipped)."
    )


@dataclass(kw_only=True)
class UpscaleOptions:
    """How `upscale` super-resolves face images."""

    weights: Path | None = option(None, "SR checkpoint (instead of a shipped --model).")
    model: str = option(
        "psnr",
        "Shipped SR: psnr (CelebA ×4, MSE), identity (×4, identity-aware, for aligned chips), "
        "gan (×4, SRGAN: sharper, less faithful), robust (×4, also trained on blurred, noisy, "
        "JPEG-compressed faces: for CCTV stills and thumbnails) or x8 (CelebA ×8, for faces of ~16 px).",
    )
    compare: bool = option(False, "Also write <stem>_compare.png: input | bicubic | SR.")
    flip_tta: bool = option(False, "Average with the mirrored face's result (2× the compute).")
    overwrite: bool = option(False, OVERWRITE_HELP)
    runtime: str = option("torch", RUNTIME_HELP)

    def __post_init__(self) -> None:
        check_runtime(self.runtime)


@dataclass(kw_only=True)
class EnhanceOptions:
    """How `enhance` upscales whole photos and restores their faces."""

    scale: int = option(4, "Upscaling factor of the photo: 2 or 4.")
    model: str = option(
        "psnr",
        "Shipped face SR: psnr (×4, MSE: closest to the truth), gan (×4, sharper), robust (×4, for "
        "blurred, noisy or JPEG-compressed photos), identity or x8.",
    )
    weights: Path | None = option(None, "Face SR checkpoint (instead of a shipped --model).")
    min_face: int = option(
        PNET_WINDOW, "Smallest face MTCNN looks for, in px of the input photo.", min=PNET_WINDOW
    )
    det_threshold: float = option(DET_THRESHOLD, "MTCNN's final-stage face probability threshold.")
    save_faces: bool = option(False, "Also write each restored face: <stem>_face<i>.png.")
    overwrite: bool = option(False, OVERWRITE_HELP)
    runtime: str = option("torch", RUNTIME_HELP)

    def __post_init__(self) -> None:
        check_runtime(self.runtime)
