"""The CLI end to end on a tiny folder, and every bad input → one line, non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from srfer.cli import app
from srfer.core.checkpoint import load_checkpoint

runner = CliRunner()
TINY = "--blocks 1 --features 8 --hr-size 32 --batch-size 4 --epoch-size 8 --workers 0 --device cpu".split()


def run(*args: str):
    return runner.invoke(app, list(args))


def assert_one_line_error(result, pattern: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert pattern in result.output, result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny SR model trained through the CLI, exported as a weights-only file."""
    from synthetic import synthetic_face

    root = tmp_path_factory.mktemp("cli")
    faces = root / "faces"
    faces.mkdir()
    for i in range(16):
        synthetic_face((40, 40), i).save(faces / f"f{i:02d}.png")
    result = train(faces, root / "run", 1, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["best_epoch"] == 1
    exported = run("export", str(root / "run" / "best.safetensors"), str(root / "sr.safetensors"))
    assert exported.exit_code == 0, exported.output
    return faces, root / "sr.safetensors"


def test_help_lists_every_command() -> None:
    result = run("--help")
    for command in ("train-sr", "upscale", "eval-sr", "info", "export"):
        assert command in result.output


def test_info_json() -> None:
    result = run("info", "--json")
    assert result.exit_code == 0
    assert {"torch", "device", "amp_dtype", "weights"} <= set(json.loads(result.stdout))


def train(faces: Path, out: Path, epochs: int, *extra: str):
    return run(
        "train-sr",
        "--data",
        str(faces),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--pretrain-epochs",
        str(epochs),
        *TINY,
        *extra,
    )


@pytest.mark.slow
def test_train_resume_continues(trained, tmp_path: Path) -> None:
    faces, _ = trained
    out = tmp_path / "run"
    assert train(faces, out, 1).exit_code == 0
    assert_one_line_error(train(faces, out, 1), "--resume")
    resumed = train(faces, out, 2, "--resume")
    assert resumed.exit_code == 0, resumed.output
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["step"] == 4


@pytest.mark.slow
def test_train_rrdb_generator_and_upscale_with_it(trained, tmp_path: Path) -> None:
    """--arch rrdb trains, its checkpoint says so, and upscale rebuilds it from the file."""
    faces, _ = trained
    result = train(faces, tmp_path / "run", 1, "--arch", "rrdb", "--growth", "4", "--perceptual", "none")
    assert result.exit_code == 0, result.output
    weights = tmp_path / "run" / "best.safetensors"
    assert load_checkpoint(weights).config["arch"] == "rrdb"
    result = run("upscale", str(faces / "f00.png"), "-o", str(tmp_path / "out"), "--weights", str(weights))
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "f00.png").size == (160, 160)


def test_upscale_keeps_stems_and_resolves_clashes(trained, tmp_path: Path) -> None:
    faces, weights = trained
    (tmp_path / "x").mkdir()
    Image.open(faces / "f00.png").resize((10, 12)).save(tmp_path / "x" / "f00.jpg")
    result = run(
        "upscale",
        str(faces / "f00.png"),
        str(tmp_path / "x" / "f00.jpg"),
        str(faces / "f01.png"),
        "-o",
        str(tmp_path / "out"),
        "--weights",
        str(weights),
        "--json",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["output"]).name for r in rows] == ["f00.png", "f00-1.png", "f01.png"]
    assert rows[1]["output_size"] == [40, 48]
    assert Image.open(tmp_path / "out" / "f00.png").size == (160, 160)
    assert not (tmp_path / "out" / "f00_compare.png").exists()
    strips = run("upscale", str(faces / "f03.png"), "-o", str(tmp_path / "cmp"), "--weights", str(weights),
                 "--compare")  # fmt: skip
    assert strips.exit_code == 0 and Image.open(tmp_path / "cmp" / "f03_compare.png").size == (
        3 * 160 + 8,
        160,
    )
    assert "name clash" in result.stderr


@pytest.mark.slow
def test_upscale_in_worker_processes_writes_the_same_files(trained, tmp_path: Path) -> None:
    faces, weights = trained
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "x").mkdir()
    Image.open(faces / "f00.png").resize((10, 12)).save(tmp_path / "x" / "f00.jpg")  # the same stem
    inputs = [str(tmp_path / "notes.png"), *(str(faces / f"f{i:02d}.png") for i in range(5)),
              str(tmp_path / "x" / "f00.jpg")]  # fmt: skip
    written = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        result = run(
            "upscale", *inputs, "-o", str(out), "--weights", str(weights), "--workers", workers, "--json"
        )
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert sum(r["ok"] for r in rows) == 6 and "name clash" in result.stderr
        written[workers] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert written["1"] == written["2"] and "f00-1.png" in written["2"]


