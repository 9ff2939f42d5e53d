"""SR commands: `train-sr`, `eval-sr`, `upscale`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from srfer.cli.common import (
    BatchSize,
    Device,
    Runtime,
    Workers,
    app,
    friendly_errors,
    labelled,
    print_json,
    report_skipped,
    stdout,
    training_command,
    with_progress,
)
from srfer.train.args import SRTrainArgs

training_command(
    "train-sr", SRTrainArgs, "srfer.train.sr:train_sr",
    "Train the face super-resolution generator (SRResNet, then SRGAN).",
)  # fmt: skip


@app.command("eval-sr")
@friendly_errors
def eval_sr_command(
    data: Path = typer.Option(..., help="CelebA root or face folder."),
    split: str = typer.Option("val", help="train, val, test or all."),
    weights: Path | None = typer.Option(None, help="SR checkpoint (default: the shipped model)."),
    limit: int = typer.Option(0, min=0, help="Evaluate the first N images only (0: all)."),
    hr_size: int | None = typer.Option(None, help="HR crop size (default: the checkpoint's)."),
    batch_size: BatchSize = 32,
    device: Device = "auto",
    per_image: bool = typer.Option(False, help="Also print every image's row in the table."),
    flip_tta: bool = typer.Option(False, help="Average with the mirrored face's result (2× the compute)."),
    identity: bool = typer.Option(
        False,
        help="Also embed HR, SR and bicubic faces with the face recogniser: Fréchet distance "
        "to the real faces and distance to each face's own HR embedding (lower is better).",
    ),
    embed_weights: Path | None = typer.Option(None, help="The recogniser for --identity (default: shipped)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the full result (with per-image rows) as JSON."
    ),
) -> None:
    """PSNR/SSIM of the SR model vs bicubic on held-out faces."""
    from srfer.eval.evaluation import evaluate_sr

    result = with_progress("evaluating", None, lambda advance: evaluate_sr(
        data, split=split, weights=weights, device=device, batch_size=batch_size, limit=limit,
        hr_size=hr_size, progress=lambda n: advance(completed=n), flip_tta=flip_tta, identity=identity,
        embed_weights=embed_weights,
    ))  # fmt: skip
    if as_json:
        print_json(result)
        return
    title = (
        f"{result['images']} images, {result['lr_size']}→{result['hr_size']} px "
        f"(×{result['scale']}) · {result['data']}"
    )
    table = Table(title=title, caption=result["protocol"])
    for col in ("image", "PSNR bicubic (dB)", "PSNR SR (dB)", "SSIM bicubic", "SSIM SR"):
        table.add_column(col, justify="left" if col == "image" else "right")
    rows = result["per_image"] if per_image else []
    for row in rows:
        table.add_row(
            Path(row["image"]).name,
            f"{row['psnr_bicubic']:.2f}",
            f"{row['psnr_sr']:.2f}",
            f"{row['ssim_bicubic']:.4f}",
            f"{row['ssim_sr']:.4f}",
        )
    m = result["mean"]
    table.add_row(
        "[bold]mean",
        f"{m['psnr_bicubic']:.2f}",
        f"{m['psnr_sr']:.2f}",
        f"{m['ssim_bicubic']:.4f}",
        f"{m['ssim_sr']:.4f}",
    )
    stdout.print(table)
    stdout.print(f"SR gain over bicubic: {result['psnr_gain_db']:+.2f} dB PSNR")
    if "identity" in result:
        i = result["identity"]
        stdout.print(
            f"face recogniser ({Path(i['embedder']).name}, {i['faces']} faces): Fréchet distance to real "
            f"faces SR {i['frechet_sr']:.4f} · bicubic {i['frechet_bicubic']:.4f}; distance to the own HR "
            f"face SR {i['distance_to_hr_sr']:.4f} · bicubic {i['distance_to_hr_bicubic']:.4f}"
        )


@app.command("compare-sr")
@friendly_errors
def compare_sr_command(
    data: Path = typer.Option(..., help="CelebA root or face folder."),
    models: str = typer.Option(
        "psnr,identity,gan",
        help="Comma-separated shipped names (psnr, identity, gan; x8 alone) or checkpoint paths.",
    ),
    split: str = typer.Option("val", help="train, val, test or all."),
    limit: int = typer.Option(0, min=0, help="The first N images only (0: all)."),
    identity: bool = typer.Option(
        False, help="Also the face recogniser's view: Fréchet distance to real faces, distance to own HR."
    ),
    embed_weights: Path | None = typer.Option(None, help="The recogniser for --identity (default: shipped)."),
    grid: Path | None = typer.Option(None, help="Write a picture grid here: LR | bicubic | each model | HR."),
    grid_faces: int = typer.Option(6, min=1, help="Rows (faces) of --grid."),
    batch_size: BatchSize = 32,
    device: Device = "auto",
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Several SR models side by side on the same held-out faces (PSNR, SSIM, recogniser's view)."""
    from srfer.core.weights import sr_models_from
    from srfer.eval.evaluation import compare_sr

    chosen = sr_models_from(models)
    result = with_progress("comparing", None, lambda advance: compare_sr(
        data, chosen, split=split, device=device, batch_size=batch_size, limit=limit, identity=identity,
        embed_weights=embed_weights, grid_faces=grid_faces if grid else 0,
        progress=lambda n: advance(completed=n),
    ))  # fmt: skip
    rows = result.pop("grid", None)
    if grid is not None and rows:
        from srfer.core.plots import plot_image_grid

        title = f"{result['lr_size']}→{result['hr_size']} px · {result['data']}"
        result["grid"] = str(plot_image_grid(rows, result.pop("grid_columns"), grid, title))
    if as_json:
        print_json(result)
        return
    _print_comparison(result)


