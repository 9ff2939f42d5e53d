"""What every command family shares: the app, the one-line error policy, the shared options,
printing helpers, and training commands generated from their argument dataclasses."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from srfer.core.console import err_console, labelled
from srfer.core.errors import SrferError, TrainingInterrupted
from srfer.core.options import DEVICE_HELP, WORKERS_HELP
from srfer.core.process import keep_freed_memory
from srfer.core.weights import ALLOW_MODIFIED

app = typer.Typer(
    name="srfer",
    help="Super-resolution for low-resolution faces: SR, expression and identity stages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console(highlight=False)


@app.callback()
def _process_setup(
    allow_modified_weights: bool = typer.Option(
        False,
        "--allow-modified-weights",
        help="Load shipped weights files even when they fail their sha256 check (damaged or replaced).",
    ),
) -> None:
    # Runs before every command: the CLI owns its process (srfer.core.process.keep_freed_memory);
    # the override reaches worker processes through the environment.
    keep_freed_memory()
    if allow_modified_weights:
        os.environ[ALLOW_MODIFIED] = "1"


def command_group(name: str, help: str) -> typer.Typer:
    """`srfer <name> …`: a family of subcommands."""
    group = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


F = TypeVar("F", bound=Callable[..., Any])

# Options most commands share, declared once (the training options: srfer.train.args).
Device = Annotated[str, typer.Option(help=DEVICE_HELP)]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Workers = Annotated[int, typer.Option(min=1, help=WORKERS_HELP)]
PlotDir = Annotated[
    Path | None,
    typer.Option("--save-dir", help="Write the PNG plots here (their paths are printed); none unless given."),
]


def friendly_errors(fn: F) -> F:
    """Known failures print one line on stderr and exit non-zero, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SrferError as exc:
            labelled("error", exc, "red")
            raise typer.Exit(1) from None
        except TrainingInterrupted as exc:
            err_console.print(escape(str(exc)), style="yellow", soft_wrap=True)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):  # deliberate exits pass through
            raise
        except OSError as exc:  # the environment, not a bug: a write the library did not name
            where = f"{exc.filename}: " if exc.filename else ""
            labelled("error", f"{where}{exc.strerror or exc}", "red")
            raise typer.Exit(1) from None
        except Exception as exc:  # a bug, not bad input: still one line unless debugging
            if os.environ.get("SRFER_DEBUG"):
                raise
            labelled(
                "internal error", f"{type(exc).__name__}: {exc} (SRFER_DEBUG=1 shows the traceback)", "red"
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------ options from dataclasses
SHARED_FIRST = ("data", "out")  # then each stage's own options, then the engine's


def _registry_help(where: str) -> str:
    """'module:NAME' → 'Choices: a: …; b: ….' from the registry itself."""
    module, name = where.split(":")
    registry = getattr(importlib.import_module(module), name)
    return f"Choices: {registry.describe()}."


class RegistryHelpCommand(TyperCommand):
    """A command whose options list a model registry's entries in their help (`--arch`,
    `--backbone`). The registry is read when the help is shown, not when the CLI is built:
    importing it loads torch (~3 s here), which `srfer --help` and every other command
    would otherwise pay at start-up."""

    registries: dict[str, str] = {}  # option name → "module:REGISTRY" (set per command)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            where = self.registries.get(param.name or "")
            if where and not getattr(param, "_registry_listed", False):
                param.help = f"{param.help or ''} {_registry_help(where)}".strip()
                param._registry_listed = True  # type: ignore[attr-defined]
        return super().format_help(ctx, formatter)


def literal(help: str) -> str:
    """A help text as written: rich would read `srfer[onnx]` as markup and print `srfer`."""
    return escape(help)


def _option_of(f: dataclasses.Field, annotation: Any) -> inspect.Parameter:
    meta = f.metadata
    if f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = ... if f.default is dataclasses.MISSING else f.default
    info = typer.Option(default, *meta.get("flags", ()), help=literal(meta.get("help") or "") or None,
                        min=meta.get("min"), max=meta.get("max"))  # fmt: skip
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def options_of(cls: type) -> list[inspect.Parameter]:
    """One CLI option per field of the dataclass `cls` that is meant for the command line,
    with the field's default, help and bounds: data and out first, then the fields in the
    order `cls` declares them (its own and those it re-declares), then the shared ones."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}
    declared = [name for name in vars(cls).get("__annotations__", {}) if name in fields]
    order = dict.fromkeys([*(n for n in SHARED_FIRST if n in fields), *declared, *fields])
    return [_option_of(fields[name], hints[name]) for name in order]


def with_options(**classes: type) -> Callable[[F], F]:
    """`@with_options(options=PredictOptions)`: the command takes each class's fields as options
    (their defaults, help and bounds declared once, in the class) and receives one instance per
    keyword, built by the class (whose checks then run)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)  # typer reads the Annotated options as objects
        own = [p for name, p in signature.parameters.items() if name not in classes]
        arguments = [p for p in own if isinstance(p.default, typer.models.ArgumentInfo)]
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p not in arguments]
        added = [param for cls in classes.values() for param in options_of(cls)]
        taken = {key: [p.name for p in options_of(cls)] for key, cls in classes.items()}

        @functools.wraps(fn)
        def command(**values: Any) -> Any:
            built = {key: classes[key](**{n: values.pop(n) for n in names}) for key, names in taken.items()}
            return fn(**values, **built)

        command.__signature__ = signature.replace(parameters=[*arguments, *added, *rest])  # type: ignore[attr-defined]
        return command  # type: ignore[return-value]

    return decorate


