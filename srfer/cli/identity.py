"""Identity commands: `train-embed`, `eval-embed`, `enroll`, `identify`, `gallery`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from srfer.cli.common import (
    AsJson,
    Device,
    PlotDir,
    app,
    command_group,
    friendly_errors,
    parse_sizes,
    prepare_plot_dir,
    print_json,
    print_notes,
    report_fallbacks,
    report_skipped,
    show_sweep,
    stdout,
    training_command,
    with_options,
    with_progress,
)
from srfer.core.errors import SrferError
from srfer.core.options import GALLERY_HELP
from srfer.eval.options import EmbedEvalOptions
from srfer.infer.options import VERIFY_HEAD_HELP
from srfer.train.args import EmbedTrainArgs, FeatureSRTrainArgs, VerifyHeadTrainArgs

training_command(
    "train-embed", EmbedTrainArgs, "srfer.train.embed:train_embed",
    "Train the triplet-loss face embedder (FaceNet-style, online mining over P×K batches).",
)  # fmt: skip
training_command(
    "train-feature-sr", FeatureSRTrainArgs, "srfer.train.feature_sr:train_feature_sr",
    "Train feature-level SR: a small generator that restores a small face's maps inside the recogniser.",
)  # fmt: skip
training_command(
    "train-verify-head", VerifyHeadTrainArgs, "srfer.train.verify_head:train_verify_head",
    "Train the learned verification head: a logistic unit on two faces' embeddings and sizes.",
)  # fmt: skip


@app.command("eval-embed")
@friendly_errors
@with_options(options=EmbedEvalOptions)
def eval_embed_command(
    sweep: str | None = typer.Option(None, help="Comma-separated probe sizes, e.g. 128,64,32,24,16."),
    save_dir: PlotDir = None,
    as_json: AsJson = False,
    *,
    options: EmbedEvalOptions,
) -> None:
    """Verification (1:1): 10-fold accuracy ± std, ROC AUC, EER, TAR@FAR; or a size sweep."""
    from srfer.core import plots
    from srfer.eval.embed import evaluate_embed, sweep_embed, sweep_head

    prepare_plot_dir(save_dir)
    if options.head and not sweep:
        raise SrferError("--head compares τ and the head across sizes: give --sweep (e.g. 128,32,24,16)")
    if sweep:
        sizes = parse_sizes(sweep, "128,64,32")
        run = sweep_head if options.head else sweep_embed
        result = with_progress("sweeping", len(sizes), lambda advance: run(options, sizes, advance))
        show_sweep(result, save_dir, as_json, "verification accuracy vs probe size")
        return
    result = evaluate_embed(options)
    m = result.metrics
    if save_dir is not None:
        roc = {"verification": m["roc"]}
        result.plot = str(
            plots.plot_roc(roc, {"verification": m["roc_auc"]}, save_dir / "roc.png", result.input)
        )
    if as_json:
        print_json(result.to_dict())
        return
    stdout.print(f"{m['pairs']} pairs · {result.identities} identities · {result.input} · {result.data}")
    stdout.print(f"accuracy {m['accuracy']:.2%} ± {m['accuracy_std']:.2%} (10-fold) · "
              f"ROC AUC {m['roc_auc']:.4f} · EER {m['eer']:.2%} · "
              f"TAR@FAR=1e-3 {m['tar_at_far_0.001']:.2%} · "
              f"TAR@FAR=1e-2 {m['tar_at_far_0.01']:.2%} · "
              f"τ {m['threshold']:.4f}")  # fmt: skip
    if result.alignment:
        a = result.alignment
        stdout.print(f"aligned onto {a['template']}: {a['aligned_by_landmarks']} by landmarks, "
                     f"{a['fallback_centre_crop']} by the centre-crop fallback")  # fmt: skip
    print_notes(result.to_dict())


@app.command("enroll")
@friendly_errors
def enroll_command(
    name: str = typer.Argument(..., help="The identity's name."),
    images: list[str] = typer.Argument(..., help="Face crops of that person: files, folders or globs."),
    gallery: str = typer.Option(..., help=GALLERY_HELP + " Created if missing."),
    weights: Path | None = typer.Option(None, help="Embedder checkpoint (default: the shipped one)."),
    device: Device = "auto",
) -> None:
    """Add a person's face embeddings to a gallery (for `srfer identify`)."""
    from srfer.core.imageio import expand_inputs
    from srfer.infer.identify import enroll

    report = enroll(name, expand_inputs(images), gallery, weights, device)
    report_skipped(report.failed)
    report_fallbacks(report.fallbacks)
    if not report.added:
        raise SrferError(f"no usable face image for {name!r}")
    stdout.print(f"enrolled {name!r}: {report.added} embedding(s) in {gallery}")


