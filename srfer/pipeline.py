"""Inference chain: load checkpoints, super-resolve images, evaluate SR quality."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srfer.checkpoint import load_checkpoint, save_checkpoint
from srfer.data.degradations import to_signed, to_unit
from srfer.errors import SrferError
from srfer.imageio import load_image, pil_to_tensor, save_image_atomic, tensor_to_pil
from srfer.models import Generator, build_model
from srfer.train.runtime import amp_dtype, autocast, resolve_device
from srfer.weights import resolve_weights, weights_status

MIN_UPSCALE_SIDE = 8  # below this there is no face left to super-resolve
MAX_UPSCALE_SIDE = 1024  # face crops; beyond this the 4× feature maps need many GB


def load_network(role: str, weights: Path | None, kind: str, device: torch.device | None = None) -> nn.Module:
    """A trained network of `kind` from `weights` (or the default for `role`), eval mode.

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
    weights: Path | None = None, device: torch.device | None = None, role: str = "sr"
) -> Generator:
    """The SR generator from `weights` (or the default for `role`)."""
    return load_network(role, weights, "sr-generator", device)  # type: ignore[return-value]


_AUTO = object()


@torch.no_grad()
def super_resolve(
    generator: Generator, images01: torch.Tensor, dtype=_AUTO, flip_tta: bool = False
) -> torch.Tensor:
    """(N, C, h, w) in [0, 1] → (N, C, h·s, w·s) in [0, 1]; bf16 on CUDA unless `dtype` says.

    `flip_tta` averages the result with that of the mirrored face (a ×2 self-ensemble, as in
    EDSR's "+" but with the one symmetry faces have: no rotations, which training never saw)."""
    device = next(generator.parameters()).device
    x = to_signed(images01.to(device)).contiguous(memory_format=torch.channels_last)
    dtype = amp_dtype(device) if dtype is _AUTO else dtype
    with autocast(device, dtype):
        out = generator(x).float()
        if flip_tta:
            out = (out + generator(x.flip(-1)).float().flip(-1)) / 2
    return to_unit(out)


def make_restorer(upscaler: str, device: torch.device, sr_weights: Path | None = None, role: str = "sr-fer"):
    """LR batch in [0, 1] → restored batch: `bicubic` (identity here; `degrade_and_restore`
    resizes back bicubically) or `sr` (a frozen generator; gray ↔ RGB adapted)."""
    if upscaler == "bicubic":
        return lambda lr: lr
    if upscaler != "sr":
        raise SrferError(f"unknown --upscaler {upscaler!r}; use sr or bicubic")
    generator = load_generator(sr_weights, device, role)
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


@dataclass
class UpscaleReport:
    written: list[tuple[Path, Path, tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    renamed: list[tuple[Path, Path]] = field(default_factory=list)


def unique_output(out_dir: Path, stem: str, taken: set[str]) -> Path:
    """OUT/<stem>.png, or OUT/<stem>-1.png, … when another input had the same stem."""
    name, n = f"{stem}.png", 0
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return out_dir / name


def check_upscale_size(path: Path, width: int, height: int) -> None:
    if min(width, height) < MIN_UPSCALE_SIDE:
        raise SrferError(
            f"{path}: {width}×{height} px is too small to super-resolve "
            f"(at least {MIN_UPSCALE_SIDE} px per side)"
        )
    if max(width, height) > MAX_UPSCALE_SIDE:
        raise SrferError(
            f"{path}: {width}×{height} px is over the {MAX_UPSCALE_SIDE} px per side "
            "limit for upscale; crop the face first"
        )


def comparison_strip(lr01: torch.Tensor, sr01: torch.Tensor) -> torch.Tensor:
    """input (nearest) | bicubic | SR, side by side at the SR size, for looking rather than reading."""
    from srfer.data.degradations import bicubic_resize

    size = tuple(sr01.shape[-2:])
    nearest = torch.nn.functional.interpolate(lr01[None], size=size, mode="nearest")[0]
    gap = torch.ones(sr01.shape[0], size[0], 4)
    return torch.cat([nearest, gap, bicubic_resize(lr01, size), gap, sr01.cpu()], dim=2)


def upscale_files(
    paths: list[Path], out_dir: Path, weights: Path | None = None, device: str = "auto", progress=None,
    compare: bool = False, flip_tta: bool = False,
) -> UpscaleReport:  # fmt: skip
    """Super-resolve every image (see `expand_inputs`) into out_dir (PNG, input stem kept); bad files are
    reported in `failed` and skipped. `compare` also writes <stem>_compare.png strips."""
    generator = load_generator(weights, resolve_device(device))
    mode = "L" if generator.config.channels == 1 else "RGB"
    report, taken = UpscaleReport(), set()
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        try:
            img = load_image(path, mode=mode)
            check_upscale_size(path, *img.size)
            sr = super_resolve(generator, pil_to_tensor(img).unsqueeze(0), flip_tta=flip_tta)[0]
        except SrferError as exc:
            report.failed.append((path, str(exc)))
        else:
            target = unique_output(out_dir, path.stem, taken)
            if target.stem != path.stem:
                report.renamed.append((path, target))
            save_image_atomic(tensor_to_pil(sr), target)
            if compare:
                strip = comparison_strip(pil_to_tensor(img), sr)
                save_image_atomic(tensor_to_pil(strip), target.with_name(f"{target.stem}_compare.png"))
            report.written.append((path, target, img.size, (sr.shape[2], sr.shape[1])))
        if progress is not None:
            progress()
    return report


def export_weights(checkpoint: Path, target: Path, half: bool = True) -> Path:
    """Strip training state (optimizers, RNG, other networks) and optionally cast to fp16."""
    ckpt = load_checkpoint(checkpoint)
    tensors = {
        f"model.{k}": (v.half() if half and v.is_floating_point() else v)
        for k, v in ckpt.section("model").items()
    }
    keep = ("data", "train_args", "recipe", "metrics")
    meta = {k: ckpt.meta[k] for k in keep if k in ckpt.meta}
    meta["exported_from"] = str(checkpoint)
    meta["dtype"] = "float16" if half else "float32"
    return save_checkpoint(target, ckpt.kind, ckpt.config, tensors, meta)


def environment_report() -> dict[str, Any]:
    import torchvision

    import srfer

    device = resolve_device("auto")
    report: dict[str, Any] = {
        "srfer": srfer.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
        "amp_dtype": str(amp_dtype(device) or "off (fp32)"),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    try:
        from importlib.metadata import version

        report["facenet-pytorch"] = version("facenet-pytorch")
    except Exception:  # noqa: BLE001 - absent is a valid answer
        report["facenet-pytorch"] = "not installed"
    report["weights"] = weights_status()
    return report


@torch.no_grad()
def embed_face_files(paths: list[Path], embedder: nn.Module, size: int, device: torch.device):
    """Embeddings of face crops (center crop like the training data); bad files are
    returned as (path, reason) instead of stopping the batch."""
    from srfer.data.faces import center_crop_hr

    faces, good, failed = [], [], []
    for path in paths:
        try:
            faces.append(center_crop_hr(path, size, 3).float().div(255))
            good.append(path)
        except SrferError as exc:
            failed.append((path, str(exc)))
    if not faces:
        return torch.empty(0), good, failed
    return embedder(torch.stack(faces).to(device)).cpu(), good, failed


def model_id(model: nn.Module) -> str:
    """A gallery's model identity: the sha256 of the checkpoint file the model came from."""
    from srfer.weights import sha256

    return sha256(Path(model.source))
