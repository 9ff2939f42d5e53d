"""The shared trunk: an expression classifier that shares the recogniser's first stages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from srfer.cli import app
from srfer.core.checkpoint import load_checkpoint, save_checkpoint
from srfer.models import Embedder, EmbedderConfig
from srfer.models.fer import FerConfig, build_fer
from srfer.models.multitask import SharedTrunk

runner = CliRunner()


def recogniser(seed: int) -> Embedder:
    torch.manual_seed(seed)
    embedder = Embedder(EmbedderConfig(backbone="dlib-resnet29")).eval()
    for p in embedder.parameters():  # dlib's affines are not the identity: folding must matter
        p.data.add_(0.05 * torch.randn_like(p))
    return embedder


def sharing(embedder: Embedder, stages: int = 3) -> torch.nn.Module:
    classifier = build_fer(FerConfig(arch="dlib-resnet29", trunk_size=150, shared_stages=stages)).eval()
    assert classifier.share_trunk_(embedder.backbone) > 0
    return classifier


def test_shared_stages_are_frozen_and_left_out_of_the_trunk_learning_rate() -> None:
    classifier = build_fer(FerConfig(arch="dlib-resnet29", shared_stages=2))
    frozen = {id(p) for m in classifier.shared_modules() for p in m.parameters()}
    assert frozen and all(not p.requires_grad for m in classifier.shared_modules() for p in m.parameters())
    assert not frozen & {id(p) for p in classifier.pretrained_parameters()}
    assert all(p.requires_grad for p in classifier.trunk.stages[2].parameters())
    with pytest.raises(ValueError, match="dlib-resnet29"):
        FerConfig(arch="mcnn", shared_stages=1)


def test_one_pass_gives_the_recogniser_s_embedding_and_the_classifier_s_logits() -> None:
    embedder = recogniser(0)
    classifier = sharing(embedder)
    both = SharedTrunk(embedder, classifier)
    faces = torch.rand(3, 3, 150, 150)
    with torch.no_grad():
        embedding, logits = both(faces)
        assert torch.allclose(embedding, embedder(faces), atol=1e-5)
        assert torch.allclose(logits, classifier(faces), atol=1e-4)
    assert logits.shape == (3, 7) and embedding.shape == (3, 128)


def test_a_classifier_that_shares_another_trunk_or_none_is_refused() -> None:
    classifier = sharing(recogniser(0))
    with pytest.raises(ValueError, match="not this embedder"):
        SharedTrunk(recogniser(1), classifier)
    with pytest.raises(ValueError, match="shares no stages"):
        SharedTrunk(recogniser(0), build_fer(FerConfig(arch="dlib-resnet29")))


@pytest.mark.slow
def test_train_fer_shared_stages_keeps_them_the_recogniser_s(fer_root: Path, tmp_path: Path) -> None:
    """`train-fer --shared-stages 2`: the stages come from --share-trunk-with and stay it after
    training (the rest learns); the result pairs with that embedder and no other."""
    from srfer.infer.load import load_network

    embedder = recogniser(0)
    file = save_checkpoint(tmp_path / "embed.safetensors", "face-embedder", embedder.config.to_dict(),
                           {f"model.{k}": v for k, v in embedder.state_dict().items()})  # fmt: skip
    out = tmp_path / "run"
    common = [
        "--data",
        str(fer_root),
        "--batch-size",
        "7",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--epochs",
        "1",
    ]
    share = ["--shared-stages", "2", "--share-trunk-with", str(file), "--no-amp"]
    args = ["train-fer", *common, *share, "--out", str(out), "--arch", "dlib-resnet29"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(out / "last.safetensors").meta["shared_trunk"]
    assert meta["face_recogniser"] == str(file) and meta["stages"] == 2
    classifier = load_network(out / "last.safetensors", "fer-classifier").network
    assert classifier.config.trunk_size == 150
    SharedTrunk(embedder, classifier)  # the shared stages are still the recogniser's
    fresh = sharing(embedder, 2)
    assert not torch.equal(classifier.trunk.stages[2].state_dict()["0.conv1.conv.weight"],
                           fresh.trunk.stages[2].state_dict()["0.conv1.conv.weight"])  # fmt: skip
    wrong = runner.invoke(app, ["train-fer", *common, *share, "--out", str(tmp_path / "other")])
    assert wrong.exit_code == 1 and "dlib-resnet29" in wrong.output and "Traceback" not in wrong.output
    missing = ["--shared-stages", "2", "--share-trunk-with", str(tmp_path / "nope.safetensors")]
    gone = runner.invoke(app, ["train-fer", *common, *missing, "--out", str(tmp_path / "gone"),
                               "--arch", "dlib-resnet29"])  # fmt: skip
    assert gone.exit_code == 1 and "nope.safetensors" in gone.output and "Traceback" not in gone.output
