"""Expression commands: `train-fer`, `eval-fer`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from srfer.cli.common import (
    AsJson,
    BatchSize,
    Device,
    PlotDir,
    X8Weights,
    app,
    friendly_errors,
    number,
    parse_sizes,
    prepare_plot_dir,
    print_json,
    print_notes,
    show_sweep,
    stdout,
    training_command,
    with_progress,
)
from srfer.core.errors import SrferError
from srfer.train.args import FerTrainArgs

training_command(
    "train-fer", FerTrainArgs, "srfer.train.fer:train_fer",
    "Train the facial-expression classifier (7 FER2013 emotions, 48×48 gray).",
)  # fmt: skip


@app.command("eval-fer")
@friendly_errors
def eval_fer_command(
    data: Path = typer.Option(..., help="FER2013 root (with --split), a split folder, or fer2013.csv."),
    split: str = typer.Option("val", help="train, val or test."),
    ferplus: Path | None = typer.Option(None, help="fer2013new.csv for FER+ labels (with a CSV)."),
    weights: Path | None = typer.Option(
        None, help="Classifier checkpoint (default: the shipped one); a,b,c: the ensemble of those files."
    ),
    upscale: bool = typer.Option(
        False, "--upscale", help="Evaluate on faces degraded to --lr-size and restored."
    ),
    upscaler: str = typer.Option("sr", help="With --upscale: sr or bicubic."),
    lr_size: int = typer.Option(12, help="With --upscale: the low resolution in px."),
    sr_weights: Path | None = typer.Option(None, help="SR checkpoint (default: the shipped FER SR)."),
    sweep: str | None = typer.Option(
        None, help="Comma-separated face sizes, e.g. 48,24,16,12,8: accuracy vs size, bicubic vs SR."
    ),
    upscale_weights: Path | None = typer.Option(None, help="With --sweep: the --upscale-trained classifier."),
    x8_weights: X8Weights = None,
    flip_tta: bool = typer.Option(
        False, help="Average each face's probabilities with its mirror's (not with --sweep)."
    ),
    limit: int = typer.Option(
        0, min=0, help="About N faces, spread over the classes (0: all); not with --sweep."
    ),
    save_dir: PlotDir = None,
    batch_size: BatchSize = 256,
    device: Device = "auto",
    as_json: AsJson = False,
) -> None:
    """Expression metrics: accuracy, per-class P/R/F1, confusion matrix, ROC; or a size sweep."""
    from srfer.core import plots
    from srfer.eval import evaluation

    if sweep and flip_tta:
        raise SrferError("--flip-tta is for one evaluation; the --sweep protocol has no TTA")
    prepare_plot_dir(save_dir)
    if sweep:
        sizes = parse_sizes(sweep, "48,24,16,12,8")
        result = with_progress("sweeping", len(sizes), lambda advance: evaluation.sweep_fer(
            data, sizes, split=split, weights=weights, upscale_weights=upscale_weights, sr_weights=sr_weights,
            device=device, ferplus=ferplus, batch_size=batch_size, progress=advance, x8_weights=x8_weights,
        ))  # fmt: skip
        show_sweep(result, save_dir, as_json, "FER accuracy vs face size")
        return
    result = evaluation.evaluate_fer(
        data, split=split, weights=weights, device=device, upscale=upscale, upscaler=upscaler,
        lr_size=lr_size, sr_weights=sr_weights, ferplus=ferplus, batch_size=batch_size, flip_tta=flip_tta,
        limit=limit,
    )  # fmt: skip
    if save_dir is not None:
        aucs = {name: row["auc"] for name, row in result["per_class"].items()}
        title = f"{result['input']} · acc {result['accuracy']:.2%}"
        confusion = plots.plot_confusion(
            result["confusion_matrix"], result["classes"], save_dir / "confusion.png", title
        )
        roc = plots.plot_roc(result["roc"], aucs, save_dir / "roc.png", result["input"])
        result["plots"] = {"confusion": str(confusion), "roc": str(roc)}
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{result['images']} faces · {result['input']} · {result['data']}")
    for col in ("class", "precision", "recall", "F1", "ROC AUC", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, row in result["per_class"].items():
        scores = (number(row[k], ".3f") for k in ("precision", "recall", "f1", "auc"))
        table.add_row(name, *scores, str(row["support"]))
    stdout.print(table)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
    matrix.add_column("")
    for name in result["classes"]:
        matrix.add_column(name[:5], justify="right")
    for name, row in zip(result["classes"], result["confusion_matrix"], strict=True):
        matrix.add_row(name, *map(str, row))
    stdout.print(matrix)
    present = len(result["classes"]) - len(result["absent_classes"])
    over = f" (over the {present} classes present)" if result["absent_classes"] else ""
    for note in result["notes"]:
        stdout.print(f"note: {note}")
    stdout.print(f"accuracy {result['accuracy']:.2%} · macro F1 {result['macro_f1']:.3f} · "
                 f"macro AUC {result['macro_auc']:.3f}{over}")  # fmt: skip
    print_notes(result)
