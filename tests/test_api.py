"""The Python API (`import srfer`): its documented examples run, every input type answers alike,
bad input raises one clear `SrferError`, and results serialise as the CLI's --json."""

from __future__ import annotations

import doctest
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import srfer
from srfer.cli import app

ROOT = Path(__file__).resolve().parent.parent
PHOTO, SMALL = ROOT / "examples" / "astronaut.png", ROOT / "examples" / "astronaut_small.png"
CROP, ENROLL = (
    ROOT / "examples" / "faces" / "astronaut_face_32.png",
    ROOT / "examples" / "gallery" / "astronaut_128.png",
)
pytestmark = pytest.mark.slow  # the shipped networks, loaded once per process


@pytest.fixture(autouse=True)
def at_the_repo_root(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the examples name the example images by relative path


def test_the_documented_examples_run() -> None:
    from srfer.infer import api

    result = doctest.testmod(api)
    assert result.failed == 0 and result.attempted >= 9  # the module's and Gallery's examples


def test_every_input_type_answers_alike() -> None:
    as_pil = Image.open(PHOTO).convert("RGB")
    answers = [srfer.analyze(x) for x in (str(PHOTO), PHOTO, as_pil, np.asarray(as_pil))]
    probabilities = [[f.probabilities for f in faces] for faces in answers]
    assert all(p == probabilities[0] for p in probabilities) and len(answers[0]) == 1
    assert answers[2][0].image.startswith("<512×512 PIL image")
    batch = srfer.analyze([PHOTO, CROP])
    assert [len(faces) for faces in batch] == [1, 1] and batch[1][0].sr_scale == 4


def test_results_serialise_as_the_cli_json() -> None:
    (face,) = srfer.analyze(CROP)
    line = json.loads(CliRunner().invoke(app, ["predict", str(CROP), "--json"]).stdout.splitlines()[0])
    assert face.to_dict() == line
    (vector,) = srfer.represent(CROP)
    assert len(vector.vector) == 128 and json.loads(json.dumps(vector.to_dict()))["face_px"] == 32
    verdict = srfer.verify(PHOTO, CROP)
    assert verdict.to_dict()["same"] is True and len(verdict.to_dict()["faces"]) == 2


def test_upscale_and_enhance_take_every_input_type() -> None:
    crop = Image.open(CROP)
    for x in (CROP, crop, np.asarray(crop.convert("RGB"))):
        assert srfer.upscale(x).size == (128, 128)
    assert srfer.upscale(CROP, "x8").size == (256, 256)
    result = srfer.enhance(np.asarray(Image.open(SMALL).convert("RGB")), scale=2)
    assert result.image.size == (246, 246) and len(result.faces) == 1 and result.to_dict()["scale"] == 2


def test_a_gallery_in_python(tmp_path: Path) -> None:
    with srfer.Gallery(tmp_path / "g.sqlite") as gallery:
        assert gallery.enroll("astronaut", [ENROLL, Image.open(ENROLL)]) == 2
        assert gallery.list() == {"astronaut": 2}
        assert [m.name for m in gallery.identify([CROP, PHOTO])] == ["astronaut", "astronaut"]
        faces = srfer.analyze(SMALL, gallery=tmp_path / "g.sqlite")
        assert faces[0].identity == "astronaut"
        assert gallery.remove("astronaut") == 2 and gallery.list() == {}


def test_models_are_shared_between_threads() -> None:
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(srfer.analyze(CROP)[0].probabilities))
               for _ in range(4)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 4 and all(a == answers[0] for a in answers)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (Path("missing.png"), "no such file"),
        (np.zeros((40, 40, 3), np.float32), "uint8"),
        (np.zeros((40, 40, 2), np.uint8), "(H, W, 3)"),
        (np.zeros((5, 5, 3), np.uint8), "too small for a face"),
        (42, "give an image"),
        (ROOT / "README.md", "not an image"),
    ],
)
def test_bad_input_is_one_clear_error(bad, words: str) -> None:
    with pytest.raises(srfer.SrferError, match=words.replace("(", r"\(").replace(")", r"\)")):
        srfer.analyze(bad, detect=False)


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(srfer.SrferError, match="sr"):
        srfer.analyze(CROP, sr="sometimes")
    with pytest.raises(srfer.SrferError, match="colour"):
        srfer.analyze(CROP, colour=True)
    with pytest.raises(srfer.SrferError, match="model"):
        srfer.upscale(CROP, "bigger")
    with pytest.raises(srfer.SrferError, match="scale"):
        srfer.enhance(SMALL, scale=3)
    with pytest.raises(srfer.SrferError, match="no face"):
        srfer.verify(Image.new("RGB", (200, 200), (40, 90, 200)), CROP)