@app.command("verify")
@friendly_errors
def verify_command(
    image_a: str = typer.Argument(..., help="A photo or face crop (its largest face is compared)."),
    image_b: str = typer.Argument(..., help="The other photo or face crop."),
    head: str = typer.Option("auto", help=VERIFY_HEAD_HELP),
    threshold: float | None = typer.Option(
        None, help="τ on squared L2 distance: τ decides (default: the model's)."
    ),
    head_weights: Path | None = typer.Option(
        None, help="The learned head's file (default: the shipped one)."
    ),
    weights: Path | None = typer.Option(None, help="Embedder checkpoint (default: shipped)."),
    detect: bool = typer.Option(True, help="--no-detect: each input is one face crop."),
    device: Device = "auto",
    as_json: AsJson = False,
) -> None:
    """1:1 verification: whether the largest faces of two photos are the same person."""
    from srfer.infer.api import verify
    from srfer.infer.options import PredictWeights

    result = verify(image_a, image_b, head=head, threshold=threshold, head_weights=head_weights,
                    device=device, weights=PredictWeights(embed_weights=weights), detect=detect)  # fmt: skip
    if as_json:
        print_json(result.to_dict())
    else:
        a, b = result.faces
        how = (f"head p = {result.probability:.3f}, d = {result.distance:.4f}" if result.decided_by == "head"
               else f"d = {result.distance:.4f}, τ = {result.threshold:.4f}")  # fmt: skip
        verdict = "same person" if result.same else "different people"
        stdout.print(f"{verdict} ({how}; faces {a.face_px} px and {b.face_px} px)")


@app.command("identify")
@friendly_errors
def identify_command(
    images: list[str] = typer.Argument(..., help="Face crops to identify: files, folders or globs."),
    gallery: str = typer.Option(..., help=GALLERY_HELP),
    weights: Path | None = typer.Option(None, help="Embedder checkpoint (must be the gallery's model)."),
    threshold: float | None = typer.Option(None, help="τ on squared L2 distance (default: the model's)."),
    device: Device = "auto",
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image."),
) -> None:
    """1:N identification: the nearest enrolled identity, or "unknown" beyond τ."""
    from srfer.core.imageio import expand_inputs
    from srfer.infer.identify import identify

    report = identify(expand_inputs(images), gallery, weights, threshold, device)
    report_skipped(report.failed, as_json)
    report_fallbacks(report.fallbacks)
    for path, match in report.matches:
        if as_json:
            typer.echo(json.dumps({"image": str(path), "identity": match.name, "nearest": match.nearest,
                                   "distance": match.distance, "threshold": match.threshold}))  # fmt: skip
        else:
            stdout.print(
                f"{path}: {match.name} (nearest {match.nearest}, d = {match.distance:.4f}, "
                f"τ = {report.threshold:.4f})"
            )
    if not report.matches:
        raise typer.Exit(1)


gallery_app = command_group("gallery", "List or remove gallery identities.")


@gallery_app.command("list")
@friendly_errors
def gallery_list_command(
    gallery: str = typer.Option(..., help=GALLERY_HELP),
    as_json: AsJson = False,
) -> None:
    """Enrolled identities and how many embeddings each has."""
    from srfer.faces.galleries import open_gallery

    with open_gallery(gallery) as g:
        rows, mid = g.identities(), g.model_id
    if as_json:
        print_json({"model_id": mid, "identities": dict(rows)})
        return
    table = Table(title=f"{gallery} · model {str(mid)[:12]}")
    table.add_column("identity")
    table.add_column("embeddings", justify="right")
    for name, count in rows:
        table.add_row(name, str(count))
    stdout.print(table)


@gallery_app.command("remove")
@friendly_errors
def gallery_remove_command(
    name: str = typer.Argument(..., help="Identity to remove."),
    gallery: str = typer.Option(..., help=GALLERY_HELP),
) -> None:
    """Remove an identity (all its embeddings) from a gallery."""
    from srfer.faces.galleries import open_gallery

    with open_gallery(gallery) as g:
        removed = g.remove(name)
    stdout.print(f"removed {name!r} ({removed} embedding(s))")
