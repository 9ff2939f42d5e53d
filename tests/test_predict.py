"""`srfer predict` end to end with tiny random-weight models (no shipped weights needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import synthetic_face, tiny_checkpoints
from typer.testing import CliRunner

from srfer.cli import app
from srfer.core.errors import SrferError
from srfer.core.weights import Weights
from srfer.faces.detect import FaceDetector, square_crop
from srfer.faces.galleries import open_gallery

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCHEMA = {"image", "face", "box", "face_px", "detector_score", "sr", "sr_scale", "expression",
          "expression_model", "confidence", "probabilities", "identity", "nearest", "distance", "threshold",
          "alignment", "identity_sr"}  # fmt: skip
EMOTIONS = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Random-weight SR ×4, expression and embedder checkpoints: tiny, but the real networks."""
    return tiny_checkpoints(tmp_path_factory.mktemp("weights"))


def predict(
    weights: dict[str, Path],
    *args: str,
    identity_sr: str | None = "sr",
    embed: str = "embed",
    x8: str = "sr_x8",
    fer: str = "fer",
):
    """`srfer predict` on the tiny checkpoints (`identity_sr=None`: no identity-aware SR, as
    none of the shipped ones is made for these embedders)."""
    identity = ["--identity-sr-weights", str(weights[identity_sr])] if identity_sr else []
    w = ["--sr-weights", str(weights["sr"]), "--fer-weights", str(weights[fer]),
         "--embed-weights", str(weights[embed]), *identity,
         "--fer-sr-weights", str(weights["sr_fer"]), "--upscale-fer-weights", str(weights["fer_up"]),
         "--sr-x8-weights", str(weights[x8]), "--device", "cpu"]  # fmt: skip
    return runner.invoke(app, ["predict", *args, *w])


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture
def crops(tmp_path: Path) -> Path:
    """Two drawn 32×32 face-like crops (small images are taken as one face each)."""
    folder = tmp_path / "crops"
    folder.mkdir()
    for i in range(2):
        synthetic_face((32, 32), i).save(folder / f"face{i}.png")
    return folder


def test_schema_and_sr_modes(weights, crops: Path) -> None:
    auto = predict(weights, str(crops), "--json")
    assert auto.exit_code == 0, auto.output
    faces = json_lines(auto.stdout)
    assert len(faces) == 2 and all(set(f) == SCHEMA for f in faces)
    face = faces[0]
    assert face["sr"] is True and face["face_px"] == 32 and face["detector_score"] is None
    assert set(face["probabilities"]) == EMOTIONS and face["expression"] in EMOTIONS
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
    never = json_lines(predict(weights, str(crops), "--json", "--sr", "never").stdout)
    assert [f["sr"] for f in never] == [False, False]
    big = synthetic_face((100, 100), 3)
    big.save(crops / "big.png")
    always = json_lines(
        predict(weights, str(crops / "big.png"), "--json", "--no-detect", "--sr", "always").stdout
    )
    assert always[0]["sr"] is True and always[0]["face_px"] == 100


def test_sr_never_needs_no_sr_weights(weights, crops: Path) -> None:
    args = ["--fer-weights", str(weights["fer"]), "--sr-weights", "/nonexistent", "--device", "cpu"]
    result = runner.invoke(app, ["predict", str(crops), "--sr", "never", "--json", *args])
    assert result.exit_code == 0, result.output


