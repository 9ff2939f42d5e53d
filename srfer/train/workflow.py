"""`srfer pipeline train`: train every stage (`train.all_stages`), then the headline numbers of
each stage's best checkpoint on its validation split (`srfer.eval`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from srfer.core.console import info
from srfer.eval.embed import evaluate_embed
from srfer.eval.fer import evaluate_fer
from srfer.eval.options import EmbedEvalOptions, FerEvalOptions, SrEvalOptions
from srfer.eval.sr import evaluate_sr
from srfer.train.all_stages import train_all

SMOKE_EVALUATION_LIMIT = 256  # images per evaluation in the smoke profile: it checks set-up, not quality


def train_and_evaluate(
    data_root: Path, runs: Path, profile: str = "auto", device: str = "auto", vgg_weights: Path | None = None,
    evaluate: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Train (or resume) every stage, then evaluate each on its validation split."""
    results = train_all(data_root, runs, profile, device, vgg_weights)
    if evaluate:
        limit = SMOKE_EVALUATION_LIMIT if results["profile"] == "smoke" else 0
        results["evaluation"] = evaluate_all(data_root, runs, device, limit)
    return results


def evaluate_all(data_root: Path, runs: Path, device: str = "auto", limit: int = 0) -> dict[str, Any]:
    """The headline numbers of each stage's best checkpoint on its validation split (`limit`:
    about that many images each; 0: all), one progress line per evaluation."""
    names = ("sr_celeba_x4", "sr_fer2013_x4", "fer_mcnn_upscale", "embed_celeba", "sr_celeba_x4_identity")
    best = {name: runs / name / "best.safetensors" for name in names}
    celeba, fer = data_root / "celeba", data_root / "fer2013"
    info("[bold]evaluation[/bold]: SR on CelebA val")
    sr = evaluate_sr(SrEvalOptions(data=celeba, weights=best["sr_celeba_x4"], device=device, limit=limit))
    info("[bold]evaluation[/bold]: expression on FER2013 val, 12 px → SR")
    fer_options = FerEvalOptions(data=fer, weights=best["fer_mcnn_upscale"], device=device, upscale=True,
                                 sr_weights=best["sr_fer2013_x4"], limit=limit)  # fmt: skip
    expr = evaluate_fer(fer_options)
    identity = EmbedEvalOptions(
        data=celeba, split="val", weights=best["embed_celeba"], device=device, limit=limit
    )
    info("[bold]evaluation[/bold]: verification on CelebA val at 128 px")
    embed = evaluate_embed(identity)
    info("[bold]evaluation[/bold]: verification at 32 px → SR")
    embed_sr = evaluate_embed(dataclasses.replace(identity, upscale=True, sr_weights=best["sr_celeba_x4"]))
    info("[bold]evaluation[/bold]: verification at 32 px → identity-aware SR")
    embed_id_sr = evaluate_embed(
        dataclasses.replace(identity, upscale=True, sr_weights=best["sr_celeba_x4_identity"])
    )
    return {
        "sr_psnr_db": sr.mean["psnr_sr"], "bicubic_psnr_db": sr.mean["psnr_bicubic"],
        "fer_accuracy_12px_sr": expr.metrics["accuracy"], "fer_macro_f1_12px_sr": expr.metrics["macro_f1"],
        "verification_accuracy_128px": embed.metrics["accuracy"],
        "verification_accuracy_32px_sr": embed_sr.metrics["accuracy"],
        "verification_accuracy_32px_identity_sr": embed_id_sr.metrics["accuracy"],
    }  # fmt: skip
