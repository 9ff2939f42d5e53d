from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srfer.data.fer import EMOTIONS, load_fer, load_fer_csv, load_ferplus
from srfer.errors import SrferError


def pixels(value: int) -> str:
    return " ".join([str(value)] * 48 * 48)


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows))
    return path


def test_csv_splits_and_labels(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "fer2013.csv",
        [
            ("3", pixels(10), "Training"),
            ("6", pixels(20), "Training"),
            ("0", pixels(30), "PublicTest"),
            ("1", pixels(40), "PrivateTest"),
        ],
    )
    train = load_fer_csv(csv, "train")
    assert train.images.shape == (2, 1, 48, 48) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [3, 6] and int(train.images[1, 0, 0, 0]) == 20
    assert load_fer(csv, "val").labels.tolist() == [0] and load_fer(csv, "test").labels.tolist() == [1]


@pytest.mark.parametrize(
    ("row", "message"),
    [(("3", "1 2 3", "Training"), "expected 2304"), (("9", pixels(1), "Training"), "not 0..6"),
     (("3", pixels(1).replace("1", "x", 1), "Training"), "not integers"),
     (("3", pixels(300), "Training"), "0..255")],
)  # fmt: skip
def test_malformed_csv_row_is_a_clear_error(tmp_path: Path, row, message: str) -> None:
    csv = write_csv(tmp_path / "bad.csv", [("0", pixels(0), "Training"), row])
    with pytest.raises(SrferError, match=f"line 3.*{message}"):
        load_fer_csv(csv, "train")


def test_csv_without_columns(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SrferError, match="missing column"):
        load_fer_csv(tmp_path / "x.csv")


def test_ferplus_majority_vote_drops_non_emotions(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "fer2013.csv", [("0", pixels(i), "Training") for i in range(4)])
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    rows = ["Training,fer0.png,1,8,0,0,1,0,0,0,0,0",  # happiness
            "Training,fer1.png,0,0,0,0,0,0,0,6,4,0",  # contempt → dropped
            "Training,fer2.png,0,0,0,0,0,0,0,0,0,10",  # not a face → dropped
            "Training,fer3.png,7,0,0,3,0,0,0,0,0,0"]  # neutral  # fmt: skip
    (tmp_path / "fer2013new.csv").write_text(header + "\n".join(rows) + "\n")
    plus = load_ferplus(csv, tmp_path / "fer2013new.csv", "train")
    assert plus.labels.tolist() == [EMOTIONS.index("happy"), EMOTIONS.index("neutral")]
    assert "2 rows" in plus.description


def make_folder(root: Path, classes: list[str], per_class: int = 2) -> Path:
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((48, 48), 10 * i, np.uint8), "L").save(root / c / f"{i}.jpg")
    return root


def test_folders_root_split_and_single_split(tmp_path: Path) -> None:
    make_folder(tmp_path / "fer" / "train", ["happy", "Angry", "surprised"])
    make_folder(tmp_path / "fer" / "val", ["sad"], per_class=1)
    Image.new("RGB", (96, 96)).save(tmp_path / "fer" / "val" / "sad" / "big_rgb.png")  # converted, resized
    train = load_fer(tmp_path / "fer", "train")
    assert sorted(set(train.labels.tolist())) == [0, 3, 5] and len(train) == 6
    assert load_fer(tmp_path / "fer", "val").images.shape == (2, 1, 48, 48)
    assert len(load_fer(tmp_path / "fer" / "train")) == 6  # a single split folder


def test_unknown_class_folder_is_named(tmp_path: Path) -> None:
    make_folder(tmp_path / "f", ["happy", "contempt"])
    with pytest.raises(SrferError, match="contempt"):
        load_fer(tmp_path / "f", "train")
    with pytest.raises(SrferError, match="not found"):
        load_fer(tmp_path / "missing")


def test_subset_spreads_over_every_class(tmp_path: Path) -> None:
    make_folder(tmp_path / "fer" / "train", ["happy", "angry", "sad"], per_class=4)
    subset = load_fer(tmp_path / "fer", "train", subset=3)
    assert len(subset) == 3 and sorted(subset.labels.tolist()) == [0, 3, 4]
    assert len(load_fer(tmp_path / "fer", "train", subset=0)) == 12
    csv = write_csv(tmp_path / "f.csv", [(str(i % 7), pixels(i), "Training") for i in range(14)])
    assert sorted(load_fer(csv, "train", subset=7).labels.tolist()) == list(range(7))
