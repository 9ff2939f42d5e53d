"""`srfer` command line: parsing and printing only; the work lives in the library."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from srfer.console import err_console
from srfer.errors import SrferError

app = typer.Typer(
    name="srfer",
    help="Super-resolution for low-resolution faces: SR, expression and identity stages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console(highlight=False)
F = TypeVar("F", bound=Callable[..., Any])

DEVICE_HELP = "auto (cuda → mps → cpu), cpu, cuda or mps."
# Options every training (and most other) commands share.
Device = Annotated[str, typer.Option(help=DEVICE_HELP)]
Workers = Annotated[int, typer.Option(help="Loader workers (-1: one per spare core, ≤ 4).")]
Amp = Annotated[bool, typer.Option(help="bf16 autocast on CUDA and on CPUs with native bf16; else fp32.")]
Resume = Annotated[bool, typer.Option(help="Continue the run in --out from last.safetensors.")]
SaveEvery = Annotated[int, typer.Option(min=0, help="Also keep a checkpoint every N epochs.")]
Seed = Annotated[int, typer.Option(help="Seed for data order, augmentation and initialisation.")]
Init = Annotated[
    Path | None,
    typer.Option(help="Start from these trained weights (fine-tuning); same architecture options."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def friendly_errors(fn: F) -> F:
    """Known failures print one line on stderr and exit non-zero, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from srfer.train.engine import TrainingInterrupted

        try:
            return fn(*args, **kwargs)
        except SrferError as exc:
            err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            raise typer.Exit(1) from None
        except TrainingInterrupted as exc:
            err_console.print(f"[yellow]{exc}[/yellow]", soft_wrap=True)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):  # deliberate exits pass through
            raise
        except Exception as exc:  # a bug, not bad input: still one line unless debugging
            if os.environ.get("SRFER_DEBUG"):
                raise
            err_console.print(
                f"[red]internal error:[/red] {type(exc).__name__}: {exc} (SRFER_DEBUG=1 shows the traceback)",
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _report_skipped(failed: list[tuple[Path, str]]) -> None:
    for _path, why in failed:
        err_console.print(f"[red]skipped:[/red] {why}", soft_wrap=True)


def args_for(cls: type, values: dict[str, Any], out_dir: Path) -> Any:
    """A recipe's argument dataclass from the command's parameters (`--out` is `out`)."""
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}, out=out_dir)


def print_training_result(result: dict[str, Any], out_dir: Path, as_json: bool) -> None:
    if as_json:
        print_json(result)
    elif result["best"] is None:
        stdout.print(f"no epoch finished; state in {out_dir}")
    else:
        stdout.print(f"best {result['monitor']} {result['best']:.4f} at epoch {result['best_epoch']} "
                     f"→ {out_dir / 'best.safetensors'}")  # fmt: skip


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


@app.command("train-sr")
@friendly_errors
def train_sr_command(
    data: Path = typer.Option(
        ..., help="CelebA root (img_align_celeba/ + partition file) or any face folder."
    ),
    out_dir: Path = typer.Option(
        ..., "--out", help="Run folder: checkpoints, metrics.jsonl, samples/, curves.png."
    ),
    epochs: int = typer.Option(10, min=1, help="Total epochs (pre-training + adversarial)."),
    pretrain_epochs: int = typer.Option(5, min=0, help="Pixel-MSE (SRResNet) epochs before the GAN phase."),
    batch_size: int = typer.Option(16, min=1),
    lr: float = typer.Option(1e-4, help="Adam learning rate (betas 0.9, 0.999), cosine-annealed."),
    scale: int = typer.Option(4, help="Upscaling factor: 2, 4 or 8."),
    hr_size: int = typer.Option(128, help="HR crop size (center crop); LR is hr_size/scale."),
    channels: int = typer.Option(3, help="3 (RGB) or 1 (grayscale)."),
    blocks: int = typer.Option(16, min=1, help="Residual blocks in the generator."),
    features: int = typer.Option(64, min=4, help="Generator feature channels."),
    bicubic_skip: bool = typer.Option(
        False, help="Learn a residual over bicubic (not in the seed; converges faster)."
    ),
    perceptual: str = typer.Option("vgg19", help="Content loss backbone: vgg19, none or ckpt:PATH."),
    vgg_weights: Path | None = typer.Option(None, help="torchvision VGG19 state dict (offline use)."),
    content_weight: float = typer.Option(0.006, help="Weight of the perceptual MSE (SRGAN: 0.006)."),
    adversarial_weight: float = typer.Option(
        1e-3, help="Weight of the adversarial BCE (0: no discriminator is trained)."
    ),
    pixel_weight: float = typer.Option(0.0, help="Weight of a pixel MSE term in the GAN phase."),
    texture_weight: float = typer.Option(0.0, help="Weight of the Gram-matrix texture loss."),
    lr_sizes: str = typer.Option(
        "", help="LR face sizes drawn per step, e.g. 32,16 (target: HR resized to size × scale)."
    ),
    identity_weight: float = typer.Option(
        0.0,
        help="Weight of ‖e(SR) − e(HR)‖² with --perceptual ckpt:<face embedder> (identity-aware SR); "
        "best.safetensors is then the identity-closest epoch.",
    ),
    epoch_size: int = typer.Option(0, min=0, help="Samples per epoch (0: the whole training split)."),
    val_limit: int = typer.Option(0, min=0, help="Validate on the first N val images only (0: all)."),
    cache: bool = typer.Option(True, help="Decode every crop once into memory."),
    workers: Workers = -1,
    device: Device = "auto",
    amp: Amp = True,
    init: Init = None,
    resume: Resume = False,
    save_every: SaveEvery = 0,
    patience: int = typer.Option(0, min=0, help="Early stop after N epochs without PSNR gain (0: off)."),
    seed: Seed = 0,
    as_json: AsJson = False,
) -> None:
    """Train the face super-resolution generator (SRResNet, then SRGAN)."""
    from srfer.train.sr import SRTrainArgs, train_sr

    print_training_result(train_sr(args_for(SRTrainArgs, locals(), out_dir)), out_dir, as_json)


