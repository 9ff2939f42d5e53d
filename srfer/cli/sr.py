"""SR commands: `train-sr`, `eval-sr`, `compare-sr`, `upscale`, `enhance`."""

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
    print_json,
    report_skipped,
    stdout,
    training_command,
    with_options,
    with_progress,
)
from srfer.eval.options import CompareSrOptions, SrEvalOptions
from srfer.infer.options import EnhanceOptions, UpscaleOptions
from srfer.train.args import SRTrainArgs

training_command(
    "train-sr", SRTrainArgs, "srfer.train.sr:train_sr",
    "Train the face super-resolution generator (SRResNet, then SRGAN).",
)  # fmt: skip


@app.command("eval-sr")
@friendly_errors
@with_options(options=SrEvalOptions)
def eval_sr_command(
    per_image: bool = typer.Option(False, help="Also print every image's row in the table."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the full result (with per-image rows) as JSON."
    ),
    *,
    options: SrEvalOptions,
) -> None:
    """PSNR/SSIM of the SR model vs bicubic on held-out faces."""
    from srfer.eval.sr import evaluate_sr

    result = with_progress(
        "evaluating", None, lambda advance: evaluate_sr(options, lambda n: advance(completed=n))
    )
    if as_json:
        print_json(result.to_dict())
        return
    title = f"{result.images} images, {result.lr_size}→{result.hr_size} px (×{result.scale}) · {result.data}"
    table = Table(title=title, caption=result.protocol)
    for col in ("image", "PSNR bicubic (dB)", "PSNR SR (dB)", "SSIM bicubic", "SSIM SR"):
        table.add_column(col, justify="left" if col == "image" else "right")
    rows = result.per_image if per_image else []
    for row in rows:
        table.add_row(
            Path(row["image"]).name,
            f"{row['psnr_bicubic']:.2f}",
            f"{row['psnr_sr']:.2f}",
            f"{row['ssim_bicubic']:.4f}",
            f"{row['ssim_sr']:.4f}",
        )
    m = result.mean
    table.add_row(
        "[bold]mean",
        f"{m['psnr_bicubic']:.2f}",
        f"{m['psnr_sr']:.2f}",
        f"{m['ssim_bicubic']:.4f}",
        f"{m['ssim_sr']:.4f}",
    )
    stdout.print(table)
    stdout.print(f"SR gain over bicubic: {result.psnr_gain_db:+.2f} dB PSNR")
    if result.identity is not None:
        i = result.identity
        stdout.print(
            f"face recogniser ({Path(i['embedder']).name}, {i['faces']} faces): Fréchet distance to real "
            f"faces SR {i['frechet_sr']:.4f} · bicubic {i['frechet_bicubic']:.4f}; distance to the own HR "
            f"face SR {i['distance_to_hr_sr']:.4f} · bicubic {i['distance_to_hr_bicubic']:.4f}"
        )


@app.command("compare-sr")
@friendly_errors
@with_options(options=CompareSrOptions)
def compare_sr_command(
    grid: Path | None = typer.Option(None, help="Write a picture grid here: LR | bicubic | each model | HR."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    *,
    options: CompareSrOptions,
) -> None:
    """Several SR models side by side on the same held-out faces (PSNR, SSIM, recogniser's view)."""
    from srfer.eval.sr import compare_sr

    result = with_progress("comparing", None, lambda advance: compare_sr(
        options, grid is not None, lambda n: advance(completed=n)
    ))  # fmt: skip
    if grid is not None and result.grid_rows:
        from srfer.core.plots import plot_image_grid

        title = f"{result.lr_size}→{result.hr_size} px · {result.data}"
        result.grid = str(plot_image_grid(result.grid_rows, result.grid_columns, grid, title))
    if as_json:
        print_json(result.to_dict())
        return
    _print_comparison(result)


def _print_comparison(result) -> None:
    title = f"{result.images} images, {result.lr_size}→{result.hr_size} px · {result.data}"
    table = Table(title=title, caption=result.protocol)
    judged = result.identity
    columns = ["method", "PSNR (dB)", "SSIM"] + (["Fréchet ↓", "distance to own HR ↓"] if judged else [])
    for col in columns:
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, m in result.mean.items():
        row = [name, f"{m['psnr']:.2f}", f"{m['ssim']:.4f}"]
        if judged:
            row += [f"{judged[f'frechet_{name}']:.4f}", f"{judged[f'distance_to_hr_{name}']:.4f}"]
        table.add_row(*row)
    stdout.print(table)
    if judged:
        stdout.print(f"face recogniser: {Path(judged['embedder']).name}, {judged['faces']} faces")
    if result.grid is not None:
        labelled("grid", result.grid)


@app.command("upscale")
@friendly_errors
@with_options(options=UpscaleOptions)
def upscale_command(
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or glob patterns."),
    out_dir: Path = typer.Option(
        ..., "-o", "--out", help="Output folder; each result is OUT/<input stem>.png."
    ),
    device: Device = "auto",
    workers: Workers = 1,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per input."),
    *,
    options: UpscaleOptions,
) -> None:
    """Super-resolve face images of any size (×4 with the default model, ×8 with --model x8)."""
    from srfer.core.imageio import expand_inputs
    from srfer.infer import upscale

    paths = expand_inputs(inputs)
    report = with_progress("upscaling", len(paths), lambda advance: upscale.upscale_files(
        paths, out_dir, options, device, advance, workers
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


@app.command("enhance")
@friendly_errors
@with_options(options=EnhanceOptions)
def enhance_command(
    inputs: list[str] = typer.Argument(..., help="Photos: files, folders (recursive) or glob patterns."),
    out_dir: Path = typer.Option(
        ..., "-o", "--out", help="Output folder; each photo becomes OUT/<stem>.png."
    ),
    device: Device = "auto",
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per photo (its faces, where it went)."
    ),
    *,
    options: EnhanceOptions,
) -> None:
    """Upscale whole photos ×2 or ×4, every face super-resolved by the face SR and pasted back."""
    from srfer.core.imageio import expand_inputs
    from srfer.infer import enhance

    paths = expand_inputs(inputs)
    report = with_progress("enhancing", len(paths), lambda advance: enhance.enhance_files(
        paths, out_dir, options, device, lambda n: advance()
    ))  # fmt: skip
    for result, target in report.done:
        if as_json:
            typer.echo(json.dumps({**result.to_dict(), "output": str(target)}))
        else:
            w, h = result.size
            ow, oh = result.image.size
            stdout.print(
                f"{result.source} ({w}×{h}) → {target} ({ow}×{oh}), {len(result.faces)} face(s) restored"
            )
    report_skipped(report.failed, as_json)
    if not report.done:
        raise typer.Exit(1)
