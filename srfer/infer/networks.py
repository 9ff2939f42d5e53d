"""Load trained networks and run them on tensors: the one layer under training, evaluation
and the `predict` chain.

It reads checkpoints (by role, through the default-weights resolution, or a given file),
super-resolves, restores low-resolution batches, turns a loader of faces into expression
probabilities or embeddings, and says which model an embedding came from. It imports
models, data transforms, checkpoints and weights only — never `train/`, `evaluation`,
`predict` or the CLI (tests/test_layering.py keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from srfer.accel.deploy import switch_to_cpu_deploy
from srfer.accel.onnx import on_runtime
from srfer.core.checkpoint import load_checkpoint
from srfer.core.errors import SrferError
from srfer.core.runtime import amp_dtype, autocast
from srfer.core.weights import FLIP_TTA_ROLES, resolve_weights, sha256
from srfer.data.degradations import LowResPath, bicubic_resize, to_signed, to_unit
from srfer.faces.align import FaceAligner, FaceTemplate, template_from_json
from srfer.models import Generator, build_model
from srfer.models.fer import ClassifierEnsemble, FlipAveraged

Restorer = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class RunContext:
    """Where a network runs and in which autocast precision (None: fp32)."""

    device: torch.device
    dtype: torch.dtype | None

    def autocast(self):
        return autocast(self.device, self.dtype)


def inference_context(device: torch.device) -> RunContext:
    """Inference precision for `device`: bf16 on CUDA, fp32 on CPU (see `amp_dtype`)."""
    return RunContext(device, amp_dtype(device))


# ---------------------------------------------------------------------------------- loading
def load_network(
    role: str, weights: Path | None, kind: str | tuple[str, ...], device: torch.device | None = None
) -> nn.Module:
    """A trained network of `kind` (or of one of several kinds) from `weights` (or the default
    for `role`), eval mode.

    The module gets `source` (its file) and `meta` (the checkpoint's JSON header)."""
    path = resolve_weights(role, weights)
    ckpt = load_checkpoint(path, expect_kind=kind)
    model = build_model(ckpt.kind, ckpt.config)
    try:
        model.load_state_dict({k: v.float() for k, v in ckpt.section("model").items()})
    except RuntimeError as exc:
        raise SrferError(f"{path}: weights do not match their config ({str(exc)[:160]})") from None
    model.source, model.meta = path, ckpt.meta  # type: ignore[assignment]
    return model.eval().to(device or torch.device("cpu"))


def load_generator(
    weights: Path | None = None, device: torch.device | None = None, role: str = "sr", runtime: str = "torch"
) -> Generator:
    """The SR generator from `weights` (or the default for `role`); `runtime` torch or onnx
    (ONNX Runtime, `srfer.accel.onnx`).

    Its weights are made channels-last (so are the embedder's and the classifiers'): oneDNN
    then runs the convolutions in its fast layout whatever layout the input has (CPU, batch 1:
    SR 14 vs 8 faces/s for a 32 px crop whose tensor came from a PIL image, the dlib embedder
    13 vs 19 ms; on 2026-12-03, one thread, the dlib-trunk classifier 5.3 vs 9.0 ms and the
    MCNN 8.7 vs 9.4 ms, best of six). On the CPU with torch its tail runs as a
    `PhaseSplitConv` (`Generator.switch_to_deploy`): the same function, 31 → 26 ms a face."""
    device = device or torch.device("cpu")
    generator = load_network(role, weights, "sr-generator", device).to(memory_format=torch.channels_last)
    if deploys(runtime, device):
        generator.switch_to_deploy()  # its own re-parameterisation: packing measured no gain here
    return on_runtime(generator, runtime, device)  # type: ignore


def load_classifier(
    weights: Path | None, device: torch.device, role: str = "fer", runtime: str = "torch"
) -> nn.Module:
    """A trained expression classifier (default: the shipped one for `role`, answering with
    flip TTA where `FLIP_TTA_ROLES` says). `weights` "a,b,c" (several files, comma-separated)
    loads an ensemble averaging their probabilities; named files answer without flip (that is
    `eval-fer --flip-tta`'s choice)."""
    flip = weights is None and role in FLIP_TTA_ROLES
    paths = ensemble_paths(weights)

    def member(path: Path | None) -> nn.Module:
        network = load_network(role, path, "fer-classifier", device).to(memory_format=torch.channels_last)
        network = on_runtime(deployed(network, runtime, device), runtime, device)
        if not flip:
            return network
        mirrored = FlipAveraged(network)
        mirrored.source, mirrored.meta = network.source, {**network.meta, "flip_tta": True}  # type: ignore[assignment]
        return mirrored

    if len(paths) == 1:
        return member(paths[0])
    members = [member(p) for p in paths]
    try:
        ensemble = ClassifierEnsemble(members)
    except ValueError as exc:
        raise SrferError(f"{weights}: {exc}") from None
    ensemble.source = ",".join(str(m.source) for m in members)  # type: ignore[assignment]
    ensemble.meta = {"ensemble": [m.meta for m in members]}  # type: ignore[assignment]
    return ensemble


def ensemble_paths(weights: Path | None) -> list[Path | None]:
    """`weights` as the files it names: one, or several comma-separated (a path that exists
    as written is one file, commas and all)."""
    if weights is None or Path(weights).exists() or "," not in str(weights):
        return [weights]
    return [Path(p.strip()) for p in str(weights).split(",") if p.strip()]


def load_embedder(
    weights: Path | None, device: torch.device, runtime: str = "torch", deploy: bool = True
) -> nn.Module:
    """The embedder from `weights` (or the default); `deploy=False` keeps the trained form
    (a network that will be moved or trained from)."""
    model = load_network("embed", weights, "face-embedder", device).to(memory_format=torch.channels_last)
    if deploy:
        model = deployed(model, runtime, device)
    return on_runtime(model, runtime, device, side=embedder_crop_size(model))


def deploys(runtime: str, device: torch.device) -> bool:
    """Whether inference re-parameterises its networks: with torch on the CPU, where it was
    measured (elsewhere a network runs as trained)."""
    return runtime == "torch" and device.type == "cpu"


def deployed(model: nn.Module, runtime: str, device: torch.device) -> nn.Module:
    """`model` re-parameterised for inference where `deploys` says (`srfer.accel.deploy`: the same
    function; one face 1.1–1.7× faster); elsewhere `model` as it is."""
    if deploys(runtime, device):
        switch_to_cpu_deploy(model)
    return model


def model_device(model: nn.Module) -> torch.device:
    """Where a network runs: its parameters' device (CPU for an ONNX Runtime twin)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def embedder_threshold(model: nn.Module) -> float:
    """τ from evaluation when one was written, else the training validation's τ."""
    meta = getattr(model, "meta", {})
    tau = meta.get("threshold", meta.get("metrics", {}).get("val_threshold"))
    if tau is None:
        raise SrferError(f"{model.source}: no verification threshold stored; pass --threshold")
    return float(tau)


def embedder_crop_size(model: nn.Module) -> int:
    """The face crop size the embedder is fed: its input contract's `crop_size` (converted
    networks), else `train-embed --size` (128 before it was recorded). Crops are resized to
    the network's own input size inside it."""
    meta = getattr(model, "meta", {})
    return int(meta.get("input", {}).get("crop_size", meta.get("train_args", {}).get("size", 128)))


def embedder_template(model: nn.Module) -> FaceTemplate | None:
    """The face template the embedder's input contract names (its checkpoint's
    `input.alignment`); None for srfer's own centre-cropped embedders."""
    return template_from_json(getattr(model, "meta", {}).get("input", {}).get("alignment"))


def embedder_aligner(model: nn.Module, size: int | None = None) -> FaceAligner | None:
    """A `FaceAligner` onto the embedder's template at `size` (default: its crop size)."""
    template = embedder_template(model)
    if template is None:
        return None
    device = model_device(model)  # MTCNN runs where the embedder does
    return FaceAligner(size or embedder_crop_size(model), template, device=device)


def model_id(model: nn.Module) -> str:
    """A gallery's model identity: the sha256 of the checkpoint file the model came from."""
    return sha256(Path(model.source))


# ------------------------------------------------------------------------- super-resolution
_AUTO = object()


@torch.no_grad()
def super_resolve(
    generator: Generator, images01: torch.Tensor, dtype=_AUTO, flip_tta: bool = False
) -> torch.Tensor:
    """(N, C, h, w) in [0, 1] → (N, C, h·s, w·s) in [0, 1]; bf16 on CUDA unless `dtype` says.

    `flip_tta` averages the result with that of the mirrored face (a ×2 self-ensemble, as in
    EDSR's "+" but with the one symmetry faces have: no rotations, which training never saw)."""
    device = model_device(generator)
    x = to_signed(images01.to(device)).contiguous(memory_format=torch.channels_last)
    dtype = amp_dtype(device) if dtype is _AUTO else dtype
    with autocast(device, dtype):
        out = generator(x).float()
        if flip_tta:
            out = (out + generator(x.flip(-1)).float().flip(-1)) / 2
    return to_unit(out)


def bicubic_baseline(lr: torch.Tensor, hr_size: tuple[int, int]) -> torch.Tensor:
    """LR in [-1, 1] → bicubic upscale in [0, 1] (the baseline every SR number is against)."""
    return bicubic_resize(to_unit(lr), hr_size)


def make_restorer(
    upscaler: str, device: torch.device, sr_weights: Path | None = None, role: str = "sr-fer",
    runtime: str = "torch",
) -> Restorer:  # fmt: skip
    """LR batch in [0, 1] → restored batch: `bicubic` (identity here; `degrade_and_restore`
    resizes back bicubically) or `sr` (a frozen generator; gray ↔ RGB adapted)."""
    if upscaler == "bicubic":
        return lambda lr: lr
    if upscaler != "sr":
        raise SrferError(f"unknown --upscaler {upscaler!r}; use sr or bicubic")
    generator = load_generator(sr_weights, device, role, runtime)
    for p in generator.parameters():
        p.requires_grad_(False)

    def restore(lr: torch.Tensor) -> torch.Tensor:
        channels = lr.shape[1]
        if generator.config.channels == 3 and channels == 1:
            return super_resolve(generator, lr.expand(-1, 3, -1, -1)).mean(1, keepdim=True)
        if generator.config.channels == 1 and channels == 3:
            return super_resolve(generator, lr.mean(1, keepdim=True)).expand(-1, 3, -1, -1)
        return super_resolve(generator, lr)

    restore.source = generator.source  # type: ignore[attr-defined]
    return restore


# ------------------------------------------------------------------ recognisers over loaders
def predict_probs(
    model: nn.Module,
    loader: DataLoader,
    ctx: RunContext,
    low_res: LowResPath | None = None,
    flip_tta: bool = False,
    step: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and labels over a loader (model in eval mode, no grad).
    `flip_tta` averages them with the mirrored face's (training flips faces too); `step`
    picks the size of a several-size `low_res` (as a training step would)."""
    model.eval()
    classifier = FlipAveraged(model) if flip_tta else model
    probs, labels = [], []
    with torch.no_grad():
        for batch in loader:
            x = batch["image"].to(ctx.device)
            if low_res is not None:
                x = low_res(x, step)
            with ctx.autocast():
                p = classifier(x).float().softmax(1)
            probs.append(p.cpu())
            labels.append(batch["label"])
    return torch.cat(probs), torch.cat(labels)


def embed_all(
    model: nn.Module, loader: DataLoader, ctx: RunContext, low_res: LowResPath | None = None, step: int = 0
) -> torch.Tensor:
    """Embeddings of every image a loader yields, in order (eval mode, no grad)."""
    model.eval()
    out = []
    with torch.no_grad():
        for batch in loader:
            x = batch["image"].to(ctx.device)
            if low_res is not None:
                x = low_res(x, step)
            with ctx.autocast():
                out.append(model(x).float().cpu())
    return torch.cat(out)


def pair_distances(
    embeddings: torch.Tensor, pairs: list[tuple[int, int, bool]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared L2 distance of each (a, b, same) pair, and the `same` flags."""
    a = torch.tensor([p[0] for p in pairs])
    b = torch.tensor([p[1] for p in pairs])
    same = torch.tensor([p[2] for p in pairs])
    return (embeddings[a] - embeddings[b]).pow(2).sum(1), same