@app.command("train-fer")
@friendly_errors
def train_fer_command(
    data: Path = typer.Option(..., help="FER2013 root (train/ val/), a split folder, or fer2013.csv."),
    out_dir: Path = typer.Option(..., "--out", help="Run folder: checkpoints, metrics.jsonl, curves.png."),
    ferplus: Path | None = typer.Option(None, help="fer2013new.csv: FER+ majority-vote labels (with a CSV)."),
    arch: str = typer.Option("mcnn", help="mcnn, resnet18, resnet50, mobilenet_v3_small or vgg16_bn."),
    width: int = typer.Option(32, min=4, help="mcnn branch width (first stage channels)."),
    pretrained: bool = typer.Option(
        False, "--pretrained", help="Torchvision archs: start from ImageNet weights (hub cache or download)."
    ),
    backbone_weights: Path | None = typer.Option(
        None, help="Offline --pretrained: torchvision's ImageNet state dict for --arch (.pth/.safetensors)."
    ),
    epochs: int = typer.Option(300, min=1, help="Maximum epochs (early stopping usually ends sooner)."),
    patience: int = typer.Option(10, min=0, help="Early stop after N epochs without val accuracy gain."),
    batch_size: int = typer.Option(64, min=1),
    lr: float = typer.Option(1e-3, help="Adam learning rate, cosine-annealed."),
    loss: str = typer.Option("ce", help="ce (cross-entropy) or focal."),
    label_smoothing: float = typer.Option(0.0, min=0.0, max=0.5, help="Cross-entropy label smoothing."),
    gamma: float = typer.Option(2.0, min=0.0, help="Focal loss γ."),
    alpha: str = typer.Option("auto", help="Focal loss α: auto (inverse class frequency) or none."),
    balanced: bool = typer.Option(False, help="Class-balanced sampling."),
    upscale: bool = typer.Option(
        False, "--upscale", help="Train on faces degraded to --lr-size and restored."
    ),
    upscaler: str = typer.Option("sr", help="With --upscale: sr (frozen SR generator) or bicubic."),
    lr_size: int = typer.Option(12, help="With --upscale: the low resolution in px (48 px faces: ×4 → 12)."),
    sr_weights: Path | None = typer.Option(
        None, help="SR checkpoint for --upscaler sr (default: shipped FER SR)."
    ),
    epoch_size: int = typer.Option(0, min=0, help="Samples per epoch (0: the whole training split)."),
    workers: Workers = -1,
    device: Device = "auto",
    amp: Amp = True,
    init: Init = None,
    resume: Resume = False,
    save_every: SaveEvery = 0,
    seed: Seed = 0,
    as_json: AsJson = False,
) -> None:
    """Train the facial-expression classifier (7 FER2013 emotions, 48×48 gray)."""
    from srfer.train.fer import FerTrainArgs, train_fer

    print_training_result(train_fer(args_for(FerTrainArgs, locals(), out_dir)), out_dir, as_json)


