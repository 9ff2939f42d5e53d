"""The reliability battery: every command over a folder of bad files, and every write onto a
place it cannot write. Each must answer with one line that names the file and the cause,
exit non-zero only when the whole command failed, never print a traceback, and leave
nothing half-written."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import synthetic_face, tiny_checkpoints
from typer.testing import CliRunner

from srfer.cli import app

runner = CliRunner()

BAD = {  # file → what its one-line reason says
    "empty.png": "not an image",
    "random.jpg": "not an image",
    "truncated.jpg": "corrupt or truncated",
    "notes.png": "not an image",
    "one.png": "too small for a face",
    "five.png": "too small for a face",
    "bomb.png": "limit",
}
ODD_BUT_GOOD = ("deep16.png", "rgba.png", "cmyk.jpg", "anim.gif", "ünïcødé.png")


def write_bad_files(folder: Path, bomb: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "random.jpg").write_bytes(np.random.default_rng(0).bytes(2048))
    synthetic_face((64, 64), 99).save(folder / "full.jpg")
    data = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "full.jpg").unlink()
    (folder / "notes.png").write_text("a text file with an image's name")
    Image.new("RGB", (1, 1)).save(folder / "one.png")
    synthetic_face((5, 5), 1).save(folder / "five.png")
    (folder / "bomb.png").symlink_to(bomb)


def write_odd_good_files(folder: Path) -> None:
    face = synthetic_face((40, 48), 7)
    deep = (np.asarray(face.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep16.png")
    face.convert("RGBA").save(folder / "rgba.png")
    face.convert("CMYK").save(folder / "cmyk.jpg")
    frames = [synthetic_face((40, 48), i) for i in (8, 9)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    face.save(folder / "ünïcødé.png")


@pytest.fixture(scope="module")
def battery(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("battery")
    bomb = root / "bomb_source.png"
    Image.new("1", (20000, 20000)).save(bomb)  # a 400 Mpx image in a tiny file
    faces = root / "faces"  # plain face folder: good faces, odd-but-good files, bad files
    faces.mkdir()
    for i in range(4):
        synthetic_face((40, 48), i).save(faces / f"good_{i}.png")
    write_odd_good_files(faces)
    write_bad_files(faces, bomb)
    sr_data = root / "sr_data"  # train/ with the bad files, val/ good
    for split, count in (("train", 6), ("val", 2)):
        (sr_data / split).mkdir(parents=True)
        for i in range(count):
            synthetic_face((40, 48), 50 + i).save(sr_data / split / f"{i}.png")
    write_bad_files(sr_data / "train", bomb)
    fer = root / "fer"  # FER layout with two classes only (five absent) and the bad files
    for label, offset in (("happy", 0), ("sad", 10)):
        for split in ("train", "val"):
            folder = fer / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                synthetic_face((48, 48), offset + i, "L").save(folder / f"{label}_{i}.png")
    write_bad_files(fer / "val" / "happy", bomb)
    write_bad_files(fer / "train" / "sad", bomb)
    people = root / "people"  # identity folders; one holds the bad files
    for person in range(5):
        folder = people / f"person_{person}"
        folder.mkdir(parents=True)
        for i in range(3):
            synthetic_face((40, 48), person * 10 + i).save(folder / f"{i}.png")
    write_bad_files(people / "person_0", bomb)
    afile = root / "afile"  # a file where commands are told to put a folder
    afile.write_text("I am a file")
    data = {
        "root": root,
        "faces": faces,
        "sr_data": sr_data,
        "fer_data": fer,
        "people": people,
        "afile": afile,
    }
    return {**tiny_checkpoints(root), **data}


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean(result, exit_code: int) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output and "Warning" not in result.output, result.output


def assert_names_every_bad_file(text: str) -> None:
    for name, reason in BAD.items():
        line = next((ln for ln in text.splitlines() if name in ln), "")
        assert reason in line, f"{name}: expected {reason!r} in the line naming it; got {line!r}"


def assert_summarised(stderr: str) -> None:
    """One line: the first five skipped files with their reasons, then a count (README)."""
    lines = [ln for ln in stderr.splitlines() if f"skipped {len(BAD)} file(s)" in ln]
    assert len(lines) == 1, stderr
    assert lines[0].count(": ") >= 5 and f"and {len(BAD) - 5} more" in lines[0], lines[0]
    assert sum(name in stderr for name in BAD) == 5, stderr


def assert_skipped_json(skipped: list[dict], folder_names=BAD) -> None:
    reasons = {Path(s["path"]).name: s["reason"] for s in skipped}
    assert set(reasons) == set(folder_names), reasons
    for name, reason in BAD.items():
        assert reason in reasons[name], (name, reasons[name])


def test_upscale_answers_every_file(battery) -> None:
    result = run(
        "upscale", battery["faces"], "-o", battery["root"] / "up", "--weights", battery["sr"], "--json"
    )
    assert_clean(result, 0)
    rows = {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert all(rows[name]["ok"] for name in ODD_BUT_GOOD)
    assert_names_every_bad_file("\n".join(f"{n}: {r.get('error')}" for n, r in rows.items() if not r["ok"]))
    assert {n for n, r in rows.items() if not r["ok"]} == set(BAD)


def test_predict_skips_bad_files_with_their_reason(battery, tmp_path: Path) -> None:
    w = battery
    weights = ["--sr-weights", w["sr"], "--fer-weights", w["fer"], "--fer-sr-weights", w["sr_fer"],
               "--upscale-fer-weights", w["fer_up"]]  # fmt: skip
    result = run("predict", w["faces"], "--no-detect", "--json", *weights)
    assert_clean(result, 0)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    answered = {Path(line["image"]).name for line in lines if "skipped" not in line}
    assert set(ODD_BUT_GOOD) <= answered and not answered & set(BAD)
    skipped = [{"path": line["image"], "reason": line["skipped"]} for line in lines if "skipped" in line]
    assert_skipped_json(skipped)  # --json lists every skipped file with its reason
    assert_summarised(result.stderr)


def test_enroll_and_identify_skip_bad_files(battery, tmp_path: Path) -> None:
    gallery = tmp_path / "g.sqlite"
    enrolled = run("enroll", "bob", battery["faces"], "--gallery", gallery, "--weights", battery["embed"])
    assert_clean(enrolled, 0)
    assert_summarised(enrolled.stderr)
    identified = run(
        "identify", battery["faces"], "--gallery", gallery, "--weights", battery["embed"], "--json"
    )
    assert_clean(identified, 0)
    assert_summarised(identified.stderr)
    lines = [json.loads(line) for line in identified.stdout.splitlines()]
    assert_skipped_json(
        [{"path": line["image"], "reason": line["skipped"]} for line in lines if "skipped" in line]
    )
    nothing = run(
        "enroll", "eve", battery["faces"] / "one.png", "--gallery", gallery, "--weights", battery["embed"]
    )
    assert_clean(nothing, 1)
    assert "no usable face image" in nothing.stderr and "too small for a face" in nothing.stderr


def test_eval_sr_reports_skips_and_scores_faces_only(battery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--data", battery["faces"], "--split", "all", "--weights", battery["sr"], "--hr-size", "32"]
    result = run("eval-sr", *args, "--json")
    assert_clean(result, 0)
    report = json.loads(result.stdout)
    assert_skipped_json(report["skipped"])
    assert report["images"] == 4 + len(ODD_BUT_GOOD)
    assert max(r["psnr_bicubic"] for r in report["per_image"]) < 60  # no 1×1 "face" scored at 100 dB
    table = run("eval-sr", *args)
    assert_clean(table, 0)
    assert f"skipped {len(BAD)} image(s)" in table.stderr


def test_eval_fer_metrics_are_over_present_classes(battery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("eval-fer", "--data", battery["fer_data"], "--weights", battery["fer"], "--json")
    assert_clean(result, 0)
    report = json.loads(result.stdout)
    assert_skipped_json(report["skipped"])
    assert report["images"] == 8
    assert set(report["absent_classes"]) == {"angry", "disgust", "fear", "surprise", "neutral"}
    present_aucs = [report["per_class"][c]["auc"] for c in ("happy", "sad")]
    assert report["macro_auc"] == pytest.approx(sum(present_aucs) / 2)
    assert report["per_class"]["angry"]["auc"] is None and set(report["roc"]) == {"happy", "sad"}
    assert "plots" not in report and not list(tmp_path.iterdir())  # no plots unless --save-dir
    table = run(
        "eval-fer", "--data", battery["fer_data"], "--weights", battery["fer"], "--save-dir", tmp_path / "p"
    )
    assert_clean(table, 0)
    assert "no faces of angry, disgust, fear, surprise, neutral" in table.stderr
    assert str(tmp_path / "p" / "roc.png") in table.stderr and (tmp_path / "p" / "roc.png").is_file()


def test_eval_embed_reports_what_it_skipped(battery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("eval-embed", "--data", battery["people"], "--weights", battery["embed"], "--n-pairs", "20",
                 "--json")  # fmt: skip
    assert_clean(result, 0)
    assert_skipped_json(json.loads(result.stdout)["skipped"])
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_training_skips_bad_files_and_says_which(battery, tmp_path: Path) -> None:
    common = ["--epochs", "1", "--epoch-size", "8", "--workers", "0", "--device", "cpu"]
    sr = run("train-sr", "--data", battery["sr_data"], "--out", tmp_path / "sr", "--pretrain-epochs", "1",
             "--blocks", "1", "--features", "8", "--hr-size", "32", "--batch-size", "4", *common)  # fmt: skip
    fer = run("train-fer", "--data", battery["fer_data"], "--out", tmp_path / "fer", "--width", "4",
              "--batch-size", "4", *common)  # fmt: skip
    embed = run("train-embed", "--data", battery["people"], "--out", tmp_path / "embed", "--p", "2",
                "--k", "2", "--input-size", "32", "--size", "32", *common)  # fmt: skip
    for result in (sr, fer, embed):
        assert_clean(result, 0)
        assert f"skipped {len(BAD)} image(s)" in result.stderr  # the first five named, then a count
        assert "too small for a face" in result.stderr and f"and {len(BAD) - 5} more" in result.stderr


def test_writes_onto_a_file_are_one_line_naming_it(battery, tmp_path: Path) -> None:
    w, blocked = battery, battery["afile"]
    face = w["faces"] / "good_0.png"
    attempts = {
        "export": run("export", w["sr"], blocked / "sr.safetensors"),
        "upscale": run("upscale", face, "-o", blocked / "up", "--weights", w["sr"]),
        "enroll": run("enroll", "bob", face, "--gallery", blocked / "g.sqlite", "--weights", w["embed"]),
        "predict": run("predict", face, "--no-detect", "--save-dir", blocked / "out", "--sr-weights", w["sr"],
                       "--fer-weights", w["fer"], "--no-tiny-expression"),
        "eval-fer": run("eval-fer", "--data", w["fer_data"], "--weights", w["fer"],
                        "--save-dir", blocked / "plots"),
        "train-sr": run("train-sr", "--data", w["sr_data"], "--out", blocked / "run", "--epochs", "1",
                        "--pretrain-epochs", "1", "--blocks", "1", "--features", "8", "--hr-size", "32",
                        "--batch-size", "4", "--epoch-size", "4", "--workers", "0", "--device", "cpu"),
    }  # fmt: skip
    for command, result in attempts.items():
        assert_clean(result, 1)
        line = result.stderr.strip().splitlines()[-1]  # after any skip warnings
        assert line.startswith("error:") and str(blocked) in line and "is a file, not a folder" in line, (
            command,
            line,
        )


def test_a_full_disk_leaves_nothing_half_written(battery, tmp_path: Path, monkeypatch) -> None:
    import srfer.core.checkpoint

    def fill_the_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(srfer.core.checkpoint, "save_file", fill_the_disk)
    result = run("export", battery["sr"], tmp_path / "sr.safetensors")
    assert_clean(result, 1)
    assert f"{tmp_path / 'sr.safetensors'}: cannot write (No space left on device)" in result.stderr
    assert not list(tmp_path.iterdir())


def test_wrong_and_unreadable_checkpoints(battery) -> None:
    not_data = run("eval-fer", "--data", battery["fer"], "--weights", battery["fer"])
    assert_clean(not_data, 1)
    assert "not a FER2013 CSV file" in not_data.stderr
    face = battery["faces"] / "good_0.png"
    wrong_kind = run("upscale", face, "-o", battery["root"] / "w", "--weights", battery["fer"])
    assert_clean(wrong_kind, 1)
    assert "fer-classifier" in wrong_kind.stderr
    not_a_checkpoint = run(
        "upscale", face, "-o", battery["root"] / "w", "--weights", battery["faces"] / "notes.png"
    )
    assert_clean(not_a_checkpoint, 1)
    assert "notes.png" in not_a_checkpoint.stderr
