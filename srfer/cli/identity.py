"""Identity commands: `train-embed`, `eval-embed`, `enroll`, `identify`, `gallery`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from srfer.cli.common import (
    AsJson,
    BatchSize,
    Device,
    PlotDir,
    Seed,
    X8Weights,
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
    with_progress,
)
from srfer.core.errors import SrferError
from srfer.train.args import EmbedTrainArgs

training_command(
    "train-embed", EmbedTrainArgs, "srfer.train.embed:train_embed",
    "Train the triplet-loss face embedder (FaceNet-style, online mining over P×K batches).",
)  # fmt: skip


@app.command("eval-embed")
@friendly_errors
def eval_embed_command(
    data: Path = typer.Option(..., help="CelebA root or identity folders (LFW layout)."),
    split: str = typer.Option("all", help="all, or CelebA's/a seeded split: train, val, test."),
    pairs: Path | None = typer.Option(None, help="LFW pairs.txt (default: balanced seeded pairs)."),
    n_pairs: int = typer.Option(6000, min=20, help="Generated pairs (without --pairs)."),
    weights: Path | None = typer.Option(None, help="Embedder checkpoint (default: the shipped one)."),
    upscale: bool = typer.Option(False, "--upscale", help="Probe faces degraded to --lr-size and restored."),
    upscaler: str = typer.Option("sr", help="With --upscale: sr or bicubic."),
    lr_size: int = typer.Option(32, help="With --upscale: the low resolution in px."),
    sr_weights: Path | None = typer.Option(None, help="SR checkpoint (default: the shipped CelebA ×4)."),
    sweep: str | None = typer.Option(None, help="Comma-separated probe sizes, e.g. 128,64,32,24,16."),
    identity_sr_weights: Path | None = typer.Option(
        None, help="With --sweep: the identity-aware SR for a third column (default: the shipped one)."
    ),
    limit: int = typer.Option(0, min=0, help="About N images, whole identities spread over all (0: all)."),
    x8_weights: X8Weights = None,
    save_dir: PlotDir = None,
    batch_size: BatchSize = 128,
    device: Device = "auto",
    seed: Seed = 0,
    as_json: AsJson = False,
) -> None:
    """Verification (1:1): 10-fold accuracy ± std, ROC AUC, EER, TAR@FAR; or a size sweep."""
    from srfer.core import plots
    from srfer.eval import evaluation

    prepare_plot_dir(save_dir)
    if sweep:
        sizes = parse_sizes(sweep, "128,64,32")
        result = with_progress("sweeping", len(sizes), lambda advance: evaluation.sweep_embed(
            data, sizes, split=split, pairs_file=pairs, n_pairs=n_pairs, weights=weights,
            sr_weights=sr_weights, device=device, batch_size=batch_size, seed=seed, progress=advance,
            identity_sr_weights=identity_sr_weights,
            x8_weights=x8_weights,
        ))  # fmt: skip
        show_sweep(result, save_dir, as_json, "verification accuracy vs probe size")
        return
    result = evaluation.evaluate_embed(
        data, split=split, pairs_file=pairs, n_pairs=n_pairs, weights=weights, device=device, upscale=upscale,
        upscaler=upscaler, lr_size=lr_size, sr_weights=sr_weights, batch_size=batch_size, seed=seed,
        limit=limit,
    )  # fmt: skip
    if save_dir is not None:
        roc = {"verification": result["roc"]}
        result["plot"] = str(plots.plot_roc(roc, {"verification": result["roc_auc"]}, save_dir / "roc.png",
                                            result["input"]))  # fmt: skip
    if as_json:
        print_json(result)
        return
    stdout.print(
        f"{result['pairs']} pairs · {result['identities']} identities · {result['input']} · {result['data']}"
    )
    stdout.print(f"accuracy {result['accuracy']:.2%} ± {result['accuracy_std']:.2%} (10-fold) · "
              f"ROC AUC {result['roc_auc']:.4f} · EER {result['eer']:.2%} · "
              f"TAR@FAR=1e-3 {result['tar_at_far_0.001']:.2%} · "
              f"TAR@FAR=1e-2 {result['tar_at_far_0.01']:.2%} · "
              f"τ {result['threshold']:.4f}")  # fmt: skip
    if result.get("alignment"):
        a = result["alignment"]
        stdout.print(f"aligned onto {a['template']}: {a['aligned_by_landmarks']} by landmarks, "
                     f"{a['fallback_centre_crop']} by the centre-crop fallback")  # fmt: skip
    print_notes(result)


@app.command("enroll")
@friendly_errors
def enroll_command(
    name: str = typer.Argument(..., help="The identity's name."),
    images: list[str] = typer.Argument(..., help="Face crops of that person: files, folders or globs."),
    gallery: Path = typer.Option(..., help="SQLite gallery file (created if missing)."),
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


@app.command("identify")
@friendly_errors
def identify_command(
    images: list[str] = typer.Argument(..., help="Face crops to identify: files, folders or globs."),
    gallery: Path = typer.Option(..., help="SQLite gallery file made by `srfer enroll`."),
    weights: Path | None = typer.Option(None, help="Embedder checkpoint (must be the gallery's model)."),
    threshold: float | None = typer.Option(None, help="τ on squared L2 distance (default: the model's)."),
    device: Device = "auto",
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image."),
) -> None:
    """1:N identification: the nearest enrolled identity, or "unknown" beyond τ."""
    from srfer.core.imageio import expand_inputs
    from srfer.infer.identify import identify

    report = identify(expand_inputs(images), gallery, weights, threshold, device)
    report_skipped(report.failed)
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
    gallery: Path = typer.Option(..., help="SQLite gallery file."),
    as_json: AsJson = False,
) -> None:
    """Enrolled identities and how many embeddings each has."""
    from srfer.faces.gallery import Gallery

    with Gallery(gallery) as g:
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
    gallery: Path = typer.Option(..., help="SQLite gallery file."),
) -> None:
    """Remove an identity (all its embeddings) from a gallery."""
    from srfer.faces.gallery import Gallery

    with Gallery(gallery) as g:
        removed = g.remove(name)
    stdout.print(f"removed {name!r} ({removed} embedding(s))")