@app.command("train-embed")
@friendly_errors
def train_embed_command(
    data: Path = typer.Option(
        ..., help="CelebA root (identity_CelebA.txt + partition file) or identity folders."
    ),
    out_dir: Path = typer.Option(..., "--out", help="Run folder: checkpoints, metrics.jsonl, curves.png."),
    backbone: str = typer.Option(
        "face-resnet", help="face-resnet (compact, 128-d) or inception-resnet-v1 (512-d)."
    ),
    pretrained: str | None = typer.Option(None, help="inception-resnet-v1 only: vggface2 or casia-webface."),
    backbone_weights: Path | None = typer.Option(None, help="facenet-pytorch weights file (offline use)."),
    dim: int = typer.Option(128, min=8, help="Embedding size (face-resnet)."),
    size: int = typer.Option(128, min=32, help="Face crop size in px (the SR output size)."),
    input_size: int = typer.Option(
        0, min=0, help="face-resnet: resize crops to this before the network (0: --size); 64 is ~4× cheaper."
    ),
    epochs: int = typer.Option(50, min=1),
    patience: int = typer.Option(10, min=0, help="Early stop after N epochs without val accuracy gain."),
    p: int = typer.Option(16, "--p", min=2, help="Identities per batch (P×K sampling)."),
    k: int = typer.Option(4, "--k", min=2, help="Images per identity per batch."),
    lr: float = typer.Option(3e-4, help="Adam learning rate, cosine-annealed."),
    margin: float = typer.Option(0.2, min=0.0, help="Triplet margin α."),
    mining: str = typer.Option("semi-hard", help="semi-hard (FaceNet), batch-hard or all."),
    upscale: bool = typer.Option(
        False, "--upscale", help="Train on faces degraded to --lr-size and restored."
    ),
    upscaler: str = typer.Option("sr", help="With --upscale: sr or bicubic."),
    lr_size: str = typer.Option("32", help="With --upscale: px, or several (16,24,32) drawn per batch."),
    sr_weights: Path | None = typer.Option(None, help="SR checkpoint (default: the shipped CelebA ×4)."),
    epoch_size: int = typer.Option(0, min=0, help="Images per epoch (0: the training split's size)."),
    workers: Workers = -1,
    device: Device = "auto",
    amp: Amp = True,
    init: Init = None,
    resume: Resume = False,
    save_every: SaveEvery = 0,
    seed: Seed = 0,
    as_json: AsJson = False,
) -> None:
    """Train the triplet-loss face embedder (FaceNet-style, online mining over P×K batches)."""
    from srfer.train.embed import EmbedTrainArgs, train_embed

    print_training_result(train_embed(args_for(EmbedTrainArgs, locals(), out_dir)), out_dir, as_json)


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
    save_dir: Path = typer.Option(Path("srfer-eval-embed"), help="Where the PNG plots go."),
    batch_size: int = typer.Option(128, min=1),
    device: Device = "auto",
    seed: Seed = 0,
    as_json: AsJson = False,
) -> None:
    """Verification (1:1): 10-fold accuracy ± std, ROC AUC, EER, TAR@FAR; or a size sweep."""
    from srfer import evaluation, plots

    if sweep:
        sizes = _parse_sizes(sweep)
        with _progress_bar() as progress:
            task = progress.add_task("sweeping", total=len(sizes))
            result = evaluation.sweep_embed(
                data,
                sizes,
                split,
                pairs,
                n_pairs,
                weights,
                sr_weights,
                device,
                batch_size,
                seed,
                progress=lambda: progress.advance(task),
                identity_sr_weights=identity_sr_weights,
            )
        title = "verification accuracy vs probe size"
        result["plot"] = str(
            plots.plot_sweep(sizes, result["accuracy"], save_dir / "sweep.png", "accuracy", title)
        )
        if as_json:
            print_json(result)
            return
        _print_sweep(result, f"{title} · {result['data']}")
        return
    result = evaluation.evaluate_embed(
        data, split, pairs, n_pairs, weights, device, upscale, upscaler, lr_size, sr_weights, batch_size, seed
    )
    roc = {"verification": result["roc"]}
    result["plot"] = str(plots.plot_roc(roc, {"verification": result["roc_auc"]}, save_dir / "roc.png",
                                        result["input"]))  # fmt: skip
    if as_json:
        print_json(result)
        return
    for note in result["notes"]:
        err_console.print(f"[yellow]note:[/yellow] {note}")
    stdout.print(
        f"{result['pairs']} pairs · {result['identities']} identities · {result['input']} · {result['data']}"
    )
    stdout.print(f"accuracy {result['accuracy']:.2%} ± {result['accuracy_std']:.2%} (10-fold) · "
              f"ROC AUC {result['roc_auc']:.4f} · EER {result['eer']:.2%} · "
              f"TAR@FAR=1e-3 {result['tar_at_far_0.001']:.2%} · "
              f"TAR@FAR=1e-2 {result['tar_at_far_0.01']:.2%} · "
              f"τ {result['threshold']:.4f} · ROC plot {result['plot']}")  # fmt: skip


