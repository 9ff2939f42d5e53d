"""`srfer enhance`: the photo upscaled, each face super-resolved at its own pixels and pasted
back through a feathered mask, so the seam cannot show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import synthetic_face, tiny_checkpoints
from typer.testing import CliRunner

from srfer.cli import app
from srfer.infer.enhance import _blend, feather_mask

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    return tiny_checkpoints(tmp_path_factory.mktemp("weights"))


def test_the_mask_is_whole_inside_and_fades_to_nothing_at_the_edges() -> None:
    mask = feather_mask(64)
    assert mask.shape == (64, 64) and float(mask[32, 32]) == 1.0
    assert float(mask[0, 32]) < 0.01 and float(mask[32, 0]) < 0.01
    assert torch.equal(mask, mask.flip(0)) and torch.equal(mask, mask.T)
    assert bool((mask >= 0).all() and (mask <= 1).all())


def test_a_face_pasted_over_its_own_pixels_changes_nothing_and_may_reach_past_the_edge() -> None:
    canvas = torch.rand(3, 40, 50)
    before = canvas.clone()
    _blend(canvas, before[:, 0:20, 30:50].clone(), [30, 0, 50, 20])
    assert torch.allclose(canvas, before)
    white = torch.ones(3, 24, 24)
    _blend(canvas, white, [40, -8, 64, 16])  # a crop over the top-right corner
    assert float(canvas[0, 4, 46]) > float(before[0, 4, 46]) and torch.equal(canvas[:, 20:], before[:, 20:])


def test_enhance_writes_the_photo_upscaled_with_its_faces(weights, tmp_path: Path) -> None:
    photo = Image.new("RGB", (120, 90), (200, 190, 170))
    photo.paste(synthetic_face((40, 40), 1), (40, 20))
    photo.save(tmp_path / "group.png")
    out = tmp_path / "out"
    args = ["enhance", str(tmp_path / "group.png"), "-o", str(out), "--weights", str(weights["sr"])]
    result = runner.invoke(app, [*args, "--json", "--save-faces", "--min-face", "12"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout.splitlines()[0])
    assert answer["output_size"] == [480, 360] and answer["scale"] == 4 and Path(answer["output"]).is_file()
    assert Image.open(out / "group.png").size == (480, 360)
    assert len(list(out.glob("group_face*.png"))) == len(answer["faces"])
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already exist" in again.output and "--overwrite" in again.output
    half = runner.invoke(app, [*args, "--scale", "2", "--overwrite"])
    assert half.exit_code == 0 and Image.open(out / "group.png").size == (240, 180)
    wrong = runner.invoke(app, [*args, "--scale", "3", "--overwrite"])
    assert wrong.exit_code == 1 and "--scale 3" in wrong.output and "Traceback" not in wrong.output


def test_enhance_skips_bad_photos_and_refuses_huge_outputs(weights, tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    synthetic_face((40, 40), 2).save(tmp_path / "face.png")
    args = ["enhance", str(tmp_path / "notes.png"), str(tmp_path / "face.png"), "-o", str(tmp_path / "o"),
            "--weights", str(weights["sr"]), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(x["image"]).name for x in lines if "skipped" in x] == ["notes.png"]
    from srfer.core.errors import SrferError
    from srfer.infer.enhance import Enhancer

    enhancer = Enhancer(4, "psnr", "cpu", weights=weights["sr"])
    with pytest.raises(SrferError, match="over the"):
        enhancer.enhance(Image.new("RGB", (4000, 3000)))
