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