def test_upscale_bad_inputs(trained, tmp_path: Path) -> None:
    faces, weights = trained
    Image.new("RGB", (5, 5)).save(tmp_path / "tiny.png")
    (tmp_path / "notes.png").write_text("not an image")
    out = str(tmp_path / "o")
    w = ["--weights", str(weights)]
    assert_one_line_error(run("upscale", str(tmp_path / "nope.png"), "-o", out, *w), "no such file")
    assert_one_line_error(run("upscale", str(tmp_path / "tiny.png"), "-o", out, *w), "too small")
    assert_one_line_error(run("upscale", str(tmp_path / "notes.png"), "-o", out, *w), "not an image")
    mixed = run("upscale", str(tmp_path / "notes.png"), str(faces / "f02.png"), "-o", out, *w)
    assert mixed.exit_code == 0 and "1 upscaled, 1 failed" in mixed.stdout  # one bad file is skipped
    wrong = tmp_path / "wrong.safetensors"
    wrong.write_bytes(b"\x00" * 64)
    assert_one_line_error(
        run("upscale", str(faces / "f02.png"), "-o", out, "--weights", str(wrong)),
        "not a safetensors checkpoint",
    )
    assert_one_line_error(run("upscale", str(faces / "f02.png"), "-o", out, "--model", "nope"), "use one of")


