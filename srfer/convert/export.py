"""`srfer export`: a training checkpoint → a weights-only file (what ships in weights/)."""

from __future__ import annotations

from pathlib import Path

from srfer.accel.onnx import export_onnx
from srfer.core.checkpoint import load_checkpoint, save_checkpoint
from srfer.core.errors import SrferError
from srfer.infer.load import EMBEDDER, load_network


def export_weights(checkpoint: Path, target: Path, half: bool = True, threshold: float | None = None) -> Path:
    """Strip training state (optimizers, RNG, other networks) and optionally cast to fp16.
    `threshold` stores an embedder's verification τ (measured by eval-embed) with it."""
    ckpt = load_checkpoint(checkpoint)
    if threshold is not None and ckpt.kind != "face-embedder":
        raise SrferError(f"{checkpoint}: --threshold is for face embedders, this is a {ckpt.kind}")
    tensors = {
        f"model.{k}": (v.half() if half and v.is_floating_point() else v)
        for k, v in ckpt.section("model").items()
    }
    keep = ("data", "train_args", "recipe", "metrics", "source", "license", "input", "identity_embedder")
    meta = {k: ckpt.meta[k] for k in keep if k in ckpt.meta}
    meta["exported_from"] = str(checkpoint)
    meta["dtype"] = "float16" if half else "float32"
    if threshold is not None:
        meta["threshold"] = threshold
    elif "threshold" in ckpt.meta:  # re-exporting keeps a stored τ
        meta["threshold"] = ckpt.meta["threshold"]
    return save_checkpoint(target, ckpt.kind, ckpt.config, tensors, meta)


ONNX_KINDS = ("sr-generator", "fer-classifier", "face-embedder")


def export_onnx_file(checkpoint: Path, target: Path) -> Path:
    """A trained network (training or weights-only checkpoint) → an ONNX graph at `target`."""
    kind = load_checkpoint(checkpoint).kind
    if kind not in ONNX_KINDS:
        raise SrferError(f"{checkpoint}: a {kind!r} network has no ONNX export ({', '.join(ONNX_KINDS)} do)")
    model = load_network(checkpoint, kind)
    side = model.contract["crop_size"] if kind == EMBEDDER else None
    return export_onnx(model.network, target, checkpoint, model.meta, side)


def average_weights(
    checkpoints: list[Path],
    target: Path,
    bn_data: Path | None = None,
    bn_images: int = 8192,
    half: bool = True,
) -> Path:
    """Stochastic weight averaging (Izmailov et al., UAI 2018) over saved epochs: the mean of
    the networks' weights, written weights-only. An average's BatchNorm statistics are not
    the average of the statistics, so a network with BatchNorm needs them re-estimated on
    training faces (`bn_data`: a FER root, for expression classifiers; torch's
    `swa_utils.update_bn` over `bn_images` faces); without data such a network is refused."""
    import torch
    from torch import nn

    from srfer.models import build_model

    if len(checkpoints) < 2:
        raise SrferError("give two or more checkpoints to average")
    first = load_checkpoint(checkpoints[0])
    states = [first.section("model")]
    for path in checkpoints[1:]:
        ckpt = load_checkpoint(path, expect_kind=first.kind)
        if ckpt.config != first.config:
            raise SrferError(f"{path}: another network than {checkpoints[0]} (configs differ)")
        states.append(ckpt.section("model"))
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[-1].items()}  # fmt: skip
    model = build_model(first.kind, first.config)  # every file is read once, above
    model.load_state_dict(mean)
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        _reestimate_batchnorm(model, first.kind, bn_data, bn_images)
    tensors = {f"model.{k}": (v.half() if half and v.is_floating_point() else v)
               for k, v in model.state_dict().items()}  # fmt: skip
    meta = {k: first.meta[k] for k in ("data", "train_args", "recipe", "input") if k in first.meta}
    meta |= {"averaged_from": [str(p) for p in checkpoints], "dtype": "float16" if half else "float32",
             "batchnorm": f"re-estimated on {bn_images} faces of {bn_data}" if bn_data else None}  # fmt: skip
    return save_checkpoint(target, first.kind, first.config, tensors, meta)


def _reestimate_batchnorm(model, kind: str, bn_data: Path | None, bn_images: int) -> None:
    import torch
    from torch.utils.data import DataLoader

    from srfer.data.fer import FerDataset, load_fer

    if kind != "fer-classifier" or bn_data is None:
        raise SrferError(
            "this network has BatchNorm: its averaged weights need the statistics re-estimated on training "
            "faces; pass --bn-data FER_ROOT (expression classifiers)"
        )
    samples = load_fer(bn_data, "train", subset=bn_images)
    loader = DataLoader(FerDataset(samples), batch_size=128)
    with torch.no_grad():
        torch.optim.swa_utils.update_bn((batch["image"] for batch in loader), model)
    model.eval()
