"""`weights/manifest.json`'s facts that come from the files themselves: sha256, size, checkpoint
kind and input contract (`srfer.infer.load.contract_of`). `tools/sync_manifest.py` writes them
when a shipped file changes; the rest of each entry (role, how it was made, what it measured,
its model card) is written by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from srfer.core.checkpoint import load_checkpoint
from srfer.core.errors import writing
from srfer.core.weights import sha256
from srfer.infer.load import contract_of

# the order of an entry's keys: the generated facts after the role, the hand-written rest after
ORDER = ("role", "status", "sha256", "bytes", "kind", "contract", "flip_tta", "train", "command", "metrics")


def file_facts(path: Path) -> dict[str, Any]:
    """What a weights file says of itself."""
    ckpt = load_checkpoint(path)
    return {"sha256": sha256(path), "bytes": path.stat().st_size, "kind": ckpt.kind,
            "contract": contract_of(ckpt.kind, ckpt.config, ckpt.meta)}  # fmt: skip


def synced(manifest: dict[str, dict[str, Any]], folder: Path) -> dict[str, dict[str, Any]]:
    """`manifest` with every entry's file facts read from `folder`'s files."""
    out = {}
    for name, entry in manifest.items():
        merged = {**entry, **file_facts(folder / name)}
        out[name] = {k: merged[k] for k in ORDER if k in merged} | {
            k: v for k, v in merged.items() if k not in ORDER
        }
    return out


def write_manifest(manifest: dict[str, dict[str, Any]], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, partial=tmp):
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, path)


# ------------------------------------------------------------------------- model cards
CARD_HEADER = """# Shipped weights: model cards

One card per file in this folder, written from `manifest.json` (`tools/sync_manifest.py`; a
test keeps the two in step), so the card and the facts the code reads cannot disagree. The
numbers are validation numbers, measured on this project's CPU: `docs/results.md` has every
table with its date and command, `docs/weights-history.md` the full history of each file
(training curves, ablations, what was tried and not shipped). Every file is a srfer
checkpoint: safetensors tensors plus a JSON header (architecture, training arguments, data,
metrics); loading never unpickles anything.
"""
DEFAULT_LICENCE = "trained here; the training data's own research-use terms apply (CelebA, FER2013, FER+)"
PERCENT_WORDS = ("accuracy", "f1", "auc", "tar", "eer", "verification")


def model_cards(manifest: dict[str, dict[str, Any]]) -> str:
    """weights/README.md: a short card per shipped file."""
    return "\n".join([CARD_HEADER, *(_card(name, entry) for name, entry in manifest.items())])


def _card(name: str, e: dict[str, Any]) -> str:
    role = f"role `{e['role']}`" if e.get("role") else "no role"
    rows = [
        ("what", e.get("architecture", "")),
        ("input", _contract(e["kind"], e["contract"])),
        ("data", e.get("data", "")),
        ("measured", _metrics(e.get("metrics", {}))),
        ("licence", e.get("license", DEFAULT_LICENCE)),
        ("made by", f"`{e['command']}`" if e.get("command") else ""),
        ("sha256", f"`{e['sha256']}` ({e['bytes'] / 1e6:.1f} MB)"),
    ]
    status = f"\n{e['status'][0].upper()}{e['status'][1:]}.\n" if e.get("status") else ""
    table = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows if v)
    return f"## `{name}` — {role}\n{status}\n| | |\n| --- | --- |\n{table}\n"


def _contract(kind: str, c: dict[str, Any]) -> str:
    framing = (
        "centre crops" if c.get("framing") == "centre-crop" else f"faces aligned onto `{c.get('framing')}`"
    )
    if kind == "sr-generator":
        colour = "RGB" if c["channels"] == 3 else "gray"
        lr = c["hr_size"] // c["scale"]
        return f"{colour} faces ×{c['scale']} (trained {lr} → {c['hr_size']} px on {framing}); any size in"
    if kind == "fer-classifier":
        colour = "gray" if c["channels"] == 1 else "RGB"
        return f"{colour} {c['input_size']} px faces → {len(c['classes'])} classes: {', '.join(c['classes'])}"
    if kind == "face-embedder":
        return (f"{c['crop_size']} px {framing} (resized to {c['input_size']} inside) → L2-normalised "
                f"embedding; τ {c['threshold']:.4g} on squared L2")  # fmt: skip
    if kind == "verify-head":
        return f"two faces' embeddings and sizes → same person when the logit > 0 (made for {c['embedder']})"
    if kind == "feature-sr":
        return f"{c['embedder']}'s maps after stage {c['branch']} → restored maps of the same shape"
    return kind


def _metrics(metrics: dict[str, Any]) -> str:
    where = ", ".join(str(metrics[k]) for k in ("split", "protocol") if isinstance(metrics.get(k), str))
    numbers = [f"{k.replace('_', ' ')} {_number(k, v)}" for k, v in metrics.items()
               if isinstance(v, int | float) and not isinstance(v, bool)][:8]  # fmt: skip
    return "; ".join(numbers) + (f" ({where})" if where else "")


def _number(key: str, value: float) -> str:
    if any(word in key for word in PERCENT_WORDS) and 0 <= value <= 1:
        return f"{value:.2%}"
    if "psnr" in key:
        return f"{value:.2f} dB"
    return f"{value:g}"
