"""The battery's last defects: failed checkpoint writes, a damaged ONNX cache, shipped weights
that fail their checksum, another program's SQLite file, help texts, missing inputs, upscale's
overwrite policy. Each answers in one line, exits as documented and leaves nothing wrong."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from synthetic import synthetic_face, tiny_checkpoints
from typer.testing import CliRunner

from srfer.cli import app
from srfer.core.weights import ALLOW_MODIFIED

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line(result, exit_code: int, *words: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    for word in words:
        assert word in result.output, (word, result.output)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    return tiny_checkpoints(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def face(tmp_path: Path) -> Path:
    synthetic_face((32, 32), 3).save(tmp_path / "face.png")
    return tmp_path / "face.png"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ failed checkpoint writes
def read_only_file_system(tensors, filename, metadata=None):
    from safetensors import SafetensorError

    Path(filename).write_bytes(b"half")  # what a failed write may leave behind
    raise SafetensorError("Error while serializing: I/O error: Read-only file system (os error 30)")


def test_a_failed_checkpoint_write_names_its_target(weights, tmp_path: Path, monkeypatch) -> None:
    import srfer.core.checkpoint

    monkeypatch.setattr(srfer.core.checkpoint, "save_file", read_only_file_system)
    target = tmp_path / "out" / "sr.safetensors"
    result = run("export", weights["sr"], target)
    assert_one_line(result, 1, f"{target}: cannot write (Read-only file system)")
    assert not list((tmp_path / "out").iterdir())  # no temporary file left


def test_an_epoch_without_its_checkpoint_leaves_no_metrics_or_plots(tmp_path: Path, monkeypatch) -> None:
    import srfer.core.checkpoint

    data = tmp_path / "faces"
    for split, n in (("train", 4), ("val", 2)):
        (data / split).mkdir(parents=True)
        for i in range(n):
            synthetic_face((40, 48), i).save(data / split / f"{i}.png")
    monkeypatch.setattr(srfer.core.checkpoint, "save_file", read_only_file_system)
    out = tmp_path / "run"
    tiny = ("--blocks", "1", "--features", "4", "--hr-size", "32", "--batch-size", "2", "--epoch-size", "2")
    result = run("train-sr", "--data", data, "--out", out, "--epochs", "1", "--pretrain-epochs", "1", *tiny,
                 "--workers", "0", "--device", "cpu", "--perceptual", "none")  # fmt: skip
    assert_one_line(result, 1, f"{out / 'last.safetensors'}: cannot write (Read-only file system)")
    assert not (out / "metrics.jsonl").exists() and not (out / "curves.png").exists()


# ---------------------------------------------------------------------- damaged ONNX cache
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["junk", "empty", "truncated"])
def test_a_damaged_onnx_cache_entry_is_rebuilt_once_and_said(weights, face, tmp_path, monkeypatch, damage):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SRFER_CACHE", str(tmp_path / "cache"))
    args = (face, "--weights", weights["sr"], "--runtime", "onnx", "--overwrite")
    first = run("upscale", *args, "-o", tmp_path / "a")
    assert_one_line(first, 0)
    (graph,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    data = graph.read_bytes()
    graph.write_bytes({"junk": b"not a graph", "empty": b"", "truncated": data[: len(data) // 3]}[damage])
    again = run("upscale", *args, "-o", tmp_path / "b")
    assert_one_line(again, 0, "cannot load it", "exported again")
    assert digest(tmp_path / "a" / "face.png") == digest(tmp_path / "b" / "face.png")
    assert graph.read_bytes() == data  # rebuilt as it was
    quiet = run("upscale", *args, "-o", tmp_path / "c")
    assert_one_line(quiet, 0) and "exported again" not in quiet.output


# ----------------------------------------------------------- weights failing their checksum
@pytest.fixture
def flipped_shipped_sr(tmp_path: Path, monkeypatch) -> Path:
    """The shipped ×4 SR with one bit flipped (same size), as the shipped folder's only file."""
    import srfer.core.weights as w

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    target = shipped / w.Weights.SR.entry.file
    shutil.copy(ROOT / "weights" / target.name, target)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    monkeypatch.setattr(w, "PACKAGE_WEIGHTS", shipped)
    monkeypatch.delenv("SRFER_WEIGHTS", raising=False)
    monkeypatch.setenv(ALLOW_MODIFIED, "0")  # the CLI's override sets it in this process; undone after
    return target


