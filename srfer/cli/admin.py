"""Admin commands: `pipeline train`, `weights`, `info`, `export`, `convert-face-api`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from srfer.cli.common import AsJson, Device, app, command_group, friendly_errors, literal, print_json, stdout
from srfer.core.errors import SrferError

pipeline_app = command_group("pipeline", "All stages in order (SR → expression → identity).")


@pipeline_app.command("train")
@friendly_errors
def pipeline_train_command(
    data_root: Path = typer.Option(..., help="Folder holding celeba/ and fer2013/ (e.g. ../shared/data)."),
    runs: Path = typer.Option(Path("runs"), help="Where each stage's run folder goes (resumed if present)."),
    profile: str = typer.Option(
        "auto",
        help="cpu (sized for a 2-core CPU), full (the seed recipes), smoke (1 short epoch each); "
        "auto: full on CUDA, else cpu.",
    ),
    vgg_weights: Path | None = typer.Option(
        None, help="VGG19 state dict for the full profile's SRGAN phase."
    ),
    evaluate: bool = typer.Option(True, help="End with the validation tables."),
    device: Device = "auto",
    as_json: AsJson = False,
) -> None:
    """Train SR → expression (on SR-restored 12 px faces) → embedder, resumable, then evaluate."""
    from srfer.train.workflow import train_and_evaluate

    result = train_and_evaluate(data_root, runs, profile, device, vgg_weights, evaluate)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"pipeline ({result['profile']} profile)", title_justify="left")
    table.add_column("stage")
    table.add_column("best", justify="right")
    table.add_column("epochs run", justify="right")
    for name, stage in result["stages"].items():
        best = "—" if stage["best"] is None else f"{stage['monitor']} {stage['best']:.4f}"
        table.add_row(name, best, str(stage["epochs_run"]))
    stdout.print(table)
    for key, value in result.get("evaluation", {}).items():
        stdout.print(f"{key}: {value:.4f}")


@app.command("weights")
@friendly_errors
def weights_command(as_json: AsJson = False) -> None:
    """The default weights: where each was found, its sha256 check and the metrics recorded for it."""
    from srfer.core.weights import mismatched, weights_report

    rows = weights_report()
    damaged = mismatched(rows)
    if as_json:
        print_json(rows)
    else:
        _print_weights(rows)
    if damaged:
        raise SrferError(
            f"{len(damaged)} file(s) fail their sha256 check (damaged or replaced): " + ", ".join(damaged)
        )


def _print_weights(rows: list[dict]) -> None:
    table = Table(
        title="default weights (CLI option → $SRFER_WEIGHTS → shipped weights/)", title_justify="left"
    )
    for name in ("role", "file", "status", "recorded metrics"):
        table.add_column(name)
    for row in rows:
        metrics = ", ".join(
            f"{k} {v}" for k, v in row.get("metrics", {}).items() if isinstance(v, int | float)
        )
        status = row["status"] if row["path"] else f"[red]missing[/red] — train: {row['train']}"
        table.add_row(row["role"], row["file"], status, metrics or "—")
    stdout.print(table)


@app.command("info")
@friendly_errors
def info_command(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Versions, compute device, AMP dtype and which default weights are present."""
    from srfer.core.environment import environment_report

    report = environment_report()
    if as_json:
        print_json(report)
        return
    table = Table(show_header=False, box=None)
    for key, value in report.items():
        if key != "weights":
            table.add_row(f"[bold]{key}", str(value))
    for name, entry in report["weights"].items():
        table.add_row(f"[bold]weights:{name}", entry)
    stdout.print(table)


