"""Every training stage in dependency order, each resumable (`srfer pipeline train`,
which then evaluates them: `srfer.train.workflow`). Stage recipes are the per-stage commands'
own argument classes, so this file only decides *which* arguments (a CPU-sized profile,
or the seed's full recipes).

Order: CelebA ×4 SR → FER-domain gray 12→48 SR → expression classifier trained on
SR-restored 12 px faces (`--upscale sr`, using the SR just trained) → face embedder →
identity-aware SR (the CelebA SR fine-tuned with the embedder's identity loss).
A stage whose run folder already holds a checkpoint is resumed (a finished one returns at
once), so re-running the command after an interruption continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srfer.core.console import info
from srfer.core.errors import SrferError
from srfer.core.runtime import resolve_device

PROFILES = ("auto", "cpu", "full", "smoke")
SMOKE_SUBSET = 256  # images per split in the smoke profile (whole identities for the embedder)


@dataclass
class Stage:
    name: str
    run: str  # run folder name under --runs
    train: Callable[[Any], dict[str, Any]]
    args: Any


def _stages(root: Path, runs: Path, profile: str, device: str, vgg_weights: Path | None) -> list[Stage]:
    from srfer.train.args import EmbedTrainArgs, FerTrainArgs, SRTrainArgs
    from srfer.train.embed import train_embed
    from srfer.train.fer import train_fer
    from srfer.train.sr import train_sr

    celeba, fer = root / "celeba", root / "fer2013"
    common = {"device": device, "seed": 0}
    sr_fer_best = runs / "sr_fer2013_x4" / "best.safetensors"
    identity = {  # fine-tunes the CelebA SR through the embedder trained just before
        "data": celeba, "out": runs / "sr_celeba_x4_identity",
        "init": runs / "sr_celeba_x4" / "best.safetensors",
        "perceptual": f"ckpt:{runs / 'embed_celeba' / 'best.safetensors'}", "pretrain_epochs": 0,
        "identity_weight": 0.5, "pixel_weight": 1.0, "content_weight": 0.0, "lr": 3e-5, **common,
    }  # fmt: skip
    if profile in ("cpu", "smoke"):  # what fits a 2-core CPU in about 4 hours (README: measured times)
        sr = SRTrainArgs(data=celeba, out=runs / "sr_celeba_x4", epochs=19, pretrain_epochs=19,
                         epoch_size=3008, val_limit=320, lr=3e-4, **common)  # fmt: skip
        sr_fer = SRTrainArgs(data=fer, out=runs / "sr_fer2013_x4", channels=1, hr_size=48, epochs=6,
                             pretrain_epochs=6, epoch_size=8192, val_limit=512, lr=3e-4, batch_size=32,
                             **common)  # fmt: skip
        expr = FerTrainArgs(data=fer, out=runs / "fer_mcnn_upscale", width=16, epochs=14, upscale=True,
                            sr_weights=sr_fer_best, **common)  # fmt: skip
        embed = EmbedTrainArgs(data=celeba, out=runs / "embed_celeba", input_size=64, epochs=40, **common)
        sr_id = SRTrainArgs(epochs=16, epoch_size=1024, val_limit=300, adversarial_weight=0.0, **identity)
    else:  # the seed recipes: SRResNet then SRGAN with VGG19 content loss, 300-epoch FER, 128 px embedder
        sr = SRTrainArgs(data=celeba, out=runs / "sr_celeba_x4", epochs=30, pretrain_epochs=10,
                         vgg_weights=vgg_weights, **common)  # fmt: skip
        sr_fer = SRTrainArgs(data=fer, out=runs / "sr_fer2013_x4", channels=1, hr_size=48, epochs=20,
                             pretrain_epochs=20, lr=3e-4, batch_size=64, **common)  # fmt: skip
        expr = FerTrainArgs(data=fer, out=runs / "fer_mcnn_upscale", upscale=True, sr_weights=sr_fer_best,
                            **common)  # fmt: skip
        embed = EmbedTrainArgs(data=celeba, out=runs / "embed_celeba", epochs=50, **common)
        sr_id = SRTrainArgs(epochs=10, vgg_weights=vgg_weights, **identity)  # with the adversarial term
    if profile == "smoke":  # tiny networks, one short epoch per stage on a few hundred images: checks set-up
        for args in (sr, sr_fer, expr, embed, sr_id):
            args.epochs, args.epoch_size, args.subset = 1, 32, SMOKE_SUBSET
        for args in (sr, sr_fer, sr_id):
            args.pretrain_epochs, args.val_limit, args.blocks, args.features = 1, 32, 1, 8
        sr_id.pretrain_epochs = 0
        expr.width = 4
        embed.p, embed.k, embed.input_size = 8, 2, 32
    return [
        Stage("super-resolution (CelebA ×4)", "sr_celeba_x4", train_sr, sr),
        Stage("super-resolution (FER2013 gray ×4)", "sr_fer2013_x4", train_sr, sr_fer),
        Stage("expression (12 px → SR → 48 px)", "fer_mcnn_upscale", train_fer, expr),
        Stage("identity embedder", "embed_celeba", train_embed, embed),
        Stage("identity-aware super-resolution", "sr_celeba_x4_identity", train_sr, sr_id),
    ]


def pick_profile(profile: str, device: str) -> str:
    if profile not in PROFILES:
        raise SrferError(f"--profile {profile!r}: use one of {', '.join(PROFILES)}")
    if profile != "auto":
        return profile
    return "full" if resolve_device(device).type == "cuda" else "cpu"


def train_all(
    data_root: Path, runs: Path, profile: str = "auto", device: str = "auto", vgg_weights: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train (or resume) every stage; returns the profile and each stage's best record."""
    for needed in ("celeba", "fer2013"):
        if not (data_root / needed).is_dir():
            raise SrferError(f"{data_root / needed}: not found (--data-root holds celeba/ and fer2013/)")
    profile = pick_profile(profile, device)
    results: dict[str, Any] = {"profile": profile, "stages": {}}
    for stage in _stages(data_root, runs, profile, device, vgg_weights):
        stage.args.resume = (stage.args.out / "last.safetensors").is_file()
        info(f"[bold]{stage.name}[/bold] → {stage.args.out}" + (" (resuming)" if stage.args.resume else ""))
        results["stages"][stage.run] = stage.train(stage.args)
    return results