def test_a_shipped_file_failing_its_checksum_is_refused(flipped_shipped_sr: Path, face, tmp_path) -> None:
    refused = run("upscale", face, "-o", tmp_path / "out")
    assert_one_line(
        refused, 1, str(flipped_shipped_sr), "damaged or was replaced", "--allow-modified-weights"
    )
    assert not list((tmp_path / "out").glob("*.png"))
    allowed = run("--allow-modified-weights", "upscale", face, "-o", tmp_path / "out")
    assert_one_line(allowed, 0)


def test_srfer_weights_exits_non_zero_on_a_mismatch(flipped_shipped_sr: Path) -> None:
    for extra in ((), ("--json",)):
        result = run("weights", *extra)
        assert_one_line(result, 1, "fail their sha256 check", str(flipped_shipped_sr))
    rows = json.loads(run("weights", "--json").stdout)
    assert {r["role"]: r["status"] for r in rows}["sr"] == "sha256 MISMATCH"


# ------------------------------------------------------------------- another SQLite file
def test_another_programs_sqlite_file_is_refused_untouched(weights, face, tmp_path: Path) -> None:
    foreign = tmp_path / "shop.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    before = digest(foreign)
    for command in (("enroll", "bob", face), ("identify", face)):
        result = run(*command, "--gallery", foreign, "--weights", weights["embed"])
        assert_one_line(result, 1, "not a srfer gallery", "customers")
    assert digest(foreign) == before
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # a new, empty file: identify refuses it, enroll makes it a gallery
    assert_one_line(run("identify", face, "--gallery", empty, "--weights", weights["embed"]), 1, "empty")
    assert_one_line(run("enroll", "bob", face, "--gallery", empty, "--weights", weights["embed"]), 0)


# -------------------------------------------------------------------------- help texts
def test_help_texts_print_literally() -> None:
    """Square brackets in a help text are text, not markup (`pip install 'srfer[onnx]'`)."""
    for command in ("predict", "upscale", "export"):
        result = run(command, "--help")
        assert "'srfer[onnx]'" in result.output, (command, result.output)


def test_an_unreadable_weights_file_is_one_whole_sentence(tmp_path: Path) -> None:
    import os

    import torch
    import torchvision.models as tvm

    from srfer.core.errors import SrferError
    from srfer.core.weights import imagenet_state_dict

    class Code:
        def __reduce__(self):
            return (os.getcwd, ())

    torch.save({"weight": Code()}, tmp_path / "pickled.pth")
    (tmp_path / "text.pth").write_text("not weights")
    expected = {"pickled.pth": "never unpickles", "text.pth": "neither a safetensors file nor a torch file"}
    for name, words in expected.items():
        with pytest.raises(SrferError) as caught:
            imagenet_state_dict(tvm.VGG19_Weights.IMAGENET1K_V1, tmp_path / name, "VGG19", "a hint")
        message = str(caught.value)
        assert words in message and "torch." not in message and "\n" not in message, message


# -------------------------------------------------------------------- missing inputs
def test_a_missing_input_is_skipped_like_a_corrupt_one(weights, face, tmp_path: Path) -> None:
    missing, corrupt = tmp_path / "missing.jpg", tmp_path / "corrupt.png"
    corrupt.write_text("not an image")
    models = ("--sr-weights", weights["sr"], "--fer-weights", weights["fer"], "--no-tiny-expression")
    result = run("predict", face, missing, corrupt, "--no-detect", "--json", *models)
    assert_one_line(result, 0, "skipped 2 file(s)")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["image"]).name for line in lines if "skipped" not in line] == ["face.png"]
    skipped = {Path(line["image"]).name: line["skipped"] for line in lines if "skipped" in line}
    assert "no such file" in skipped["missing.jpg"] and "not an image" in skipped["corrupt.png"]
    upscaled = run("upscale", face, missing, "-o", tmp_path / "up", "--weights", weights["sr"])
    assert_one_line(upscaled, 0, "no such file")
    nothing = run("upscale", missing, "-o", tmp_path / "none", "--weights", weights["sr"])
    assert_one_line(nothing, 1, "no such file")


# ---------------------------------------------------------------- upscale's earlier outputs
def test_upscale_keeps_an_earlier_runs_files_unless_told(weights, face, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = (face, "-o", out, "--weights", weights["sr"], "--compare")
    assert_one_line(run("upscale", *args), 0)
    first = {p.name: digest(p) for p in out.iterdir()}
    assert set(first) == {"face.png", "face_compare.png"}
    refused = run("upscale", *args)
    assert_one_line(refused, 1, "already exist", "--overwrite")
    assert {p.name: digest(p) for p in out.iterdir()} == first
    assert_one_line(run("upscale", *args, "--overwrite"), 0)