@app.command("export")
@friendly_errors
def export_command(
    checkpoint: Path = typer.Argument(..., help="A training checkpoint (e.g. RUN/best.safetensors)."),
    target: Path = typer.Argument(..., help="Where to write the weights-only checkpoint."),
    half: bool = typer.Option(True, help="Store fp16 tensors (half the size)."),
    threshold: float | None = typer.Option(
        None, help="Embedders: the verification τ to store (from eval-embed); identify and predict use it."
    ),
    onnx: bool = typer.Option(
        False,
        "--onnx",
        help=literal(
            "Write an ONNX graph instead (fp32; dynamic batch, and dynamic height/width for SR "
            "generators; srfer's header in its metadata). Needs pip install 'srfer[onnx]'."
        ),
    ),
) -> None:
    """Write a weights-only copy of a checkpoint (no optimizer state), e.g. for weights/, or
    with --onnx an ONNX graph for ONNX Runtime and other runtimes."""
    from srfer.convert.export import export_onnx_file, export_weights
    from srfer.core.weights import sha256

    path = (
        export_onnx_file(checkpoint, target) if onnx else export_weights(checkpoint, target, half, threshold)
    )
    stdout.print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {sha256(path)})")


@app.command("average")
@friendly_errors
def average_command(
    checkpoints: list[Path] = typer.Argument(
        ..., help="Checkpoints of one run (e.g. RUN/epoch-00*.safetensors)."
    ),
    target: Path = typer.Option(..., "--out", help="Where to write the averaged weights-only checkpoint."),
    bn_data: Path | None = typer.Option(
        None, help="FER root whose training faces re-estimate BatchNorm statistics (networks with BatchNorm)."
    ),
    bn_images: int = typer.Option(8192, min=1, help="How many training faces re-estimate them."),
    half: bool = typer.Option(True, help="Store fp16 tensors (half the size)."),
) -> None:
    """Average the weights of several epochs of one run (stochastic weight averaging), with
    BatchNorm statistics re-estimated on training data where the network has BatchNorm."""
    from srfer.convert.export import average_weights
    from srfer.core.weights import sha256

    path = average_weights(checkpoints, target, bn_data, bn_images, half)
    stdout.print(
        f"{path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {sha256(path)}; mean of {len(checkpoints)})"
    )


@app.command("convert-face-api")
@friendly_errors
def convert_face_api_command(
    tarball: Path = typer.Argument(
        ...,
        help="The face-api npm tarball (`npm pack @vladmandic/face-api@1.7.15`; here: "
        "../shared/pretrained/vladmandic-face-api-1.7.15.tgz).",
    ),
    target: Path = typer.Argument(
        Path("weights/embed_dlib_resnet29.safetensors"), help="Where to write the srfer checkpoint."
    ),
    model: str = typer.Option(
        "recognition",
        help="recognition: dlib's ResNet-29 face recogniser → an embedder; expression: face-api.js's "
        "expression network → a `faceapi-expression` classifier (FER2013's class order) to evaluate "
        "or fine-tune with `train-fer --arch faceapi-expression --init FILE`.",
    ),
    check_sha: bool = typer.Option(True, help="Refuse a tarball whose sha256 is not face-api 1.7.15's."),
    threshold: float | None = typer.Option(
        None, help="The verification τ to store (from eval-embed's 10-fold cross-validation)."
    ),
    as_json: AsJson = False,
) -> None:
    """Convert a network of the face-api npm tarball (read in place, uint8 weights dequantised):
    dlib's public-domain ResNet-29 face recogniser into a srfer embedder checkpoint, or with
    `--model expression` face-api.js's expression network (MIT) into a classifier checkpoint."""
    from srfer.convert.face_api import convert_face_api
    from srfer.core.weights import sha256

    result = convert_face_api(tarball, target, check_sha, threshold, model)
    result["sha256"] = sha256(Path(result["path"]))
    if as_json:
        print_json(result)
        return
    network = "dlib-resnet29 embedder" if model == "recognition" else "faceapi-expression classifier"
    stdout.print(
        f"{result['path']}: {network}, {result['tensors']} tensors, "
        f"{result['parameters']:,} parameters (sha256 {result['sha256']})"
    )
