"""`srfer export`: a training checkpoint → a weights-only file (what ships in weights/)."""

from __future__ import annotations

from pathlib import Path

from srfer.checkpoint import load_checkpoint, save_checkpoint
from srfer.errors import SrferError
from srfer.inference import embedder_crop_size, load_network
from srfer.onnx_runtime import export_onnx


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
    model = load_network("", checkpoint, kind)
    return export_onnx(model, target, embedder_crop_size(model) if kind == "face-embedder" else None)