def _print_comparison(result: dict) -> None:
    title = f"{result['images']} images, {result['lr_size']}→{result['hr_size']} px · {result['data']}"
    table = Table(title=title, caption=result["protocol"])
    judged = result.get("identity")
    columns = ["method", "PSNR (dB)", "SSIM"] + (["Fréchet ↓", "distance to own HR ↓"] if judged else [])
    for col in columns:
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, m in result["mean"].items():
        row = [name, f"{m['psnr']:.2f}", f"{m['ssim']:.4f}"]
        if judged:
            row += [f"{judged[f'frechet_{name}']:.4f}", f"{judged[f'distance_to_hr_{name}']:.4f}"]
        table.add_row(*row)
    stdout.print(table)
    if judged:
        stdout.print(f"face recogniser: {Path(judged['embedder']).name}, {judged['faces']} faces")
    if "grid" in result:
        labelled("grid", result["grid"])


@app.command("upscale")
@friendly_errors
def upscale_command(
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or glob patterns."),
    out_dir: Path = typer.Option(
        ..., "-o", "--out", help="Output folder; each result is OUT/<input stem>.png."
    ),
    weights: Path | None = typer.Option(None, help="SR checkpoint (instead of a shipped --model)."),
    model: str = typer.Option(
        "psnr",
        help="Shipped SR: psnr (CelebA ×4, MSE), identity (×4, identity-aware, for aligned chips), "
        "gan (×4, SRGAN: sharper, less faithful) or x8 (CelebA ×8, for faces of ~16 px).",
    ),
    compare: bool = typer.Option(False, help="Also write <stem>_compare.png: input | bicubic | SR."),
    flip_tta: bool = typer.Option(False, help="Average with the mirrored face's result (2× the compute)."),
    device: Device = "auto",
    runtime: Runtime = "torch",
    workers: Workers = 1,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per input."),
) -> None:
    """Super-resolve face images of any size (×4 with the default model, ×8 with --model x8)."""
    from srfer.core.imageio import expand_inputs
    from srfer.infer import upscale

    paths = expand_inputs(inputs)
    report = with_progress("upscaling", len(paths), lambda advance: upscale.upscale_files(
        paths, out_dir, weights, device, advance, compare, flip_tta, runtime, workers, model
    ))  # fmt: skip
    for src, dst in report.renamed:
        labelled("name clash", f"{src} → {dst}")
    report_skipped(report.failed)
    if as_json:
        for src, dst, size_in, size_out in report.written:
            typer.echo(
                json.dumps(
                    {
                        "input": str(src),
                        "output": str(dst),
                        "input_size": size_in,
                        "output_size": size_out,
                        "ok": True,
                    }
                )
            )
        for src, why in report.failed:
            typer.echo(json.dumps({"input": str(src), "error": why, "ok": False}))
    else:
        for src, dst, size_in, size_out in report.written:
            stdout.print(f"{src} ({size_in[0]}×{size_in[1]}) → {dst} ({size_out[0]}×{size_out[1]})")
        stdout.print(f"{len(report.written)} upscaled, {len(report.failed)} failed")
    if not report.written:
        raise typer.Exit(1)