def test_eval_sr_table_and_json(trained) -> None:
    faces, weights = trained
    result = run(
        "eval-sr",
        "--data",
        str(faces),
        "--split",
        "all",
        "--weights",
        str(weights),
        "--json",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 16 and len(report["per_image"]) == 16
    assert report["mean"]["psnr_bicubic"] > 10 and "psnr_sr" in report["per_image"][0]
    table = run("eval-sr", "--data", str(faces), "--split", "all", "--weights", str(weights), "--per-image")
    assert "mean" in table.stdout and "f15.png" in table.stdout and "dB" in table.stdout


@pytest.mark.parametrize("embedder", ["embed", "embed_aligned"])  # centre crops, landmark-aligned chips
def test_eval_sr_judges_identity_with_a_face_recogniser(trained, tmp_path: Path, embedder: str) -> None:
    from synthetic import tiny_checkpoints

    faces, weights = trained
    embed = tiny_checkpoints(tmp_path)[embedder]
    args = ["eval-sr", "--data", str(faces), "--split", "all", "--weights", str(weights), "--identity",
            "--embed-weights", str(embed), "--device", "cpu"]  # fmt: skip
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    judged = json.loads(result.stdout)["identity"]
    assert judged["faces"] == 16 and judged["embedder"] == str(embed)
    for key in ("frechet_sr", "frechet_bicubic", "distance_to_hr_sr", "distance_to_hr_bicubic"):
        assert judged[key] >= -1e-9, key
    assert "Fréchet distance" in run(*args).stdout


def test_compare_sr_puts_models_side_by_side_with_a_picture_grid(trained, tmp_path: Path) -> None:
    from synthetic import tiny_checkpoints

    faces, weights = trained
    tiny = tiny_checkpoints(tmp_path)
    grid = tmp_path / "docs" / "grid.png"
    args = ["compare-sr", "--data", str(faces), "--split", "all", "--models", f"{weights},{tiny['sr']}",
            "--identity", "--embed-weights", str(tiny["embed"]), "--device", "cpu"]  # fmt: skip
    result = run(*args, "--grid", str(grid), "--grid-faces", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    ours_name, tiny_name = (f"{p.parent.name}/sr" for p in (weights, tiny["sr"]))  # both are sr.safetensors
    assert set(report["mean"]) == {"bicubic", ours_name, tiny_name} and report["images"] == 16
    single = run("eval-sr", "--data", str(faces), "--split", "all", "--weights", str(weights), "--identity",
                 "--embed-weights", str(tiny["embed"]), "--json")  # fmt: skip
    single = json.loads(single.stdout)
    ours = report["mean"][ours_name]
    assert ours["psnr"] == pytest.approx(single["mean"]["psnr_sr"], abs=1e-4)  # same faces, same numbers
    assert report["mean"]["bicubic"]["psnr"] == pytest.approx(single["mean"]["psnr_bicubic"], abs=1e-4)
    assert report["identity"]["frechet_bicubic"] == pytest.approx(single["identity"]["frechet_bicubic"])
    with Image.open(grid) as picture:  # 3 rows of LR | bicubic | 2 models | HR
        assert picture.width > picture.height
    table = run(*args)
    assert "Fréchet" in table.stdout and "bicubic" in table.stdout
    x8 = run("compare-sr", "--data", str(faces), "--models", f"{weights},{tiny['sr_x8']}")
    assert_one_line_error(x8, "one scale")
    assert_one_line_error(
        run("compare-sr", "--data", str(faces), "--models", f"{weights},{weights}"), "twice"
    )
    missing = str(tmp_path / "none.safetensors")
    assert_one_line_error(
        run("compare-sr", "--data", str(faces), "--models", f"{weights},{missing}"), "not found"
    )
    assert_one_line_error(run("compare-sr", "--data", "/nonexistent", "--models", str(weights)), "not found")
    wrong = run("compare-sr", "--data", str(faces), "--models", str(tiny["embed"]))  # a recogniser, not an SR
    assert_one_line_error(wrong, "face-embedder")


def test_eval_sr_identity_refuses_a_missing_or_wrong_recogniser(trained, tmp_path: Path) -> None:
    faces, weights = trained
    args = ["eval-sr", "--data", str(faces), "--split", "all", "--weights", str(weights), "--identity",
            "--device", "cpu", "--embed-weights"]  # fmt: skip
    assert_one_line_error(run(*args, str(tmp_path / "none.safetensors")), "not found")
    assert_one_line_error(run(*args, str(weights)), "sr-generator")  # an SR file is no recogniser
    assert_one_line_error(run("eval-sr", "--data", "/nonexistent", "--weights", str(weights)), "not found")


def test_train_bad_inputs(tmp_path: Path, face_folder: Path) -> None:
    out = ["--out", str(tmp_path / "r")]
    assert_one_line_error(run("train-sr", "--data", str(tmp_path / "nope"), *out), "data folder not found")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("train-sr", "--data", str(tmp_path / "empty"), *out), "no images")
    data = ["--data", str(face_folder), "--perceptual", "none"]
    assert_one_line_error(run("train-sr", *data, *out, "--device", "cuda:7"), "--device")
    assert_one_line_error(run("train-sr", *data, *out, "--perceptual", "alexnet"), "unknown --perceptual")
    assert_one_line_error(
        run("train-sr", *data, *out, "--perceptual", "vgg19", "--vgg-weights", "/no.pth"),
        "VGG19 weights file not found",
    )
    assert_one_line_error(run("train-sr", *data, *out, "--hr-size", "30"), "not divisible")
    assert_one_line_error(run("train-sr", *data, *out, "--scale", "3", "--hr-size", "30"), "scale")
    assert_one_line_error(
        run("train-sr", *data, *out, "--arch", "edsr"), "arch must be one of srresnet, rrdb"
    )
    assert not (tmp_path / "r" / "last.safetensors").exists()


def test_missing_default_weights_name_the_training_command(tmp_path: Path, monkeypatch) -> None:
    import srfer.core.weights

    monkeypatch.setattr(srfer.core.weights, "PACKAGE_WEIGHTS", tmp_path)
    monkeypatch.delenv("SRFER_WEIGHTS", raising=False)
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    result = run("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"))
    assert_one_line_error(result, "srfer train-sr")


def test_unexpected_errors_are_one_line_too(monkeypatch, tmp_path: Path) -> None:
    import srfer.infer.upscale

    def broken(*_a, **_k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(srfer.infer.upscale, "upscale_files", broken)
    monkeypatch.delenv("SRFER_DEBUG", raising=False)
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    result = run("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and "internal error: ZeroDivisionError: boom" in result.output
    assert "Traceback" not in result.output


def test_the_command_reference_is_in_step_with_the_cli() -> None:
    """docs/cli.md is written from the Typer app (python tools/cli_docs.py)."""
    from srfer.cli.reference import markdown

    reference = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
    assert reference.read_text() == markdown(), "run python tools/cli_docs.py"
    assert (
        "## `srfer enhance`" in reference.read_text() and "## `srfer gallery list`" in reference.read_text()
    )
