"""Expression commands: `train-fer`, `eval-fer`."""

from __future__ import annotations

import typer
from rich.table import Table

from srfer.cli.common import (
    AsJson,
    PlotDir,
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
    with_options,
    with_progress,
)
from srfer.core.errors import SrferError
from srfer.eval.options import FerEvalOptions
from srfer.train.args import FerTrainArgs

training_command(
    "train-fer", FerTrainArgs, "srfer.train.fer:train_fer",
    "Train the facial-expression classifier (7 FER2013 emotions, 48×48 gray).",
)  # fmt: skip


@app.command("eval-fer")
@friendly_errors
@with_options(options=FerEvalOptions)
def eval_fer_command(
    sweep: str | None = typer.Option(
        None, help="Comma-separated face sizes, e.g. 48,24,16,12,8: accuracy vs size, bicubic vs SR."
    ),
    save_dir: PlotDir = None,
    as_json: AsJson = False,
    *,
    options: FerEvalOptions,
) -> None:
    """Expression metrics: accuracy, per-class P/R/F1, confusion matrix, ROC; or a size sweep."""
    from srfer.core import plots
    from srfer.eval.fer import evaluate_fer, sweep_fer

    if sweep and options.flip_tta:
        raise SrferError("--flip-tta is for one evaluation; the --sweep protocol has no TTA")
    prepare_plot_dir(save_dir)
    if sweep:
        sizes = parse_sizes(sweep, "48,24,16,12,8")
        result = with_progress("sweeping", len(sizes), lambda advance: sweep_fer(options, sizes, advance))
        show_sweep(result, save_dir, as_json, "FER accuracy vs face size")
        return
    result = evaluate_fer(options)
    metrics = result.metrics
    if save_dir is not None:
        aucs = {name: row["auc"] for name, row in metrics["per_class"].items()}
        title = f"{result.input} · acc {metrics['accuracy']:.2%}"
        confusion = plots.plot_confusion(
            metrics["confusion_matrix"], result.classes, save_dir / "confusion.png", title
        )
        roc = plots.plot_roc(metrics["roc"], aucs, save_dir / "roc.png", result.input)
        result.plots = {"confusion": str(confusion), "roc": str(roc)}
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"{result.images} faces · {result.input} · {result.data}")
    for col in ("class", "precision", "recall", "F1", "ROC AUC", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, row in metrics["per_class"].items():
        scores = (number(row[k], ".3f") for k in ("precision", "recall", "f1", "auc"))
        table.add_row(name, *scores, str(row["support"]))
    stdout.print(table)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
    matrix.add_column("")
    for name in result.classes:
        matrix.add_column(name[:5], justify="right")
    for name, row in zip(result.classes, metrics["confusion_matrix"], strict=True):
        matrix.add_row(name, *map(str, row))
    stdout.print(matrix)
    present = len(result.classes) - len(metrics["absent_classes"])
    over = f" (over the {present} classes present)" if metrics["absent_classes"] else ""
    for note in result.notes:
        stdout.print(f"note: {note}")
    stdout.print(f"accuracy {metrics['accuracy']:.2%} · macro F1 {metrics['macro_f1']:.3f} · "
                 f"macro AUC {metrics['macro_auc']:.3f}{over}")  # fmt: skip
    print_notes(result.to_dict())
