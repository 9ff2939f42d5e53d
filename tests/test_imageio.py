from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srfer.core.errors import SrferError
from srfer.core.imageio import expand_inputs, load_image


def test_modes_are_converted(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent → white
    rgba.save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "rgba.png").getpixel((0, 0)) == (255, 255, 255)
    Image.new("P", (10, 10)).save(tmp_path / "pal.png")
    assert load_image(tmp_path / "pal.png").mode == "RGB"
    deep = Image.fromarray((np.ones((10, 10)) * 65535).astype(np.uint16))
    deep.save(tmp_path / "deep.png")
    assert load_image(tmp_path / "deep.png", mode="L").getpixel((0, 0)) == 255  # rescaled, not clipped
    Image.new("L", (10, 10), 77).save(tmp_path / "gray.jpg")
    assert load_image(tmp_path / "gray.jpg").size == (10, 10)


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    img = Image.new("RGB", (20, 10))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (10, 20)


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(SrferError, match="not an image"):
        load_image(tmp_path / "notes.png")
    Image.new("RGB", (64, 64), (9, 9, 9)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(SrferError, match="corrupt or truncated"):
        load_image(tmp_path / "cut.jpg")
    with pytest.raises(SrferError, match="no such file"):
        load_image(tmp_path / "missing.png")


@pytest.mark.slow
def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    Image.new("1", (20000, 20000)).save(tmp_path / "huge.png")  # tiny file, 400 Mpx
    with pytest.raises(SrferError, match="limit"):
        load_image(tmp_path / "huge.png")


def test_expand_inputs_handles_files_folders_and_globs(tmp_path: Path) -> None:
    for name in ("a.png", "b.jpg", "sub/c.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("x")
    assert len(expand_inputs([str(tmp_path)])) == 3
    assert [p.name for p in expand_inputs([str(tmp_path / "*.png")])] == ["a.png"]
    # a missing file stays in the list: it is skipped with its reason when read, like a corrupt one
    assert expand_inputs([str(tmp_path / "a.png"), str(tmp_path / "nope.png")])[-1].name == "nope.png"
    with pytest.raises(SrferError, match="no images"):
        expand_inputs([str(tmp_path / "*.gif")])
