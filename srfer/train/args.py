"""What every `srfer train-*` command takes: one dataclass per recipe, holding each option's
default, help and bounds. The CLI is generated from these classes and the recipes read them;
every run stores its own in its checkpoints (`train_args`). Imports no torch, so the CLI can
be built from them cheaply.

`EngineConfig` is what the engine needs (shared by every stage), `RunArgs` adds the data,
and each stage extends that; a stage re-declares a shared field to change its default or
help, or to hide it (`cli=False`, e.g. the embedder's batch is P×K).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srfer.core.errors import SrferError
from srfer.core.options import DEGRADATION_HELP, DEVICE_HELP, REQUIRED, SEED_HELP, option

RUN_FOLDER_HELP = "Run folder: checkpoints, metrics.jsonl, curves.png."
ACCURACY_PATIENCE_HELP = "Early stop after N epochs without val accuracy gain."
IDENTITY_DATA_HELP = "CelebA root (identity_CelebA.txt + partition file) or identity folders."


@dataclass(kw_only=True)
class EngineConfig:
    """The training engine's settings: every `train-*` command's shared options."""

    out: Path = option(REQUIRED, RUN_FOLDER_HELP)
    epochs: int = option(10, "Total epochs.", min=1)
    patience: int = option(0, "Early stop after N epochs without improvement (0: off).", min=0)
    batch_size: int = option(16, "Images per optimisation step.", min=1)
    epoch_size: int = option(0, "Samples per epoch (0: the whole training split).", min=0)
    workers: int = option(-1, "Loader workers (-1: one per spare core, ≤ 4).")
    device: str = option("auto", DEVICE_HELP)
    amp: bool = option(True, "bf16 autocast on CUDA and on CPUs with native bf16; else fp32.")
    resume: bool = option(False, "Continue the run in --out from last.safetensors.")
    save_every: int = option(0, "Also keep a checkpoint every N epochs.", min=0)
    seed: int = option(0, SEED_HELP)
    init: Path | None = option(
        None, "Start from these trained weights (fine-tuning); same architecture options."
    )


@dataclass(kw_only=True)
class RunArgs(EngineConfig):
    """A training run: the engine's settings and the data it reads."""

    data: Path = option(REQUIRED, "Training data root.")
    subset: int = option(
        0,
        "Use about N training and N validation images, spread over the data (0: all): a quick check.",
        min=0,
    )

    def start(self):
        """What every run does first: cheap checks (device, a writable run folder) before any
        data is decoded, and the seed, before the recipe builds (initialises) its networks.
        Returns the torch device (this rank's, under torchrun)."""
        from srfer.core.imageio import make_folder
        from srfer.core.runtime import resolve_device, seed_everything
        from srfer.train import distributed

        device = distributed.init(resolve_device(self.device))  # under torchrun: join the process group
        check_run_folder(Path(self.out), self.resume)
        make_folder(self.out)  # an unwritable run folder fails now, not after an epoch
        seed_everything(self.seed)
        return device

    def loads_foreign_start(self, options: str) -> bool:
        """Whether a run should load outside weights given through `options` (ImageNet,
        VGGFace2, ...): not when resuming (the checkpoint has its own), refused beside --init
        (two starting points; the later one would silently win)."""
        if self.init is not None:
            raise SrferError(f"{options} and --init both choose the starting weights: give one")
        return not self.resume

    def as_meta(self) -> dict[str, Any]:
        """JSON-ready copy for checkpoints."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


def parse_lr_sizes(text: str | int, low: int, high: int, option: str = "--lr-size") -> tuple[int, ...]:
    """`--lr-size 32` or `16,24,32` (one drawn per batch), each between low and high px."""
    try:
        sizes = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise SrferError(f"{option} {text!r}: expected sizes like 32 or 16,24,32") from None
    if not sizes or any(not low <= s <= high for s in sizes):
        raise SrferError(f"{option} {text!r}: sizes must be between {low} and {high} px")
    return sizes


def check_run_folder(out_dir: Path, resume: bool) -> None:
    """A run folder is resumed only on request and never silently overwritten."""
    last = out_dir / "last.safetensors"
    if resume and not last.is_file():
        raise SrferError(f"--resume: no {last} to resume from")
    if not resume and last.is_file():
        raise SrferError(f"{out_dir} already holds a run; pass --resume or choose another --out")


@dataclass(kw_only=True)
class SRTrainArgs(RunArgs):
    """`srfer train-sr`: SRResNet pre-training, then the SRGAN phase."""

    data: Path = option(REQUIRED, "CelebA root (img_align_celeba/ + partition file) or any face folder.")
    out: Path = option(REQUIRED, "Run folder: checkpoints, metrics.jsonl, samples/, curves.png.")
    epochs: int = option(10, "Total epochs (pre-training + adversarial).", min=1)
    pretrain_epochs: int = option(5, "Pixel-MSE (SRResNet) epochs before the GAN phase.", min=0)
    lr: float = option(1e-4, "Adam learning rate (betas 0.9, 0.999), cosine-annealed.")
    scale: int = option(4, "Upscaling factor: 2, 4 or 8.")
    hr_size: int = option(128, "HR crop size (center crop); LR is hr_size/scale.")
    channels: int = option(3, "3 (RGB) or 1 (grayscale).")
    arch: str = option(
        "srresnet",
        "Generator trunk: srresnet (SRGAN's residual blocks) or rrdb (ESRGAN's residual-in-residual "
        "dense blocks; one costs about ten residual blocks).",
    )
    blocks: int = option(16, "Trunk blocks: residual blocks, or RRDBs with --arch rrdb.", min=1)
    features: int = option(64, "Generator feature channels.", min=4)
    growth: int = option(32, "--arch rrdb: channels each dense-block convolution adds.", min=1)
    bicubic_skip: bool = option(False, "Learn a residual over bicubic (not in the seed; converges faster).")
    perceptual: str = option("vgg19", "Content loss backbone: vgg19, none or ckpt:PATH.")
    vgg_weights: Path | None = option(None, "torchvision VGG19 state dict (offline use).")
    content_weight: float = option(0.006, "Weight of the perceptual MSE (SRGAN: 0.006).")
    content_layer: int = option(
        -1,
        "Which of the backbone's feature maps the content loss compares, shallow to deep "
        "(-1: the deepest, SRGAN's φ5,4; the dlib ResNet's four stages are 0 … 3).",
    )
    adversarial_weight: float = option(
        1e-3, "Weight of the adversarial BCE (0: no discriminator is trained)."
    )
    pixel_weight: float = option(0.0, "Weight of a pixel MSE term in the GAN phase.")
    texture_weight: float = option(0.0, "Weight of the Gram-matrix texture loss.")
    lr_sizes: str = option(
        "", "LR face sizes drawn per step, e.g. 32,16 (target: HR resized to size × scale)."
    )
    degradation: str = option("clean", DEGRADATION_HELP)
    identity_weight: float = option(
        0.0,
        "Weight of ‖e(SR) − e(HR)‖² with --perceptual ckpt:<face embedder> (identity-aware SR); "
        "best.safetensors is then the identity-closest epoch.",
    )
    align_to: Path | None = option(
        None,
        "Frame the faces as this face embedder's file says (5-point MTCNN alignment onto its template, "
        "e.g. weights/embed_dlib_resnet29.safetensors) instead of centre crops: SR for an aligning "
        "recogniser, which then sees the faces it was trained on.",
    )
    val_limit: int = option(0, "Validate on the first N val images only (0: all).", min=0)
    cache: bool = option(True, "Decode every crop once into memory.")
    patience: int = option(0, "Early stop after N epochs without PSNR gain (0: off).", min=0)


@dataclass(kw_only=True)
class FerTrainArgs(RunArgs):
    """`srfer train-fer`: the expression classifier."""

    data: Path = option(REQUIRED, "FER2013 root (train/ val/), a split folder, or fer2013.csv.")
    ferplus: Path | None = option(None, "fer2013new.csv: FER+ majority-vote labels (with a CSV).")
    targets: str = option(
        "majority",
        "FER+ data (8 classes): train on the majority label, or on the voters' distribution (votes: "
        "cross-entropy to soft targets). Validation always scores the majority label.",
    )
    arch: str = option("mcnn", "The network.", choices="srfer.models.fer:FER_BACKBONES")
    width: int = option(32, "mcnn branch width (first stage channels).", min=4)
    pretrained: bool = option(
        False,
        "Start from pretrained weights: torchvision archs from ImageNet's (hub cache or download), "
        "dlib-resnet29 from dlib's own face recogniser (weights/embed_dlib_resnet29.safetensors).",
        flags=("--pretrained",),
    )
    backbone_weights: Path | None = option(
        None,
        "--pretrained from this file: torchvision's ImageNet state dict for --arch (.pth/.safetensors), "
        "or for dlib-resnet29 a srfer face-embedder file of that network or a dlib-resnet29 expression "
        "classifier (its trunk; the head starts new, e.g. FER2013 → FER+).",
    )
    trunk_size: int = option(112, "dlib-resnet29: faces are resized to this before the trunk.", min=64)
    shared_stages: int = option(
        0,
        "dlib-resnet29: share the stem and the first N stages (1-4) with a face recogniser: copied from "
        "--share-trunk-with and frozen, so `predict` could run them once for both heads (the trunk "
        "size is then the recogniser's input size).",
        min=0, max=4,
    )  # fmt: skip
    share_trunk_with: Path | None = option(
        None, "With --shared-stages: the face-embedder file to share with (default: the shipped embedder)."
    )
    trunk_lr: float = option(
        1.0,
        "Learning rate of a pretrained trunk as a fraction of --lr (discriminative fine-tuning).",
        min=0.0,
    )
    epochs: int = option(300, "Maximum epochs (early stopping usually ends sooner).", min=1)
    patience: int = option(10, ACCURACY_PATIENCE_HELP, min=0)
    batch_size: int = option(64, "Images per optimisation step.", min=1)
    lr: float = option(1e-3, "Adam learning rate, cosine-annealed.")
    loss: str = option("ce", "ce (cross-entropy) or focal.")
    label_smoothing: float = option(0.0, "Cross-entropy label smoothing.", min=0.0, max=0.5)
    gamma: float = option(2.0, "Focal loss γ.", min=0.0)
    alpha: str = option("auto", "Focal loss α: auto (inverse class frequency) or none.")
    balanced: bool = option(False, "Class-balanced sampling.")
    random_erasing: float = option(
        0.0, "Probability of erasing a random rectangle of each training face (Zhong et al. 2020).",
        min=0.0, max=1.0,
    )  # fmt: skip
    mixup: float = option(
        0.0, "mixup α: train on convex mixes of face pairs and of their labels (0: off).", min=0.0
    )
    distill_from: Path | None = option(
        None,
        "Knowledge distillation: teacher classifier file(s) a,b,c; the target of each training face "
        "mixes its label with the teachers' mean probabilities on it (computed once, cached in --out).",
    )
    distill_weight: float = option(
        0.5, "With --distill-from: the teachers' share of the target (the rest: the label).", min=0.0, max=1.0
    )
    distill_temperature: float = option(
        2.0, "With --distill-from: softens the teachers' probabilities (softmax(log p / T)).", min=0.1
    )
    distill_flip: bool = option(True, "With --distill-from: the teachers answer with flip TTA.")
    upscale: bool = option(False, "Train on faces degraded to --lr-size and restored.", flags=("--upscale",))
    upscaler: str = option("sr", "With --upscale: sr (frozen SR generator) or bicubic.")
    lr_size: str = option(
        "12",
        "With --upscale: the low resolution in px (48 px faces: ×4 → 12), or several (12,16), one per batch.",
    )
    sr_weights: Path | None = option(None, "SR checkpoint for --upscaler sr (default: shipped FER SR).")
    degradation: str = option("clean", "With --upscale: " + DEGRADATION_HELP)


@dataclass(kw_only=True)
class EmbedTrainArgs(RunArgs):
    """`srfer train-embed`: the triplet-loss face embedder."""

    data: Path = option(REQUIRED, IDENTITY_DATA_HELP)
    backbone: str = option("face-resnet", "The network.", choices="srfer.models.embedder:EMBEDDER_BACKBONES")
    pretrained: str | None = option(None, "inception-resnet-v1 only: vggface2 or casia-webface.")
    backbone_weights: Path | None = option(None, "facenet-pytorch weights file (offline use).")
    dim: int = option(128, "Embedding size (face-resnet).", min=8)
    size: int = option(128, "Face crop size in px (the SR output size).", min=32)
    input_size: int = option(
        0, "face-resnet: resize crops to this before the network (0: --size); 64 is ~4× cheaper.", min=0
    )
    epochs: int = option(50, "Maximum epochs (early stopping usually ends sooner).", min=1)
    patience: int = option(10, ACCURACY_PATIENCE_HELP, min=0)
    batch_size: int = option(64, cli=False)  # a batch is P × K (--p, --k)
    p: int = option(16, "Identities per batch (P×K sampling).", flags=("--p",), min=2)
    k: int = option(4, "Images per identity per batch.", flags=("--k",), min=2)
    lr: float = option(3e-4, "Adam learning rate, cosine-annealed.")
    margin: float = option(0.2, "Triplet margin α.", min=0.0)
    mining: str = option("semi-hard", "semi-hard (FaceNet), batch-hard or all.")
    upscale: bool = option(False, "Train on faces degraded to --lr-size and restored.", flags=("--upscale",))
    upscaler: str = option("sr", "With --upscale: sr or bicubic.")
    lr_size: str = option("32", "With --upscale: px, or several (16,24,32) drawn per batch.")
    sr_weights: Path | None = option(None, "SR checkpoint (default: the shipped CelebA ×4).")
    degradation: str = option("clean", "With --upscale: " + DEGRADATION_HELP)
    epoch_size: int = option(0, "Images per epoch (0: the training split's size).", min=0)
    distill_weight: float = option(
        0.0,
        "With --init: weight of a distillation term pulling each (degraded) face's embedding towards "
        "the frozen --init network's embedding of the same face at full size (0: off).",
        min=0.0,
    )


@dataclass(kw_only=True)
class FrozenEmbedderArgs(RunArgs):
    """A run that trains something on or in a frozen embedder (identity data)."""

    data: Path = option(REQUIRED, IDENTITY_DATA_HELP)
    embed_weights: Path | None = option(
        None, "The frozen embedder it learns with (default: shipped; feature SR: a dlib-resnet29 one)."
    )


@dataclass(kw_only=True)
class VerifyHeadTrainArgs(FrozenEmbedderArgs):
    """`srfer train-verify-head`: the learned verification head on a frozen embedder's embeddings."""

    sizes: str = option(
        "12,16,24,32",
        "Probe sizes in px each face is also seen at (degraded, then restored as predict routes it).",
    )
    degradation: str = option("clean,realistic", "Comma-separated: " + DEGRADATION_HELP)
    pairs: int = option(
        48000, "Training pairs (half genuine, half impostor; each seen at every two probes).", min=2
    )
    val_pairs: int = option(6000, "Validation pairs (eval-embed's: same seed, same count).", min=2)
    hidden: int = option(0, "0: a logistic unit; else an MLP with one hidden layer of this width.", min=0)
    per_dim: bool = option(
        False,
        "Also |f1 − f2| per dimension (default: only the distance d and the sizes, a size-dependent τ).",
    )
    chi2: bool = option(True, "With --per-dim, also the χ² terms (f1 − f2)² / (|f1| + |f2|).")
    face_sizes: bool = option(
        True, "Also the two faces' sizes, encoded at --sizes and full size (the point)."
    )
    banks: Path | None = option(
        None, "Folder of the embedding banks (default: <out>/banks); reused when made the same way."
    )
    batch_size: int = option(1024, "Pairs per optimisation step.", min=1)
    epoch_size: int = option(262144, "Pairs per epoch (drawn from pairs × probes × probes).", min=0)
    epochs: int = option(12, "Total epochs.", min=1)
    lr: float = option(3e-3, "Adam learning rate, cosine-annealed.")
    weight_decay: float = option(1e-4, "Adam weight decay.", min=0.0)
    workers: int = option(0, "Loader workers (the pairs are in memory: 0 is fastest).")
    amp: bool = option(False, "bf16 autocast (the head is tiny: fp32).")


@dataclass(kw_only=True)
class FeatureSRTrainArgs(FrozenEmbedderArgs):
    """`srfer train-feature-sr`: a feature-level SR generator inside the frozen face recogniser."""

    branch: int = option(
        1, "After which stage of the trunk the generator runs (1: 32×35², 2: 64×17²).", min=1
    )
    width: int = option(64, "The generator's channels.", min=4)
    blocks: int = option(4, "The generator's residual blocks.", min=1)
    lr_size: str = option("12,16,24", "Probe sizes in px, one drawn per batch (degraded, then bicubic back).")
    degradation: str = option("mixed", DEGRADATION_HELP)
    map_weight: float = option(
        1.0, "Weight of the L2 to the full-size face's maps (relative to their energy).", min=0.0
    )
    embed_weight: float = option(
        1.0, "Weight of the squared L2 between the embedding it leads to and the full-size face's.", min=0.0
    )
    batch_size: int = option(32, "Faces per optimisation step.", min=1)
    epochs: int = option(8, "Total epochs.", min=1)
    lr: float = option(1e-3, "Adam learning rate, cosine-annealed.")