def test_corrupt_file_is_skipped_and_no_face_is_not_an_error(weights, crops: Path, tmp_path: Path) -> None:
    (crops / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGB", (160, 120), (40, 90, 200)).save(crops / "sky.png")  # no face in it
    result = predict(weights, str(crops), "--json", "--save-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert len([line for line in lines if "skipped" not in line]) == 2
    assert [Path(line["image"]).name for line in lines if "skipped" in line] == ["broken.png"]
    assert "broken.png" in result.stderr and "skipped" in result.stderr
    assert "no face found" in result.stderr and "sky.png" in result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    expected = [f"face{i}_{kind}.png" for i in range(2) for kind in ("annotated", "face0_sr")]
    assert written == [*expected, "sky_annotated.png"]
    only_bad = predict(weights, str(crops / "broken.png"))
    assert only_bad.exit_code == 1 and "Traceback" not in only_bad.output


def test_no_face_image_exits_zero_with_a_message(weights, tmp_path: Path) -> None:
    Image.new("RGB", (200, 200), (128, 128, 128)).save(tmp_path / "grey.png")
    result = predict(weights, str(tmp_path / "grey.png"), "--json")
    assert result.exit_code == 0 and result.stdout.strip() == "" and "no face found" in result.stderr


def test_tiny_face_and_bad_options_are_one_line_errors(weights, tmp_path: Path) -> None:
    synthetic_face((5, 5), 0).save(tmp_path / "five.png")
    tiny = predict(weights, str(tmp_path / "five.png"))
    assert tiny.exit_code == 1 and "too small" in tiny.stderr
    bad = predict(weights, str(tmp_path / "five.png"), "--sr", "sometimes")
    assert bad.exit_code == 1 and "--sr 'sometimes'" in bad.stderr


def test_detects_the_astronaut_and_writes_annotations(weights, tmp_path: Path) -> None:
    result = predict(weights, str(EXAMPLES / "astronaut.png"), "--save-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "1 face(s)" in result.stdout and "astronaut.png" in result.stdout
    assert (tmp_path / "astronaut_annotated.png").is_file()
    faces = json_lines(predict(weights, str(EXAMPLES / "astronaut.png"), "--json").stdout)
    assert len(faces) == 1 and faces[0]["detector_score"] > 0.9 and faces[0]["sr"] is False
    x1, y1, x2, y2 = faces[0]["box"]
    assert 150 < (x1 + x2) / 2 < 250 and 60 < (y1 + y2) / 2 < 160  # her face, not the flag or the suit


def test_gallery_names_faces(weights, crops: Path, tmp_path: Path) -> None:
    gallery = tmp_path / "g.sqlite"
    enroll = runner.invoke(app, ["enroll", "ann", str(crops / "face0.png"), "--gallery", str(gallery),
                                 "--weights", str(weights["embed"]), "--device", "cpu"])  # fmt: skip
    assert enroll.exit_code == 0, enroll.output
    result = predict(
        weights, str(crops), "--json", "--gallery", str(gallery), "--threshold", "1e9", "--embeddings"
    )
    faces = json_lines(result.stdout)
    assert [f["identity"] for f in faces] == ["ann", "ann"] and len(faces[0]["embedding"]) == 16
    strict = json_lines(
        predict(weights, str(crops), "--json", "--gallery", str(gallery), "--threshold", "-1").stdout
    )
    assert [f["identity"] for f in strict] == ["unknown", "unknown"] and strict[0]["nearest"] == "ann"
    missing = predict(weights, str(crops), "--gallery", str(tmp_path / "none.sqlite"))
    assert missing.exit_code == 1 and "gallery not found" in missing.stderr


def test_gallery_of_another_model_is_refused(weights, crops: Path, tmp_path: Path) -> None:
    gallery = tmp_path / "g.sqlite"
    with open_gallery(gallery, create=True) as g:
        g.add("bob", torch.nn.functional.normalize(torch.randn(1, 16), dim=1), ["x"], "another-model")
    result = predict(weights, str(crops), "--gallery", str(gallery))
    assert result.exit_code == 1 and "another-model"[:12] in result.stderr


def test_square_crop_frames_like_training() -> None:
    left, top, right, bottom = square_crop((100, 100, 180, 200), margin=0.1, shift_up=0.1)
    assert right - left == bottom - top == 110  # 1.1 × the longer side (100)
    assert (left + right) / 2 == 140 and (top + bottom) / 2 == 140  # centre raised by 0.1 × 100


def test_detector_handles_mixed_batches() -> None:
    """One MTCNN batch with a face image and a face-less one of the same size (the batch-mode
    crash of facenet-pytorch#224), plus a small crop taken whole."""
    astronaut = Image.open(EXAMPLES / "astronaut.png").convert("RGB")
    blank = Image.new("RGB", astronaut.size, (0, 0, 0))
    found = FaceDetector(torch.device("cpu")).detect([astronaut, blank, synthetic_face((32, 32), 0)])
    assert [len(f) for f in found] == [1, 0, 1] and found[2][0].score is None


def test_model_id_is_the_file_hash(weights) -> None:
    from srfer.core.weights import sha256
    from srfer.infer.load import load_embedder

    model_id = load_embedder(weights["embed"], torch.device("cpu")).model_id
    assert len(model_id) == 64 and model_id == sha256(weights["embed"])


def test_gray_rgba_and_16_bit_inputs_work(weights, tmp_path: Path) -> None:
    import numpy as np

    face = synthetic_face((32, 32), 5)
    face.convert("L").save(tmp_path / "gray.png")
    face.convert("RGBA").save(tmp_path / "rgba.png")
    wide = (np.asarray(face.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "deep.png")  # uint16 → mode I;16
    faces = json_lines(predict(weights, str(tmp_path), "--json").stdout)
    assert sorted(Path(f["image"]).name for f in faces) == ["deep.png", "gray.png", "rgba.png"]


def test_weights_resolution_order(weights, tmp_path: Path, monkeypatch) -> None:
    """CLI option, then $SRFER_WEIGHTS, then the shipped folder."""
    import shutil

    import srfer.core.weights as w

    shipped, env = tmp_path / "shipped", tmp_path / "env"
    name = w.Weights.FER.entry.file
    for folder in (shipped, env):
        folder.mkdir()
        shutil.copy(weights["fer"], folder / name)
    monkeypatch.setattr(w, "PACKAGE_WEIGHTS", shipped)
    monkeypatch.delenv("SRFER_WEIGHTS", raising=False)
    assert w.Weights.FER.resolve() == shipped / name
    monkeypatch.setenv("SRFER_WEIGHTS", str(env))
    assert w.Weights.FER.resolve() == env / name
    assert w.Weights.FER.resolve(weights["fer"]) == weights["fer"]
    (env / name).unlink()
    assert w.Weights.FER.resolve() == shipped / name  # falls through
    report = {r["role"]: r for r in w.weights_report()}
    assert report["fer"]["status"] == "sha256 MISMATCH" and report["embed"]["status"] == "missing"


@pytest.mark.slow
def test_large_photos_are_searched_small_but_answered_in_their_own_pixels() -> None:
    astronaut = Image.open(EXAMPLES / "astronaut.png").convert("RGB")
    big = astronaut.resize((2048, 2048), Image.Resampling.BICUBIC)  # searched at 1600 px
    (face,) = FaceDetector(torch.device("cpu")).detect([big])[0]
    x1, y1, x2, y2 = face.box
    assert 600 < (x1 + x2) / 2 < 1000 and 240 < (y1 + y2) / 2 < 640  # 4 × the 512 px box centre
    assert face.crop == square_crop(face.box)


def test_wrong_checkpoint_kind_is_one_line(weights, crops: Path) -> None:
    args = ["predict", str(crops), "--fer-weights", str(weights["sr"]), "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output and "sr-generator" in result.stderr


def test_identity_aware_sr_feeds_only_the_embedder(weights, crops: Path) -> None:
    args = (str(crops), "--json", "--embeddings")
    same, other = (json_lines(predict(weights, *args, identity_sr=k).stdout) for k in ("sr", "sr_id"))
    assert [f["probabilities"] for f in same] == [f["probabilities"] for f in other]  # expression: the SR
    assert all(a["embedding"] != b["embedding"] for a, b in zip(same, other, strict=True))
    bicubic = json_lines(predict(weights, *args, "--sr", "never", identity_sr="sr_id").stdout)
    assert all(not f["sr"] for f in bicubic)  # --sr never: no SR at all, identity-aware or not


def test_tiny_faces_get_the_fer_sr_and_the_upscale_trained_classifier(weights, tmp_path: Path) -> None:
    synthetic_face((16, 16), 0).save(tmp_path / "tiny.png")
    synthetic_face((32, 32), 0).save(tmp_path / "small.png")
    args = (str(tmp_path / "tiny.png"), str(tmp_path / "small.png"), "--json", "--no-detect")
    tiny, small = json_lines(predict(weights, *args).stdout)
    assert tiny["face_px"] == 16 and tiny["expression_model"] == "fer-upscale" and tiny["sr"] is True
    assert small["face_px"] == 32 and small["expression_model"] == "fer+fer-upscale"  # sharp: both answer
    off = json_lines(predict(weights, *args, "--no-tiny-expression").stdout)
    assert [f["expression_model"] for f in off] == ["fer", "fer"]
    assert off[0]["probabilities"] != tiny["probabilities"]  # another model answered
    assert off[1]["probabilities"] != small["probabilities"]  # the HR classifier alone
    never = json_lines(predict(weights, *args, "--sr", "never").stdout)
    assert [f["expression_model"] for f in never] == ["fer", "fer"]  # no SR: no tiny path either


def test_a_sharp_small_face_gets_the_mean_of_both_classifiers(weights, tmp_path: Path) -> None:
    import dataclasses

    from srfer.infer.options import PredictOptions, PredictWeights
    from srfer.infer.predict import Predictor
    from srfer.infer.routing import ROUTING

    synthetic_face((32, 32), 0).save(tmp_path / "small.png")
    files = PredictWeights(
        sr_weights=weights["sr"], fer_weights=weights["fer"], sr_x8_weights=weights["sr_x8"],
        fer_sr_weights=weights["sr_fer"], upscale_fer_weights=weights["fer_up"],
    )  # fmt: skip

    def answer(routing):
        predictor = Predictor(PredictOptions(detect=False), "cpu", files, routing=routing)
        return predictor.run([tmp_path / "small.png"]).images[0].faces[0]

    both = answer(ROUTING)
    hr = answer(dataclasses.replace(ROUTING, both_up_to=ROUTING.tiny_up_to))
    tiny = answer(dataclasses.replace(ROUTING, tiny_up_to=ROUTING.both_up_to))
    assert (both.expression_model, hr.expression_model, tiny.expression_model) == (
        "fer+fer-upscale", "fer", "fer-upscale"
    )  # fmt: skip
    for name, p in both.probabilities.items():
        assert p == pytest.approx((hr.probabilities[name] + tiny.probabilities[name]) / 2, abs=1e-6)


def test_the_smallest_faces_go_through_the_x8_sr_on_both_heads(weights, tmp_path: Path) -> None:
    from srfer.infer.routing import ROUTING

    x8_below = ROUTING.x8_below
    small = min(x8_below.expression, x8_below.identity) - 2
    large = max(x8_below.expression, x8_below.identity) + 4
    for name, px in (("small", small), ("large", large)):
        synthetic_face((px, px), 0).save(tmp_path / f"{name}.png")
    args = (str(tmp_path / "small.png"), str(tmp_path / "large.png"), "--json", "--no-detect",
            "--embeddings", "--no-tiny-expression")  # fmt: skip
    runs = {
        more: json_lines(predict(weights, *args, *more, identity_sr=None).stdout)
        for more in ((), ("--no-x8",))
    }
    x8, x4 = runs.values()
    assert [f["sr_scale"] for f in x8] == [8, 4] and [f["sr_scale"] for f in x4] == [4, 4]
    assert x8[0]["embedding"] != x4[0]["embedding"]  # the centre-crop embedder's face: ×8
    assert x8[1]["embedding"] == x4[1]["embedding"] and x8[1]["probabilities"] == x4[1]["probabilities"]
    for embed in ("embed", "embed_aligned"):  # an identity-aware SR serves the embedder at every size
        given = json_lines(predict(weights, *args, embed=embed, identity_sr="sr_id").stdout)
        given_x4 = json_lines(predict(weights, *args, "--no-x8", embed=embed, identity_sr="sr_id").stdout)
        assert given[0]["embedding"] == given_x4[0]["embedding"] and given[0]["sr_scale"] == 8
    aligned, aligned_x4 = (
        json_lines(predict(weights, *args, *more, embed="embed_aligned", identity_sr=None).stdout)
        for more in ((), ("--no-x8",))
    )
    assert aligned[0]["embedding"] != aligned_x4[0]["embedding"]  # the aligned chip went through ×8 too
    never = json_lines(predict(weights, *args, "--sr", "never").stdout)
    assert [f["sr_scale"] for f in never] == [None, None]


def test_the_embedders_small_sharp_faces_go_through_the_feature_sr(weights, tmp_path: Path) -> None:
    from srfer.infer.routing import ROUTING

    below = ROUTING.feature_sr_below
    names = []
    for px in (12, below - 1, below):
        synthetic_face((px, px), 0).save(tmp_path / f"{px}.png")
        names.append(str(tmp_path / f"{px}.png"))
    blurred = tmp_path / "soft.png"  # a soft face just under the feature SR's limit: no SR at all
    synthetic_face((below - 1,) * 2, 0).resize((4, 4)).resize((below - 1,) * 2).save(blurred)
    args = (*names, str(blurred), "--json", "--no-detect", "--embeddings", "--no-tiny-expression")
    fsr = ("--feature-sr-weights", str(weights["feature_sr"]))
    on, off = (
        json_lines(predict(weights, *args, *more, embed="embed_aligned", identity_sr=None).stdout)
        for more in (fsr, ("--feature-sr-weights", "none"))
    )
    assert [f["identity_sr"] for f in on] == ["feature-sr", "feature-sr", "sr", None]
    assert [f["identity_sr"] for f in off] == ["sr-x8", "sr", "sr", None]
    assert all(on[i]["embedding"] != off[i]["embedding"] for i in (0, 1))
    assert on[2]["embedding"] == off[2]["embedding"] and on[3]["embedding"] == off[3]["embedding"]
    assert [f["probabilities"] for f in on] == [f["probabilities"] for f in off]  # expression: unchanged
    # the shipped one, made for another embedder: refused when named, left out when it is the default
    shipped = ("--feature-sr-weights", str(Weights.FEATURE_SR.resolve(None)))
    wrong = predict(weights, *args, *shipped, embed="embed_aligned", identity_sr=None)
    assert wrong.exit_code == 1 and "trained with another embedder" in wrong.stderr, wrong.output
    default = json_lines(predict(weights, *args, embed="embed_aligned", identity_sr=None).stdout)
    assert [f["embedding"] for f in default] == [f["embedding"] for f in off]


def test_a_wrong_x8_model_is_a_one_line_error(weights, tmp_path: Path) -> None:
    synthetic_face((16, 16), 0).save(tmp_path / "tiny.png")
    result = predict(weights, str(tmp_path / "tiny.png"), "--no-detect", x8="sr_fer")
    assert result.exit_code == 1 and "Traceback" not in result.output and "RGB" in result.stderr, (
        result.output
    )


def test_tiny_path_weights_errors_are_one_line(weights, tmp_path: Path) -> None:
    synthetic_face((16, 16), 0).save(tmp_path / "tiny.png")
    w = ["--sr-weights", str(weights["sr"]), "--fer-weights", str(weights["fer"]), "--device", "cpu"]
    cases = (("--upscale-fer-weights", weights["sr"], "sr-generator"),
             ("--fer-sr-weights", tmp_path / "missing.safetensors", "missing"))  # fmt: skip
    for option, value, says in cases:
        result = runner.invoke(
            app, ["predict", str(tmp_path / "tiny.png"), "--no-detect", *w, option, str(value)]
        )
        assert result.exit_code == 1 and "Traceback" not in result.output and says in result.stderr, (
            result.output
        )


def test_an_aligning_embedder_sees_faces_warped_by_their_landmarks(weights, tmp_path: Path) -> None:
    """The shipped embedder's contract names a template: a detected face is aligned by its
    landmarks, so is a thumbnail taken whole (MTCNN finds its landmarks on a canvas); a crop
    given with --no-detect has none and takes the fallback; each says so."""
    gallery = tmp_path / "g.sqlite"
    w = ["--weights", str(weights["embed_aligned"]), "--device", "cpu"]
    enroll = runner.invoke(app, ["enroll", "astro", str(EXAMPLES / "gallery" / "astronaut_128.png"),
                                 "--gallery", str(gallery), *w])  # fmt: skip
    assert enroll.exit_code == 0, enroll.output
    args = [str(EXAMPLES / "astronaut.png"), str(EXAMPLES / "faces" / "astronaut_face_32.png"), "--json",
            "--gallery", str(gallery), "--threshold", "1e9"]  # fmt: skip
    result = predict(weights, *args, embed="embed_aligned")
    faces = json_lines(result.stdout)
    assert result.exit_code == 0 and [f["alignment"] for f in faces] == ["landmarks", "landmarks"]
    assert [f["identity"] for f in faces] == ["astro", "astro"] and [f["sr"] for f in faces] == [False, True]
    given = json_lines(predict(weights, *args[1:], "--no-detect", embed="embed_aligned").stdout)
    assert [f["alignment"] for f in given] == ["fallback"]
    plain = json_lines(predict(weights, str(EXAMPLES / "astronaut.png"), "--json", "--embeddings").stdout)
    assert plain[0]["alignment"] == "centre-crop"  # srfer's own embedder keeps its centre crops


def test_a_thumbnail_is_one_face_with_the_landmarks_mtcnn_finds_for_it() -> None:
    detector = FaceDetector(torch.device("cpu"))
    thumbnail = Image.open(EXAMPLES / "faces" / "astronaut_face_32.png").convert("RGB")
    (face,) = detector.detect([thumbnail])[0]
    assert face.box == (0.0, 0.0, 32.0, 32.0) and face.score is None  # the whole image, as before
    assert face.landmarks is not None and face.landmarks.shape == (5, 2)
    left_eye, right_eye = face.landmarks[0], face.landmarks[1]
    assert 0 < left_eye[0] < right_eye[0] < 32 and 0 < left_eye[1] < 32
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    assert detector.detect([noise])[0][0].landmarks is None  # no face: the fallback's case
    unaligned = FaceDetector(torch.device("cpu"), thumbnail_landmarks=False)  # nothing would use them
    assert unaligned.detect([thumbnail])[0][0].landmarks is None


def test_detections_carry_five_landmarks_inside_the_box() -> None:
    img = Image.open(EXAMPLES / "astronaut.png").convert("RGB")
    face = FaceDetector(torch.device("cpu")).detect([img])[0][0]
    x1, y1, x2, y2 = face.box
    assert face.landmarks.shape == (5, 2)
    assert ((face.landmarks[:, 0] > x1) & (face.landmarks[:, 0] < x2)).all()
    assert face.landmarks[0, 0] < face.landmarks[1, 0] and face.landmarks[2, 1] < face.landmarks[3, 1]


def test_a_shipped_identity_sr_serves_the_embedder_it_was_made_for() -> None:
    from srfer.faces.align import DLIB_TEMPLATE
    from srfer.infer.predict import identity_sr_fits

    made_for_dlib = {"identity_embedder": {"sha256": "abc"}}
    assert identity_sr_fits(made_for_dlib, "abc", DLIB_TEMPLATE)
    assert not identity_sr_fits(made_for_dlib, "other", DLIB_TEMPLATE)
    assert not identity_sr_fits(made_for_dlib, "other", None)
    assert identity_sr_fits({}, "any", None)  # older files: made through a centre-crop embedder
    assert not identity_sr_fits({}, "any", DLIB_TEMPLATE)


@pytest.mark.slow
def test_worker_processes_answer_exactly_like_one_process(weights, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for i in range(5):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        synthetic_face((32, 32), i).save(sub / f"face{i % 3}.png")  # a/face1.png and b/face1.png clash
    (folder / "broken.png").write_bytes(b"not an image")
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        result = predict(weights, str(folder), "--json", "--workers", workers, "--save-dir", str(out))
        assert result.exit_code == 0, result.output
        runs[workers] = (json_lines(result.stdout), sorted(p.name for p in out.iterdir()), result.stderr)
    assert runs["1"][0] == runs["2"][0] and len(runs["2"][0]) == 5 + 1  # five faces, one skipped file
    assert runs["1"][1] == runs["2"][1]  # the same --save-dir names, clashes renamed the same way
    assert "broken.png" in runs["2"][2]


def test_a_ferplus_classifier_answers_contempt_as_its_own_class(weights, tmp_path: Path) -> None:
    synthetic_face((16, 16), 0).save(tmp_path / "tiny.png")  # the 7-class tiny path: contempt 0
    synthetic_face((32, 32), 0).save(tmp_path / "small.png")
    args = (str(tmp_path / "tiny.png"), str(tmp_path / "small.png"), "--json", "--no-detect")
    result = predict(weights, *args, fer="fer8")
    assert result.exit_code == 0, result.output
    tiny, small = json_lines(result.stdout)
    assert set(small["probabilities"]) == EMOTIONS | {"contempt"} == set(tiny["probabilities"])
    assert tiny["expression_model"] == "fer-upscale" and tiny["probabilities"]["contempt"] == 0
    assert abs(sum(small["probabilities"].values()) - 1) < 1e-3


def test_the_default_expression_classifier_answers_with_flip_tta(weights, tmp_path: Path, monkeypatch):
    """The shipped default is flip-averaged (its entry's `flip_tta`); a named file answers as it is."""
    import shutil

    import srfer.core.weights as w
    from srfer.infer.load import load_classifier
    from srfer.models.fer_ensemble import FlipAveraged

    monkeypatch.setattr(w, "PACKAGE_WEIGHTS", tmp_path)
    monkeypatch.delenv("SRFER_WEIGHTS", raising=False)
    monkeypatch.setenv(w.ALLOW_MODIFIED, "1")  # synthetic files under the shipped names
    for role in (w.Weights.FER, w.Weights.FER_UPSCALE):
        shutil.copy(weights["fer"], tmp_path / role.entry.file)
    default = load_classifier(None, torch.device("cpu"))
    assert w.Weights.FER.entry.flip_tta and isinstance(default.network, FlipAveraged)
    assert default.entry is w.Weights.FER.entry  # the loaded model carries its entry
    named = load_classifier(weights["fer"], torch.device("cpu"))
    assert not isinstance(named.network, FlipAveraged) and named.entry is None
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        expected = (named(x).softmax(1) + named(x.flip(-1)).softmax(1)) / 2
        assert torch.allclose(default(x).softmax(1), expected, atol=1e-5)
    tiny_path = load_classifier(None, torch.device("cpu"), role=w.Weights.FER_UPSCALE)
    assert w.Weights.FER_UPSCALE.entry.flip_tta and isinstance(tiny_path.network, FlipAveraged)
    from srfer.infer.options import PredictOptions, PredictWeights
    from srfer.infer.predict import Predictor

    given = PredictWeights(
        sr_weights=weights["sr"], fer_sr_weights=weights["sr_fer"], sr_x8_weights=weights["sr_x8"]
    )
    predictor = Predictor(PredictOptions(detect=False), "cpu", given)  # both classifiers as shipped: flipped
    assert isinstance(predictor.tiny_expression.classifier.network, FlipAveraged)
    assert isinstance(predictor.classifier.network, FlipAveraged)
    (tmp_path / w.Weights.FER.entry.file).unlink()
    with pytest.raises(SrferError, match=w.Weights.FER.entry.file):
        load_classifier(None, torch.device("cpu"))
