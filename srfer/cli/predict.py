"""`srfer predict`: the main job, streamed as a table per image or JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from srfer.cli.common import (
    Device,
    Workers,
    app,
    friendly_errors,
    labelled,
    progress_bar,
    report_skipped,
    stdout,
    with_options,
)
from srfer.core.options import GALLERY_HELP
from srfer.core.weights import Weights
from srfer.infer.options import PredictOptions, PredictWeights


@app.command("predict")
@friendly_errors
@with_options(options=PredictOptions, weights=PredictWeights)
def predict_command(
    inputs: list[str] = typer.Argument(
        ..., help="Photos or face crops: files, folders (recursive) or globs."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per face (schema: README)."),
    save_dir: Path | None = typer.Option(
        None, help="Write <stem>_annotated.png (boxes + labels) and <stem>_face<i>_sr.png strips here."
    ),
    gallery: str | None = typer.Option(None, help=GALLERY_HELP + " Names the faces."),
    device: Device = "auto",
    workers: Workers = 1,
    *,
    options: PredictOptions,
    weights: PredictWeights,
) -> None:
    """Find faces, super-resolve the small ones, and say each face's expression (and identity)."""
    from srfer.core.imageio import expand_inputs
    from srfer.infer.parallel import run_in_workers
    from srfer.infer.predict import Predictor

    paths = expand_inputs(inputs)
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
    report_skipped(report.failed, as_json)
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
        sr_used += _expression_mark(f.expression_model)
        table.add_row(
            str(f.index), box, str(f.face_px), sr_used, f"{f.expression} {f.confidence:.0%}", identity
        )
    stdout.print(table)


def _expression_mark(roles: str) -> str:
    """How the table marks an answer from the tiny-face path, alone or beside the HR classifier."""
    answered = roles.split("+")  # `FaceRoute.expression_model`
    if Weights.FER_UPSCALE.value not in answered:
        return ""
    return " (+FER SR, both)" if len(answered) > 1 else " (+FER SR)"
