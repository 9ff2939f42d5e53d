"""Feature-level SR: a generator inside the recogniser's trunk, trained, swept and refused where
it does not belong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from synthetic import tiny_checkpoints
from typer.testing import CliRunner

from srfer.cli import app
from srfer.core.errors import SrferError
from srfer.infer.load import load_embedder, load_feature_sr
from srfer.models.embedder import Embedder, EmbedderConfig
from srfer.models.feature_sr import FeatureSR, FeatureSRConfig, FeatureSREmbedder, branch_channels

runner = CliRunner()
CPU = torch.device("cpu")


@pytest.mark.parametrize("branch", [1, 2, 4])
def test_an_untrained_generator_leaves_the_recogniser_as_it_was(branch: int) -> None:
    torch.manual_seed(0)
    embedder = Embedder(EmbedderConfig(backbone="dlib-resnet29", widths=(4, 6, 8, 8))).eval()
    config = FeatureSRConfig(branch=branch, channels=branch_channels(embedder, branch), width=8, blocks=1)
    whole = FeatureSREmbedder(embedder, FeatureSR(config)).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(whole(x), embedder(x), atol=1e-6)
    with pytest.raises(ValueError, match="stages 1 to 4"):
        branch_channels(embedder, 5)
    with pytest.raises(ValueError, match="dlib-resnet29"):
        branch_channels(Embedder(EmbedderConfig(widths=(4, 8, 8, 8), dim=16, input_size=32)), 1)


@pytest.mark.slow
def test_train_then_sweep_a_feature_sr(ten_people: Path, tmp_path: Path) -> None:
    tiny = tiny_checkpoints(tmp_path)
    out = tmp_path / "fsr"
    args = ["train-feature-sr", "--data", str(ten_people), "--out", str(out), "--embed-weights",
            str(tiny["embed_aligned"]), "--lr-size", "16", "--width", "8", "--blocks", "1", "--epochs", "1",
            "--epoch-size", "8", "--batch-size", "4", "--workers", "0", "--device", "cpu"]  # fmt: skip
    args.append("--json")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"train_maps", "train_embedding", "val_accuracy_16px_clean", "val_accuracy_16px_realistic"} <= set(
        history[-1]
    )
    fsr = out / "best.safetensors"
    aligned = str(tiny["embed_aligned"])
    sweep = ["eval-embed", "--data", str(ten_people), "--weights", aligned, "--sweep", "32,16",
             "--feature-sr-weights", str(fsr), "--x8-weights", "none", "--sr-weights", str(tiny["sr"]),
             "--n-pairs", "20", "--degradation", "clean", "--device", "cpu", "--json"]  # fmt: skip
    result = runner.invoke(app, sweep)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "feature_sr" in report["accuracy"] and report["feature_sr_weights"] == str(fsr)
    assert set(report["tar_at_far_1e3"]) == set(report["accuracy"])
    with pytest.raises(SrferError, match="trained with another embedder"):
        load_feature_sr(load_embedder(tiny["embed"], CPU), fsr, CPU)
    swapped = {str(out): str(tmp_path / "x"), str(tiny["embed_aligned"]): str(tiny["embed"])}
    wrong = runner.invoke(app, [swapped.get(a, a) for a in args])
    assert wrong.exit_code == 1 and "dlib-resnet29" in wrong.output