def _parse_sizes(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SrferError(f"--sweep {text!r}: expected comma-separated sizes like 128,64,32") from None


def _print_sweep(result: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("size (px)", justify="right")
    for name in result["accuracy"]:
        table.add_column(name, justify="right")
    for i, size in enumerate(result["sizes"]):
        table.add_row(str(size), *(f"{v[i]:.2%}" for v in result["accuracy"].values()))
    stdout.print(table)
    stdout.print(f"plot: {result['plot']}")
    for note in result.get("notes", []):
        err_console.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True)


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
    from srfer.evaluation import load_embedder
    from srfer.gallery import Gallery
    from srfer.imageio import expand_inputs
    from srfer.pipeline import embed_face_files, model_id
    from srfer.train.runtime import resolve_device

    dev = resolve_device(device)
    model = load_embedder(weights, dev)
    size = int(model.meta.get("train_args", {}).get("size", 128))
    embeddings, good, failed = embed_face_files(expand_inputs(images), model, size, dev)
    _report_skipped(failed)
    if not good:
        raise SrferError(f"no usable face image for {name!r}")
    with Gallery(gallery, create=True) as g:
        added = g.add(name, embeddings, [str(p) for p in good], model_id(model))
    stdout.print(f"enrolled {name!r}: {added} embedding(s) in {gallery}")


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
    from srfer.evaluation import embedder_threshold, load_embedder
    from srfer.gallery import Gallery
    from srfer.imageio import expand_inputs
    from srfer.pipeline import embed_face_files, model_id
    from srfer.train.runtime import resolve_device

    dev = resolve_device(device)
    with Gallery(gallery) as g:
        model = load_embedder(weights, dev)
        tau = threshold if threshold is not None else embedder_threshold(model)
        size = int(model.meta.get("train_args", {}).get("size", 128))
        embeddings, good, failed = embed_face_files(expand_inputs(images), model, size, dev)
        matches = g.identify(embeddings, model_id(model), tau) if good else []
    _report_skipped(failed)
    for path, match in zip(good, matches, strict=True):
        if as_json:
            typer.echo(json.dumps({"image": str(path), "identity": match.name, "nearest": match.nearest,
                                   "distance": match.distance, "threshold": match.threshold}))  # fmt: skip
        else:
            stdout.print(
                f"{path}: {match.name} (nearest {match.nearest}, d = {match.distance:.4f}, τ = {tau:.4f})"
            )
    if not good:
        raise typer.Exit(1)


gallery_app = typer.Typer(help="List or remove gallery identities.", no_args_is_help=True)
app.add_typer(gallery_app, name="gallery")


@gallery_app.command("list")
@friendly_errors
def gallery_list_command(
    gallery: Path = typer.Option(..., help="SQLite gallery file."),
    as_json: AsJson = False,
) -> None:
    """Enrolled identities and how many embeddings each has."""
    from srfer.gallery import Gallery

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
    from srfer.gallery import Gallery

    with Gallery(gallery) as g:
        removed = g.remove(name)
    stdout.print(f"removed {name!r} ({removed} embedding(s))")


pipeline_app = typer.Typer(help="All stages in order (SR → expression → identity).", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")


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
    from srfer.train.all_stages import train_all

    result = train_all(data_root, runs, profile, device, vgg_weights, evaluate)
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
    from srfer.weights import weights_report

    rows = weights_report()
    if as_json:
        print_json(rows)
        return
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
    from srfer.pipeline import environment_report

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


def _progress_bar():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
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
    sr: str = typer.Option("auto", help="auto: super-resolve faces under 64 px; always; never."),
    gallery: Path | None = typer.Option(None, help="SQLite gallery (srfer enroll) to name the faces."),
    threshold: float | None = typer.Option(None, help="Gallery τ on squared L2 (default: the model's)."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Add each face's embedding to --json."),
    sr_weights: Path | None = typer.Option(None, help="SR checkpoint (default: the shipped CelebA ×4)."),
    fer_weights: Path | None = typer.Option(None, help="Expression checkpoint (default: shipped)."),
    embed_weights: Path | None = typer.Option(None, help="Embedder checkpoint (default: shipped)."),
    identity_sr_weights: Path | None = typer.Option(
        None, help="SR for the faces the embedder sees (default: the shipped identity-aware SR, if any)."
    ),
    tiny_expression: bool = typer.Option(
        True, help="Faces ≤ 20 px: expression from the grayscale FER SR + the --upscale-trained classifier."
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
) -> None:
    """Find faces, super-resolve the small ones, and say each face's expression (and identity)."""
    from srfer.imageio import expand_inputs
    from srfer.pipeline import PredictOptions, Predictor, PredictWeights

    paths = expand_inputs(inputs)
    options = PredictOptions(sr=sr, detect=detect, min_face=min_face, det_threshold=det_threshold,
                             margin=margin, batch_size=batch_size, threshold=threshold,
                             embeddings=embeddings, tiny_expression=tiny_expression)  # fmt: skip
    weights = PredictWeights(sr=sr_weights, fer=fer_weights, embed=embed_weights,
                             identity_sr=identity_sr_weights, sr_fer=fer_sr_weights,
                             fer_upscale=upscale_fer_weights)  # fmt: skip
    predictor = Predictor(options, device, weights, gallery)

    def stream(result) -> None:
        if as_json:
            for face in result.faces:
                typer.echo(json.dumps(face.to_json()))
        if not result.faces:
            err_console.print(f"[yellow]no face found:[/yellow] {result.path}", soft_wrap=True)

    try:
        with _progress_bar() as progress:
            task = progress.add_task("predicting", total=len(paths))
            report = predictor.run(paths, save_dir, lambda n: progress.advance(task, n), stream)
    finally:
        predictor.close()
    _report_skipped(report.failed)
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
        sr_used = "yes" if f.sr else "no"
        if f.expression_model == "fer-upscale":
            sr_used += " (+FER SR)"
        table.add_row(
            str(f.index), box, str(f.face_px), sr_used, f"{f.expression} {f.confidence:.0%}", identity
        )
    stdout.print(table)


@app.command("upscale")
@friendly_errors
def upscale_command(
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or glob patterns."),
    out_dir: Path = typer.Option(
        ..., "-o", "--out", help="Output folder; each result is OUT/<input stem>.png."
    ),
    weights: Path | None = typer.Option(None, help="SR checkpoint (default: the shipped CelebA ×4 model)."),
    compare: bool = typer.Option(False, help="Also write <stem>_compare.png: input | bicubic | SR."),
    flip_tta: bool = typer.Option(False, help="Average with the mirrored face's result (2× the compute)."),
    device: Device = "auto",
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per input."),
) -> None:
    """Super-resolve face images of any size (×4 with the default weights)."""
    from srfer.imageio import expand_inputs
    from srfer.pipeline import upscale_files

    paths = expand_inputs(inputs)
    with _progress_bar() as progress:
        task = progress.add_task("upscaling", total=len(paths))
        report = upscale_files(
            paths, out_dir, weights, device, lambda: progress.advance(task), compare, flip_tta
        )
    for src, dst in report.renamed:
        err_console.print(f"[yellow]name clash:[/yellow] {src} → {dst}")
    _report_skipped(report.failed)
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


@app.command("eval-sr")
@friendly_errors
def eval_sr_command(
    data: Path = typer.Option(..., help="CelebA root or face folder."),
    split: str = typer.Option("val", help="train, val, test or all."),
    weights: Path | None = typer.Option(None, help="SR checkpoint (default: the shipped model)."),
    limit: int = typer.Option(0, min=0, help="Evaluate the first N images only (0: all)."),
    hr_size: int | None = typer.Option(None, help="HR crop size (default: the checkpoint's)."),
    batch_size: int = typer.Option(32, min=1),
    device: Device = "auto",
    per_image: bool = typer.Option(False, help="Also print every image's row in the table."),
    flip_tta: bool = typer.Option(False, help="Average with the mirrored face's result (2× the compute)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the full result (with per-image rows) as JSON."
    ),
) -> None:
    """PSNR/SSIM of the SR model vs bicubic on held-out faces."""
    from srfer.evaluation import evaluate_sr

    with _progress_bar() as progress:
        task = progress.add_task("evaluating", total=None)
        result = evaluate_sr(
            data,
            split,
            weights,
            device,
            batch_size,
            limit,
            hr_size,
            lambda n: progress.update(task, completed=n),
            flip_tta,
        )
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


@app.command("eval-fer")
@friendly_errors
def eval_fer_command(
    data: Path = typer.Option(..., help="FER2013 root (with --split), a split folder, or fer2013.csv."),
    split: str = typer.Option("val", help="train, val or test."),
    ferplus: Path | None = typer.Option(None, help="fer2013new.csv for FER+ labels (with a CSV)."),
    weights: Path | None = typer.Option(None, help="Classifier checkpoint (default: the shipped one)."),
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
    flip_tta: bool = typer.Option(
        False, help="Average each face's probabilities with its mirror's (not with --sweep)."
    ),
    save_dir: Path = typer.Option(Path("srfer-eval-fer"), help="Where the PNG plots go."),
    batch_size: int = typer.Option(256, min=1),
    device: Device = "auto",
    as_json: AsJson = False,
) -> None:
    """Expression metrics: accuracy, per-class P/R/F1, confusion matrix, ROC; or a size sweep."""
    from srfer import evaluation, plots
    from srfer.data.fer import EMOTIONS

    if sweep and flip_tta:
        raise SrferError("--flip-tta is for one evaluation; the --sweep protocol has no TTA")
    if sweep:
        try:
            sizes = [int(x) for x in sweep.split(",") if x.strip()]
        except ValueError:
            raise SrferError(
                f"--sweep {sweep!r}: expected comma-separated sizes like 48,24,16,12,8"
            ) from None
        with _progress_bar() as progress:
            task = progress.add_task("sweeping", total=len(sizes))
            result = evaluation.sweep_fer(
                data,
                sizes,
                split,
                weights,
                upscale_weights,
                sr_weights,
                device,
                ferplus,
                batch_size,
                progress=lambda: progress.advance(task),
            )
        result["plot"] = str(plots.plot_sweep(sizes, result["accuracy"], save_dir / "sweep.png", "accuracy",
                                              "FER accuracy vs face size"))  # fmt: skip
        if as_json:
            print_json(result)
            return
        _print_sweep(result, f"FER accuracy vs face size · {result['data']}")
        return
    result = evaluation.evaluate_fer(
        data, split, weights, device, upscale, upscaler, lr_size, sr_weights, ferplus, batch_size, flip_tta
    )
    aucs = {name: row["auc"] for name, row in result["per_class"].items()}
    title = f"{result['input']} · acc {result['accuracy']:.2%}"
    confusion = plots.plot_confusion(result["confusion_matrix"], EMOTIONS, save_dir / "confusion.png", title)
    roc = plots.plot_roc(result["roc"], aucs, save_dir / "roc.png", result["input"])
    result["plots"] = {"confusion": str(confusion), "roc": str(roc)}
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{result['images']} faces · {result['input']} · {result['data']}")
    for col in ("class", "precision", "recall", "F1", "ROC AUC", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, row in result["per_class"].items():
        table.add_row(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                      f"{row['auc']:.3f}", str(row["support"]))  # fmt: skip
    stdout.print(table)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
    matrix.add_column("")
    for name in EMOTIONS:
        matrix.add_column(name[:5], justify="right")
    for name, row in zip(EMOTIONS, result["confusion_matrix"], strict=True):
        matrix.add_row(name, *map(str, row))
    stdout.print(matrix)
    stdout.print(f"accuracy {result['accuracy']:.2%} · macro F1 {result['macro_f1']:.3f} · "
              f"macro AUC {result['macro_auc']:.3f} · plots in {save_dir}")  # fmt: skip


@app.command("export")
@friendly_errors
def export_command(
    checkpoint: Path = typer.Argument(..., help="A training checkpoint (e.g. RUN/best.safetensors)."),
    target: Path = typer.Argument(..., help="Where to write the weights-only checkpoint."),
    half: bool = typer.Option(True, help="Store fp16 tensors (half the size)."),
    threshold: float | None = typer.Option(
        None, help="Embedders: the verification τ to store (from eval-embed); identify and predict use it."
    ),
) -> None:
    """Write a weights-only copy of a checkpoint (no optimizer state), e.g. for weights/."""
    from srfer.pipeline import export_weights
    from srfer.weights import sha256

    path = export_weights(checkpoint, target, half, threshold)
    stdout.print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {sha256(path)})")
