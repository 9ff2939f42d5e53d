"""Checkpoints: one `.safetensors` file = tensors + a JSON header.

Why this format: safetensors never unpickles, so a checkpoint from anywhere is safe to
load, and its string metadata carries the JSON that rebuilds the model (`kind` +
`config`), the training arguments, the data description and the metrics. A checkpoint
alone rebuilds its model.

Training state that is not a model (optimizer moments, RNG states, counters) is
flattened: tensors go into the safetensors body under `<prefix>.<path>`, everything else
into the JSON header, and `unflatten` puts the nested structure back.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from srfer.core.errors import SrferError, writing

FORMAT = "srfer-checkpoint-v1"
_TENSOR_REF = "__tensor__"


@dataclass
class Checkpoint:
    """What a checkpoint file holds once loaded."""

    kind: str
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors stored under `prefix.` with the prefix stripped (e.g. a model's state dict)."""
        start = prefix + "."
        return {k[len(start) :]: v for k, v in self.tensors.items() if k.startswith(start)}


def flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested dict/list/tuple into `tensors`; return the JSON skeleton."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {_TENSOR_REF: prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[k, flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    return obj


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten` (dict keys keep their type: optimizer state uses int keys)."""
    if isinstance(skeleton, dict):
        if _TENSOR_REF in skeleton:
            return tensors[skeleton[_TENSOR_REF]]
        if "__tuple__" in skeleton:
            return tuple(unflatten(v, tensors) for v in skeleton["__tuple__"])
        return {k: unflatten(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


def save_checkpoint(
    path: str | Path,
    kind: str,
    config: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write atomically: a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    header = {"format": FORMAT, "kind": kind, "config": config, "meta": meta or {}}
    body = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, partial=tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_file(body, tmp, {"srfer": json.dumps(header)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors writes 0600; exported weights are meant to be shared
        os.replace(tmp, path)
    return path


def _save_file(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """safetensors' `save_file`, its I/O failures as the `OSError`s they are (safetensors
    reports them as `SafetensorError`s naming its own temporary file)."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:
        found = re.search(r"I/O error: (.+?) \(os error (\d+)\)", str(exc))
        if found is None:
            raise OSError(str(exc)) from None
        raise OSError(int(found.group(2)), found.group(1)) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path: str | Path, expect_kind: str | tuple[str, ...] | None = None) -> Checkpoint:
    """Load a srfer checkpoint; wrong files and wrong kinds are one-line `SrferError`s."""
    path = Path(path)
    if not path.is_file():
        raise SrferError(f"{path}: checkpoint not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("srfer")
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise SrferError(f"{path}: not a safetensors checkpoint ({exc})") from None
    if raw is None:
        raise SrferError(f"{path}: a safetensors file, but not a srfer checkpoint (no srfer header)")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError:
        raise SrferError(f"{path}: the srfer header is not valid JSON") from None
    if header.get("format") != FORMAT:
        raise SrferError(f"{path}: unknown checkpoint format {header.get('format')!r}")
    ckpt = Checkpoint(header["kind"], header["config"], tensors, header.get("meta", {}))
    wanted = (expect_kind,) if isinstance(expect_kind, str) else expect_kind
    if wanted and ckpt.kind not in wanted:
        raise SrferError(
            f"{path}: this is a {ckpt.kind!r} checkpoint, expected {' or '.join(map(repr, wanted))}"
        )
    return ckpt
