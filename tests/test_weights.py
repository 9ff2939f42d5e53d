"""The shipped weights as typed entries: `weights/manifest.json` is their one source, its
file-derived facts are in step with the files, and every role has its entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srfer.core.weights import MANIFEST, SR_MODELS, Weights, catalog, shipped_entries

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_file_has_exactly_one_role() -> None:
    """No file ships that no role uses (a superseded file is cited by git revision in docs)."""
    roles = [e.role for e in shipped_entries()]
    assert sorted(roles) == sorted(w.value for w in Weights)  # type: ignore[type-var]
    assert all(model in Weights for model in SR_MODELS.values())


def test_an_entry_says_what_its_network_takes() -> None:
    assert Weights.SR_X8.entry.contract["scale"] == 8 and Weights.SR.entry.contract["scale"] == 4
    assert Weights.FERPLUS.entry.classes is not None and Weights.FERPLUS.entry.classes[-1] == "contempt"
    assert Weights.EMBED.entry.threshold is not None and Weights.EMBED.entry.kind == "face-embedder"
    assert Weights.FER.entry.flip_tta and Weights.FER_UPSCALE.entry.flip_tta and not Weights.SR.entry.flip_tta
    assert all(entry.train for entry in catalog().values())  # a missing file names how to make it


def test_the_manifest_is_the_shipped_one(tmp_path: Path, monkeypatch) -> None:
    """Files are searched for elsewhere ($SRFER_WEIGHTS), but what ships is the manifest's."""
    import srfer.core.weights as w

    monkeypatch.setattr(w, "PACKAGE_WEIGHTS", tmp_path)
    assert w.Weights.SR.entry.file in json.loads(MANIFEST.read_text())
    assert w.Weights.SR.optional() is None  # not in the searched folder


@pytest.mark.slow
def test_the_manifest_is_in_step_with_the_files() -> None:
    """sha256, size, kind and input contract as the files say, and the model cards as the
    manifest says (tools/sync_manifest.py writes both)."""
    from srfer.convert.manifest import model_cards, synced

    current = json.loads(MANIFEST.read_text())
    fresh = synced(current, ROOT / "weights")
    stale = [name for name in current if current[name] != fresh[name]]
    assert not stale, f"run tools/sync_manifest.py: out of step for {stale}"
    assert (ROOT / "weights" / "README.md").read_text() == model_cards(current), "run tools/sync_manifest.py"
    assert sorted(current) == sorted(p.name for p in (ROOT / "weights").glob("*.safetensors"))


def test_a_loaded_shipped_model_carries_its_entry() -> None:
    import torch

    from srfer.infer.load import load_generator

    model = load_generator(None, torch.device("cpu"), Weights.SR_FER)
    assert model.entry is Weights.SR_FER.entry and model.contract == dict(Weights.SR_FER.entry.contract)
