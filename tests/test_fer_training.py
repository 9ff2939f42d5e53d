"""Expression stage: losses, sampler, recipe and CLI on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.models as tvm
from PIL import Image
from typer.testing import CliRunner

from srfer.checkpoint import load_checkpoint, save_checkpoint
from srfer.cli import app
from srfer.data.fer import EMOTIONS
from srfer.inference import predict_probs
from srfer.losses import FocalLoss, inverse_frequency
from srfer.models import Generator, GeneratorConfig
from srfer.models.fer import FerConfig, build_fer
from srfer.train.engine import EpochSampler, StepContext

runner = CliRunner()


def test_focal_loss_equals_cross_entropy_at_gamma_0() -> None:
    logits, target = torch.randn(16, 7), torch.randint(0, 7, (16,))
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, target), ce, atol=1e-6)
    assert FocalLoss(gamma=2.0)(logits, target) < ce  # down-weights easy examples


def test_inverse_frequency_alpha() -> None:
    weights = inverse_frequency([10, 30, 0])
    assert weights[2] == 0 and weights[0] == pytest.approx(3 * weights[1]) and weights[:2].mean() == 1


def test_weighted_sampler_balances_classes() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    weights = 1.0 / torch.bincount(labels).double()[labels]
    drawn = [labels[i].item() for i, _ in EpochSampler(100, 2000, seed=0, weights=weights)]
    assert 0.4 < sum(drawn) / len(drawn) < 0.6


@pytest.fixture(scope="module")
def fer_root(tmp_path_factory) -> Path:
    """Two images per emotion per split; each class a distinct brightness so it is learnable."""
    root = tmp_path_factory.mktemp("fer")
    for split, n in (("train", 3), ("val", 2)):
        for label, name in enumerate(EMOTIONS):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                value = 20 + 30 * label + i
                Image.fromarray(np.full((48, 48), value, np.uint8), "L").save(
                    root / split / name / f"{i}.png"
                )
    return root


@pytest.fixture(scope="module")
def gray_sr(tmp_path_factory) -> Path:
    gen = Generator(GeneratorConfig(channels=1, features=4, blocks=1))
    tensors = {f"model.{k}": v for k, v in gen.state_dict().items()}
    return save_checkpoint(tmp_path_factory.mktemp("sr") / "sr.safetensors", "sr-generator",
                           gen.config.to_dict(), tensors)  # fmt: skip


TINY = "--width 4 --batch-size 7 --workers 0 --device cpu --epochs 1".split()


@pytest.mark.slow
def test_train_and_eval_fer_end_to_end(fer_root: Path, gray_sr: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(run), *TINY,
                                 "--loss", "focal", "--balanced", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["monitor"] == "val_accuracy"
    weights = str(run / "best.safetensors")
    evaluated = runner.invoke(app, ["eval-fer", "--data", str(fer_root), "--weights", weights, "--json",
                                    "--save-dir", str(tmp_path / "plots"), "--device", "cpu"])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["images"] == 14 and set(report["per_class"]) == set(EMOTIONS)
    assert np.array(report["confusion_matrix"]).sum() == 14
    assert (tmp_path / "plots" / "confusion.png").is_file() and (tmp_path / "plots" / "roc.png").is_file()
    models = ["--weights", weights, "--upscale-weights", weights, "--sr-weights", str(gray_sr)]
    x8_net = Generator(GeneratorConfig(features=4, blocks=1, scale=8))  # RGB: takes the gray face as RGB
    x8_file = save_checkpoint(tmp_path / "x8.safetensors", "sr-generator", x8_net.config.to_dict(),
                              {f"model.{k}": v for k, v in x8_net.state_dict().items()})  # fmt: skip
    models += ["--x8-weights", str(x8_file)]
    sweep = runner.invoke(app, ["eval-fer", "--data", str(fer_root), *models, "--sweep", "48,12,8", "--json",
                                "--save-dir", str(tmp_path / "plots"), "--device", "cpu"])  # fmt: skip
    assert sweep.exit_code == 0, sweep.output
    table = json.loads(sweep.stdout)["accuracy"]
    assert set(table) == {"hr_classifier+bicubic", "hr_classifier+sr", "hr_classifier+x8_sr",
                          "upscale_classifier+sr"}  # fmt: skip
    assert all(len(v) == 3 for v in table.values()) and (tmp_path / "plots" / "sweep.png").is_file()
    plots = ["--save-dir", str(tmp_path / "plots"), "--device", "cpu"]
    tta = runner.invoke(
        app, ["eval-fer", "--data", str(fer_root), "--weights", weights, "--flip-tta", "--json", *plots]
    )
    assert tta.exit_code == 0 and "flip TTA" in json.loads(tta.stdout)["input"]
    both = runner.invoke(app, ["eval-fer", "--data", str(fer_root), *models, "--sweep", "48", "--flip-tta"])
    assert both.exit_code == 1 and "--flip-tta" in both.output and "Traceback" not in both.output


def test_flip_tta_averages_the_face_and_its_mirror() -> None:
    torch.manual_seed(0)
    model = build_fer(FerConfig(width=4, fused=16)).eval()
    x, y = torch.rand(5, 1, 48, 48), torch.zeros(5, dtype=torch.long)
    ctx = StepContext(torch.device("cpu"), None)
    plain, _ = predict_probs(model, [{"image": x, "label": y}], ctx)
    mirrored, _ = predict_probs(model, [{"image": x.flip(-1), "label": y}], ctx)
    tta, _ = predict_probs(model, [{"image": x, "label": y}], ctx, flip_tta=True)
    assert torch.allclose(tta, (plain + mirrored) / 2, atol=1e-6) and not torch.allclose(tta, plain)


def test_train_fer_with_sr_upscaling(fer_root: Path, gray_sr: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(tmp_path / "up"), *TINY,
                                 "--upscale", "--sr-weights", str(gray_sr), "--lr-size", "12"])  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--arch", "alexnet"], "unknown arch"), (["--loss", "hinge"], "unknown --loss"),
     (["--upscale", "--upscaler", "nearest"], "unknown --upscaler"),
     (["--upscale", "--sr-weights", "/nope.safetensors"], "not found"),
     (["--pretrained"], "mcnn has no ImageNet weights"),
     (["--arch", "resnet18", "--backbone-weights", "/nope.pth"], "not found"),
     (["--arch", "resnet18", "--pretrained", "--init", "/x.safetensors"], "both choose")],
)  # fmt: skip
def test_train_fer_bad_options(fer_root: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(
        app, ["train-fer", "--data", str(fer_root), "--out", str(tmp_path / "r"), *TINY, *extra]
    )
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_train_fer_init_fine_tunes_a_trained_classifier(fer_root: Path, gray_sr: Path, tmp_path: Path):
    def train(out: str, *extra: str):
        data = ["--data", str(fer_root), "--out", str(tmp_path / out)]
        return runner.invoke(app, ["train-fer", *data, *TINY, *extra])

    assert train("hr").exit_code == 0
    init = ["--init", str(tmp_path / "hr" / "best.safetensors")]
    tuned = train("up", *init, "--upscale", "--sr-weights", str(gray_sr))
    assert tuned.exit_code == 0, tuned.output
    wider = train("w", *init, "--width", "8")
    assert wider.exit_code != 0 and "--init" in wider.output and "width" in wider.output
    assert "Traceback" not in wider.output


@pytest.mark.slow
def test_train_fer_from_imagenet_weights(fer_root: Path, tmp_path: Path, monkeypatch) -> None:
    arch = ["--arch", "mobilenet_v3_small", *TINY]
    imagenet = tmp_path / "mobilenet_v3_small-imagenet.pth"
    torch.save(tvm.mobilenet_v3_small(weights=None).state_dict(), imagenet)  # stand-in, same layout
    run = tmp_path / "run"
    args = [
        "train-fer",
        "--data",
        str(fer_root),
        "--out",
        str(run),
        *arch,
        "--backbone-weights",
        str(imagenet),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    pretrained = load_checkpoint(run / "last.safetensors").meta["pretrained"]
    assert pretrained["imagenet_weights"] == str(imagenet)
    assert pretrained["initialised_not_loaded"] == ["classifier.3.weight", "classifier.3.bias"]
    # offline, nothing cached: one line that names the way out
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))

    def offline(*_a, **_k):
        raise OSError("network unreachable")

    monkeypatch.setattr(type(tvm.MobileNet_V3_Small_Weights.DEFAULT), "get_state_dict", offline)
    result = runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(tmp_path / "off"), *arch,
                                 "--pretrained"])  # fmt: skip
    assert (
        result.exit_code == 1 and "--backbone-weights" in result.output and "Traceback" not in result.output
    )
    wrong = tmp_path / "resnet.pth"
    torch.save(tvm.resnet18(weights=None).state_dict(), wrong)
    result = runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(tmp_path / "w"), *arch,
                                 "--backbone-weights", str(wrong)])  # fmt: skip
    assert result.exit_code == 1 and "not torchvision mobilenet_v3_small" in result.output


@pytest.mark.slow
def test_seed_fixes_initialisation_too(fer_root: Path, tmp_path: Path) -> None:
    """Two runs with one seed in one process end with the same weights (the networks used to
    be built before the run seeded, from whatever state the global RNG was in)."""

    def weights(out: str, seed: str) -> dict[str, torch.Tensor]:
        args = ["train-fer", "--data", str(fer_root), "--out", str(tmp_path / out), *TINY, "--seed", seed]
        assert runner.invoke(app, args).exit_code == 0
        return load_checkpoint(tmp_path / out / "last.safetensors").section("model")

    first, again, other = weights("a", "3"), weights("b", "3"), weights("c", "4")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