def training_command(name: str, args_cls: type, train: str, doc: str) -> None:
    """Register `srfer <name>`: its options are `args_cls`'s fields (plus --json); it fills
    an `args_cls` (whose constructor refuses any other name) and calls `train`
    ("module:function", imported only when the command runs)."""

    def command(**values: Any) -> None:
        as_json = values.pop("as_json")
        args = args_cls(**values)
        module, function = train.split(":")
        result = getattr(importlib.import_module(module), function)(args)
        print_training_result(result, args.out, as_json)

    as_json = inspect.Parameter(
        "as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
        default=typer.Option(False, "--json", help="Print the result as JSON."),
    )  # fmt: skip
    command.__signature__ = inspect.Signature([*options_of(args_cls), as_json])  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__name__ = command.__qualname__ = f"{name.replace('-', '_')}_command"
    choices = {
        f.name: f.metadata["choices"] for f in dataclasses.fields(args_cls) if f.metadata.get("choices")
    }
    help_class = type(f"{command.__name__}_class", (RegistryHelpCommand,), {"registries": choices})
    app.command(name, cls=help_class)(friendly_errors(command))


# ------------------------------------------------------------------------------- printing
def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def report_skipped(failed: list[tuple[Path, str]], as_json: bool = False) -> None:
    """What a command skipped, in one line on stderr: the first files with their reasons, then
    a count; with `as_json` also one line `{"image": …, "skipped": reason}` each on stdout."""
    from srfer.core.imageio import Skipped, skip_summary

    if failed:
        labelled("note", skip_summary([Skipped(path, why) for path, why in failed]), "red")
    if as_json:
        for path, why in failed:
            typer.echo(json.dumps({"image": str(path), "skipped": why}))


def report_fallbacks(fallbacks: list[Path]) -> None:
    """Faces the aligner found no landmarks in (embedded from the centre-crop fallback)."""
    if fallbacks:
        names = ", ".join(str(p) for p in fallbacks[:5]) + (
            f" (+{len(fallbacks) - 5})" if len(fallbacks) > 5 else ""
        )
        labelled("note", f"no face landmarks found, aligned as a centred face crop: {names}", "yellow")


def print_training_result(result: dict[str, Any], out_dir: Path, as_json: bool) -> None:
    if as_json:
        print_json(result)
    elif result["best"] is None:
        stdout.print(f"no epoch finished; state in {out_dir}")
    else:
        stdout.print(f"best {result['monitor']} {result['best']:.4f} at epoch {result['best_epoch']} "
                     f"→ {out_dir / 'best.safetensors'}")  # fmt: skip


def number(value: float | None, spec: str) -> str:
    """A table cell: the value formatted, or — where it is undefined."""
    return "—" if value is None else format(value, spec)


def print_notes(result: dict) -> None:
    """What an evaluation left out or wrote, after its table: skipped files, absent
    classes, notes and plot paths (on stderr, so stdout stays the table)."""
    from srfer.core.imageio import Skipped, skip_summary

    if result.get("skipped"):
        skipped = [Skipped(Path(s["path"]), s["reason"]) for s in result["skipped"]]
        labelled("note", skip_summary(skipped))
    if result.get("absent_classes"):
        absent = ", ".join(result["absent_classes"])
        labelled("note", f"no faces of {absent}: left out of the macro means")
    for note in result.get("notes", []):
        labelled("note", note)
    plots = result.get("plots") or ({"plot": result["plot"]} if result.get("plot") else {})
    for path in plots.values():
        labelled("plot", path, "bold")


def parse_sizes(text: str, example: str) -> list[int]:
    """--sweep's comma-separated sizes."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SrferError(f"--sweep {text!r}: expected comma-separated sizes like {example}") from None


def prepare_plot_dir(save_dir: Path | None) -> None:
    """Make --save-dir up front: an unwritable place fails before the evaluation, not after."""
    if save_dir is not None:
        from srfer.core.imageio import make_folder

        make_folder(save_dir)


def with_progress(description: str, total: int | None, work: Callable[[Callable[..., None]], Any]) -> Any:
    """`work(advance)` under a progress bar; `advance()` steps it, `advance(completed=n)` sets it."""
    with progress_bar() as progress:
        task = progress.add_task(description, total=total)

        def advance(completed: int | None = None) -> None:
            if completed is None:
                progress.advance(task)
            else:
                progress.update(task, completed=completed)

        return work(advance)


def show_sweep(result, save_dir: Path | None, as_json: bool, title: str) -> None:
    """A size sweep (`FerSweep` or `EmbedSweep`): its plot when asked, then JSON or the table."""
    if save_dir is not None:
        from srfer.core import plots

        result.plot = str(
            plots.plot_sweep(result.sizes, result.accuracy, save_dir / "sweep.png", "accuracy", title)
        )
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"{title} · {result.data}")
    table.add_column("size (px)", justify="right")
    for name in result.accuracy:
        table.add_column(name, justify="right")
    for i, size in enumerate(result.sizes):
        table.add_row(str(size), *(f"{v[i]:.2%}" for v in result.accuracy.values()))
    stdout.print(table)
    print_notes(result.to_dict())


def progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
