"""`srfer predict`: the main job, streamed as a table per image or JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from srfer.cli.common import (
    Device,
    Runtime,
    Workers,
    app,
    friendly_errors,
    labelled,
    progress_bar,
    report_skipped,
    stdout,
)


@app.command("predict")
@friendly_errors
def predict_command(
    inputs: list[str] = typer.Argument(
        ..., help="Photos or face crops: files, folders (recursive) or globs."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per face (schema: README)."),
    save_dir: Path | None = typer.Option(
        None, help="Write <stem>_annotated.png (boxes + labels) and <stem>_face<i>_sr.png strips here."
    ),
    sr: str = typer.Option(
        "auto",
        help="auto: super-resolve faces under 64 px (with the ×8 model under 29 px for the expression, "
        "14 px for the embedder); always; never.",
    ),
    gallery: Path | None = typer.Option(None, help="SQLite gallery (srfer enroll) to name the faces."),
    threshold: float | None = typer.Option(None, help="Gallery τ on squared L2 (default: the model's)."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Add each face's embedding to --json."),
    sr_weights: Path | None = typer.Option(None, help="SR checkpoint (default: the shipped CelebA ×4)."),
    fer_weights: Path | None = typer.Option(
        None,
        help="Expression checkpoint (default: shipped); a,b,c: the ensemble of those files (mean prob.)",
    ),
    embed_weights: Path | None = typer.Option(None, help="Embedder checkpoint (default: shipped)."),
    identity_sr_weights: Path | None = typer.Option(
        None, help="SR for the faces the embedder sees (default: the shipped identity-aware SR, if any)."
    ),
    x8: bool = typer.Option(True, help="--no-x8: the ×4 SR for every face, the smallest too."),
    sr_x8_weights: Path | None = typer.Option(
        None, help="×8 SR for faces under 29 / 14 px (default: the shipped CelebA ×8)."
    ),
    tiny_expression: bool = typer.Option(
        True, help="Faces ≤ 22 px: expression from the grayscale FER SR + the --upscale-trained classifier."
    ),
    fer_sr_weights: Path | None = typer.Option(None, help="FER-domain SR for tiny faces (default: shipped)."),
    upscale_fer_weights: Path | None = typer.Option(
        None, help="Classifier for tiny faces, trained with train-fer --upscale (default: shipped)."
    ),
    detect: bool = typer.Option(True, help="--no-detect: each input is one face crop."),
    min_face: int = typer.Option(20, min=12, help="Smallest face MTCNN looks for, in px (slower when low)."),
    det_threshold: float = typer.Option(0.9, help="MTCNN's final-stage face probability threshold."),
    margin: float = typer.Option(
        0.13, min=0.0, help="Crop = (1 + margin) × the face box (training framing)."
    ),
    batch_size: int = typer.Option(16, min=1, help="Images per batch."),
    device: Device = "auto",
    runtime: Runtime = "torch",
    workers: Workers = 1,
) -> None:
    """Find faces, super-resolve the small ones, and say each face's expression (and identity)."""
    from srfer.core.imageio import expand_inputs
    from srfer.infer.parallel import run_in_workers
    from srfer.infer.predict import PredictOptions, Predictor, PredictWeights

    paths = expand_inputs(inputs)
    options = PredictOptions(sr=sr, detect=detect, min_face=min_face, det_threshold=det_threshold,
                             margin=margin, batch_size=batch_size, threshold=threshold,
                             embeddings=embeddings, tiny_expression=tiny_expression,
                             runtime=runtime, x8=x8)  # fmt: skip
    weights = PredictWeights(sr=sr_weights, fer=fer_weights, embed=embed_weights,
                             identity_sr=identity_sr_weights, sr_fer=fer_sr_weights,
                             fer_upscale=upscale_fer_weights, sr_x8=sr_x8_weights)  # fmt: skip
    predictor = Predictor(options, device, weights, gallery)

    def stream(result) -> None:
        if as_json:
            for face in result.faces:
                typer.echo(json.dumps(face.to_json()))
        if not result.faces:
            labelled("no face found", result.path)

    try:
        with progress_bar() as progress:
            task = progress.add_task("predicting", total=len(paths))
            advance = lambda n: progress.advance(task, n)  # noqa: E731
            report = run_in_workers(predictor, paths, workers, save_dir, advance, stream)
    finally:
        predictor.close()
    report_skipped(report.failed)
    if not as_json:
        for result in report.images:
            _print_faces(result)
        stdout.print(f"{len(report.images)} image(s), {report.faces} face(s), {len(report.failed)} skipped"
                     + (f"; annotated images in {save_dir}" if save_dir else ""))  # fmt: skip
    if not report.images:
        raise typer.Exit(1)


def _print_faces(result) -> None:
    if not result.faces:
        return
    table = Table(title=f"{result.path} ({result.size[0]}×{result.size[1]})", title_justify="left")
    for name, justify in (("#", "right"), ("box (x1, y1, x2, y2)", "left"), ("face px", "right"),
                          ("SR", "center"), ("expression", "left"), ("identity", "left")):  # fmt: skip
        table.add_column(name, justify=justify)
    for f in result.faces:
        identity = (
            "—" if f.identity is None else f"{f.identity} (d = {f.distance:.3f}, τ = {f.threshold:.3f})"
        )
        box = ", ".join(f"{v:.0f}" for v in f.box)
        sr_used = f"×{f.sr_scale}" if f.sr_scale else "yes" if f.sr else "no"
        if f.expression_model == "fer-upscale":
            sr_used += " (+FER SR)"
        table.add_row(
            str(f.index), box, str(f.face_px), sr_used, f"{f.expression} {f.confidence:.0%}", identity
        )
    stdout.print(table)
