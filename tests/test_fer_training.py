"""Expression stage: losses, sampler, recipe and CLI on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.models as tvm
from typer.testing import CliRunner, Result

from srfer.cli import app
from srfer.core.checkpoint import load_checkpoint, save_checkpoint
from srfer.data.fer import EMOTIONS
from srfer.infer.run import predict_probs
from srfer.models import Embedder, EmbedderConfig, Generator, GeneratorConfig
from srfer.models.fer import FerConfig, build_fer
from srfer.train.losses import FocalLoss, inverse_frequency
from srfer.train.recipe import StepContext
from srfer.train.schedule import EpochSampler

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
    columns = {"hr_classifier+bicubic", "hr_classifier+sr", "hr_classifier+x8_sr", "upscale_classifier+sr"}
    assert set(table) == columns | {f"{c} (realistic)" for c in columns}  # both degradations, side by side
    assert all(table[c][0] == table[f"{c} (realistic)"][0] for c in columns)  # 48 px is not degraded
    assert all(len(v) == 3 for v in table.values()) and (tmp_path / "plots" / "sweep.png").is_file()
    models[-1] = "none"  # --x8-weights none: the column is left out, and said so
    no_x8 = runner.invoke(app, ["eval-fer", "--data", str(fer_root), *models, "--sweep", "12", "--json",
                                "--device", "cpu", "--degradation", "clean"])  # fmt: skip
    assert set(json.loads(no_x8.stdout)["accuracy"]) == columns - {"hr_classifier+x8_sr"}
    assert "hr_classifier+x8_sr" not in json.loads(no_x8.stdout)["accuracy"]
    assert any("--x8-weights none" in n for n in json.loads(no_x8.stdout)["notes"])
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
     (["--pretrained"], "mcnn has no pretrained weights"), (["--targets", "mode"], "unknown --targets"),
     (["--targets", "votes", "--loss", "focal"], "use --loss ce"),
     (["--arch", "resnet18", "--backbone-weights", "/nope.pth"], "not found"),
     (["--arch", "resnet18", "--pretrained", "--init", "/x.safetensors"], "both choose"),
     (["--arch", "faceapi-expression", "--pretrained"], "--model expression"),
     (["--distill-from", "/nope.safetensors"], "not found"),
     (["--distill-from", "/nope.safetensors", "--loss", "focal"], "use --loss ce")],
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


@pytest.mark.slow
def test_train_fer_dlib_trunk_from_a_face_recogniser(fer_root: Path, tmp_path: Path) -> None:
    """--backbone-weights <face embedder> fills the trunk; --trunk-lr 0 keeps it as it came
    while the new head learns; mixup and random erasing run; an ensemble of runs evaluates."""
    recogniser = Embedder(EmbedderConfig(backbone="dlib-resnet29"))
    start = save_checkpoint(tmp_path / "dlib.safetensors", "face-embedder", recogniser.config.to_dict(),
                            {f"model.{k}": v for k, v in recogniser.state_dict().items()})  # fmt: skip
    dlib = ["--arch", "dlib-resnet29", "--trunk-size", "64", "--backbone-weights", str(start), *TINY]
    runs = []
    for name, extra in (
        ("frozen", ["--trunk-lr", "0"]),
        ("mixed", ["--mixup", "0.4", "--random-erasing", "0.5"]),
    ):
        runs.append(tmp_path / name)
        result = runner.invoke(
            app, ["train-fer", "--data", str(fer_root), "--out", str(runs[-1]), *dlib, *extra]
        )
        assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(runs[0] / "last.safetensors")
    assert ckpt.meta["pretrained"]["face_recogniser"] == str(start)
    trunk, theirs = ckpt.section("model"), recogniser.backbone.state_dict()
    tuned = {k[len("trunk.") :]: v for k, v in trunk.items() if k.startswith("trunk.")}
    assert tuned and all(torch.equal(v, theirs[k]) for k, v in tuned.items())
    mixed = load_checkpoint(runs[1] / "last.safetensors").section("model")
    assert not torch.equal(mixed["trunk.stem.conv.weight"], theirs["stem.conv.weight"])
    weights = ",".join(str(r / "last.safetensors") for r in runs)
    report = runner.invoke(app, ["eval-fer", "--data", str(fer_root), "--weights", weights, "--json",
                                 "--device", "cpu"])  # fmt: skip
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["weights"] == weights and json.loads(report.stdout)["images"] == 14
    missing = runner.invoke(
        app, ["eval-fer", "--data", str(fer_root), "--weights", f"{weights},/nope.safetensors"]
    )
    assert (
        missing.exit_code == 1 and "/nope.safetensors" in missing.output and "Traceback" not in missing.output
    )


@pytest.mark.slow
def test_train_fer_dlib_trunk_from_an_expression_classifier(fer_root: Path, tmp_path: Path) -> None:
    """--backbone-weights <dlib-resnet29 classifier> copies its trunk (FER2013 → FER+ style
    transfer; the head starts new); a classifier without a dlib trunk is refused in one line."""
    from srfer.infer.load import load_network

    def train(out: str, *extra: str) -> Result:
        data = ["--data", str(fer_root)]
        return runner.invoke(app, ["train-fer", *data, "--out", str(tmp_path / out), *extra])

    dlib = ["--arch", "dlib-resnet29", "--trunk-size", "64", *TINY]
    assert train("first", *dlib).exit_code == 0
    source = tmp_path / "first" / "last.safetensors"
    result = train("second", *dlib, "--backbone-weights", str(source), "--trunk-lr", "0", "--seed", "5")
    assert result.exit_code == 0, result.output
    second = tmp_path / "second" / "last.safetensors"
    assert load_checkpoint(second).meta["pretrained"]["expression_trunk"] == str(source)
    theirs, ours = (load_network(path, "fer-classifier").network for path in (source, second))
    faces = torch.rand(2, 3, 64, 64)  # the trunk computes what it did (its affines folded in)
    assert torch.allclose(ours.trunk.feature_maps(faces)[-1], theirs.trunk.feature_maps(faces)[-1], atol=1e-4)
    assert not torch.equal(ours.head[1].weight, theirs.head[1].weight)
    assert train("mcnn", *TINY).exit_code == 0
    result = train("third", *dlib, "--backbone-weights", str(tmp_path / "mcnn" / "last.safetensors"))
    assert result.exit_code == 1 and "no dlib trunk" in result.output and "Traceback" not in result.output


def test_mixup_draws_depend_only_on_seed_and_step() -> None:
    from srfer.train.fer import FerRecipe

    recipe = FerRecipe(FerConfig(width=4, fused=16), 1e-3, torch.nn.CrossEntropyLoss(), mixup=0.4, seed=3)
    share, partner = recipe._mix(7, 10)
    again, same = recipe._mix(7, 10)
    assert share == again and torch.equal(partner, same) and 0 <= share <= 1
    assert sorted(partner.tolist()) == list(range(10)) and recipe._mix(8, 10)[0] != share


@pytest.mark.slow
def test_train_on_ferplus_votes_and_evaluate_on_either_label_set(fer_root: Path, tmp_path: Path) -> None:
    """FER+ folders train an 8-class model on the vote distribution; eval-fer scores it on
    FER+ (8 classes) and on FER2013 (7: contempt left out), and a 7-class model on FER+."""
    from test_fer_data import write_ferplus_folder

    def votes(cls: int) -> list[int]:  # 8 votes for the class (label.csv column order), 2 neutral
        column = (4, 5, 6, 1, 3, 2, 0, 7)[cls]
        return [2 if c == 0 and column != 0 else 8 if c == column else 0 for c in range(10)]

    for folder in ("FER2013Train", "FER2013Valid"):
        rows = [(20 + 25 * cls + i, votes(cls)) for cls in range(8) for i in range(2)]
        write_ferplus_folder(tmp_path / "ferplus" / folder, rows)
    run = tmp_path / "plus"
    result = runner.invoke(app, ["train-fer", "--data", str(tmp_path / "ferplus"), "--out", str(run), *TINY,
                                 "--targets", "votes", "--mixup", "0.2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "last.safetensors").config["num_classes"] == 8
    weights = ["--weights", str(run / "last.safetensors"), "--json", "--device", "cpu"]
    on_plus = json.loads(
        runner.invoke(app, ["eval-fer", "--data", str(tmp_path / "ferplus"), *weights]).stdout
    )
    assert on_plus["classes"][-1] == "contempt" and on_plus["images"] == 16 and not on_plus["notes"]
    on_fer = json.loads(runner.invoke(app, ["eval-fer", "--data", str(fer_root), *weights]).stdout)
    assert len(on_fer["classes"]) == 7 and "contempt probability" in on_fer["notes"][0]
    seven = tmp_path / "seven"
    assert (
        runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(seven), *TINY]).exit_code == 0
    )
    args = ["eval-fer", "--data", str(tmp_path / "ferplus"), "--weights", str(seven / "last.safetensors")]
    shown = runner.invoke(app, [*args, "--device", "cpu"])
    assert shown.exit_code == 0 and "2 contempt faces left out" in shown.output
    refused = runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(tmp_path / "r"), *TINY,
                                  "--targets", "votes"])  # fmt: skip
    assert refused.exit_code == 1 and "vote counts" in refused.output and "Traceback" not in refused.output
    distil = ["--out", str(tmp_path / "d"), "--distill-from", str(run / "last.safetensors")]
    eight_teacher = runner.invoke(app, ["train-fer", "--data", str(fer_root), *TINY, *distil])
    assert eight_teacher.exit_code == 1 and "teachers answer 8 classes" in eight_teacher.output


def test_train_fer_on_several_low_resolutions_validates_each(fer_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "two"
    result = runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(run), *TINY, "--upscale",
                                 "--upscaler", "bicubic", "--lr-size", "12,16", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_accuracy_12px", "val_accuracy_16px"} <= set(record)
    mean = (record["val_accuracy_12px"] + record["val_accuracy_16px"]) / 2
    assert record["val_accuracy"] == pytest.approx(mean)
    bad = runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(tmp_path / "b"), *TINY,
                              "--upscale", "--lr-size", "12,64"])  # fmt: skip
    assert bad.exit_code == 1 and "between 4 and 48" in bad.output


def test_average_weights_of_epochs_re_estimates_batchnorm(fer_root: Path, tmp_path: Path) -> None:
    def save(name: str, model: torch.nn.Module) -> Path:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        return save_checkpoint(
            tmp_path / f"{name}.safetensors", "fer-classifier", model.config.to_dict(), tensors
        )

    torch.manual_seed(0)
    a, b = (save(n, build_fer(FerConfig(width=4, fused=16))) for n in "ab")
    out = tmp_path / "mean.safetensors"
    refused = runner.invoke(app, ["average", str(a), str(b), "--out", str(out)])
    assert refused.exit_code == 1 and "--bn-data" in refused.output and not out.exists()
    done = runner.invoke(app, ["average", str(a), str(b), "--out", str(out), "--bn-data", str(fer_root),
                               "--no-half"])  # fmt: skip
    assert done.exit_code == 0, done.output
    mean, first, second = (load_checkpoint(p).section("model") for p in (out, a, b))
    key = "branches.0.body.0.0.weight"
    assert torch.allclose(mean[key], (first[key] + second[key]) / 2)
    stats = "branches.0.body.0.1.running_mean"
    assert not torch.equal(mean[stats], (first[stats] + second[stats]) / 2)  # measured, not averaged
    assert load_checkpoint(out).meta["averaged_from"] == [str(a), str(b)]
    other = save("c", build_fer(FerConfig(width=8, fused=16)))
    mixed = runner.invoke(app, ["average", str(a), str(other), "--out", str(tmp_path / "x.safetensors")])
    assert mixed.exit_code == 1 and "configs differ" in mixed.output and "Traceback" not in mixed.output
    for bad, message in (([str(a)], "two or more"), ([str(a), "/nope.safetensors"], "/nope.safetensors"),
                         ([str(a), str(fer_root / "train" / "happy" / "0.png")], "0.png")):  # fmt: skip
        result = runner.invoke(app, ["average", *bad, "--out", str(tmp_path / "y.safetensors")])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_train_fer_faceapi_expression_fine_tunes_a_whole_network(fer_root: Path, tmp_path: Path) -> None:
    """--arch faceapi-expression --init FILE (what `convert-face-api --model expression` writes):
    head and trunk both start from FILE; --trunk-lr 0 keeps the feature extractor as it was."""
    from srfer.infer.load import load_network

    def train(out: str, *extra: str) -> Result:
        data = ["--data", str(fer_root), "--out", str(tmp_path / out), "--arch", "faceapi-expression"]
        return runner.invoke(app, ["train-fer", *data, *TINY, *extra])

    assert train("scratch").exit_code == 0
    start = tmp_path / "scratch" / "last.safetensors"
    tuned = train("tuned", "--init", str(start), "--trunk-lr", "0", "--seed", "3")
    assert tuned.exit_code == 0, tuned.output
    ends = (start, tmp_path / "tuned" / "last.safetensors")
    before, after = (load_network(p, "fer-classifier").network for p in ends)
    old, new = before.state_dict(), after.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("trunk."))
    assert not torch.equal(old["head.1.weight"], new["head.1.weight"])


def test_distillation_targets_mix_the_label_with_the_softened_teacher() -> None:
    from srfer.train.distill import distillation_targets

    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([1, 2])
    assert torch.equal(distillation_targets(teacher, labels, 0.0, 2.0), torch.eye(3)[labels])
    assert torch.allclose(distillation_targets(teacher, labels, 1.0, 1.0), teacher)
    warm = distillation_targets(teacher, labels, 1.0, 2.0)
    assert torch.allclose(warm.sum(1), torch.ones(2)) and torch.equal(warm.argmax(1), teacher.argmax(1))
    assert (warm.max(1).values < teacher.max(1).values).all()  # T > 1 flattens
    mixed = distillation_targets(teacher, labels, 0.5, 1.0)
    assert torch.allclose(mixed, 0.5 * teacher + 0.5 * torch.eye(3)[labels])


@pytest.mark.slow
def test_train_fer_distills_teachers_answers_into_the_targets(fer_root: Path, tmp_path: Path) -> None:
    """The student's soft targets are label + the teachers' flip-averaged answers on the
    un-augmented training faces; the answers are cached, and a resumed run reuses them."""
    from srfer.data.fer import FerDataset, load_fer
    from srfer.infer.load import load_classifier
    from srfer.train.args import FerTrainArgs
    from srfer.train.distill import CACHE_NAME
    from srfer.train.fer import distill, target_name

    def train(out: str, *extra: str) -> Result:
        return runner.invoke(app, ["train-fer", "--data", str(fer_root), "--out", str(tmp_path / out), *TINY,
                                   *extra])  # fmt: skip

    for seed in ("1", "2"):
        assert train(f"t{seed}", "--seed", seed).exit_code == 0
    teachers = f"{tmp_path / 't1' / 'last.safetensors'},{tmp_path / 't2' / 'last.safetensors'}"
    distil = ["--distill-from", teachers, "--distill-weight", "0.6", "--distill-temperature", "3"]
    student = train("s", *distil)
    assert student.exit_code == 0, student.output
    assert "teachers answer on 21 training faces" in student.output
    meta = load_checkpoint(tmp_path / "s" / "last.safetensors").meta
    assert meta["distillation"]["teachers"] == teachers.split(",") and meta["distillation"]["flip"] is True
    cache = tmp_path / "s" / CACHE_NAME
    written = cache.stat().st_mtime_ns
    resumed = train("s", *distil, "--resume", "--epochs", "2")
    assert resumed.exit_code == 0 and "teachers answer" not in resumed.output
    assert cache.stat().st_mtime_ns == written
    # a wrong --init (another width) or an occupied --out fails before the teachers' pass
    wrong_init = train("w", *distil, "--init", str(tmp_path / "t1" / "last.safetensors"), "--width", "5")
    assert wrong_init.exit_code == 1 and "width 4≠5" in wrong_init.output
    occupied = train("s", *distil)
    assert occupied.exit_code == 1 and "already holds a run" in occupied.output
    assert "teachers answer" not in wrong_init.output + occupied.output

    samples = load_fer(fer_root, "train")
    args = FerTrainArgs(data=fer_root, out=tmp_path / "s", distill_from=Path(teachers), distill_weight=0.6,
                        distill_temperature=3.0)  # fmt: skip
    name, meta = target_name(args, samples), distill(args, samples, torch.device("cpu"))
    dataset = FerDataset(samples)
    x = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    ensemble = load_classifier(Path(teachers), torch.device("cpu"))
    with torch.no_grad():
        probs = (ensemble(x).softmax(1) + ensemble(x.flip(-1)).softmax(1)) / 2
    soft = torch.softmax(probs.log() / 3.0, 1)
    expected = 0.6 * soft + 0.4 * torch.eye(7)[samples.labels]
    assert name == "labels + teacher distillation" and meta["weight"] == 0.6 and meta["temperature"] == 3.0
    assert torch.allclose(samples.votes, expected, atol=1e-4)
