from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srfer.core.errors import SrferError
from srfer.data.fer import (
    EMOTIONS,
    FERPLUS_CLASSES,
    class_names,
    load_fer,
    load_fer_csv,
    load_ferplus,
    project_probs,
)


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


def write_ferplus_folder(folder: Path, rows: list[tuple[int, list[int]]]) -> Path:
    """FER+'s folder release: headerless label.csv (name, box, 10 vote counts) beside PNGs;
    `rows`: (gray value of the face, votes in label.csv's column order)."""
    folder.mkdir(parents=True)
    lines = []
    for i, (value, votes) in enumerate(rows):
        Image.fromarray(np.full((48, 48), value, np.uint8), "L").save(folder / f"fer{i:07d}.png")
        lines.append(f'fer{i:07d}.png,"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (folder / "label.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_ferplus_folders_give_8_classes_majority_labels_and_vote_distributions(tmp_path: Path) -> None:
    #           neutral happiness surprise sadness anger disgust fear contempt unknown NF
    rows = [(10, [1, 8, 0, 0, 1, 0, 0, 0, 0, 0]),  # happy, 80 %
            (20, [0, 0, 0, 0, 0, 0, 0, 6, 4, 0]),  # contempt: a class of its own in FER+
            (30, [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # not a face → dropped
            (40, [0, 0, 0, 0, 0, 0, 0, 2, 8, 0]),  # unknown wins → dropped
            (50, [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),  # tie → dropped
            (60, [6, 0, 0, 2, 0, 0, 0, 0, 0, 2])]  # neutral; NF votes are not an expression's  # fmt: skip
    write_ferplus_folder(tmp_path / "ferplus" / "FER2013Train", rows)
    plus = load_fer(tmp_path / "ferplus", "train")
    assert plus.classes == FERPLUS_CLASSES and plus.classes[:7] == EMOTIONS
    assert plus.labels.tolist() == [EMOTIONS.index("happy"), FERPLUS_CLASSES.index("contempt"),
                                    EMOTIONS.index("neutral")]  # fmt: skip
    assert plus.images[:, 0, 0, 0].tolist() == [10, 20, 60] and "3 faces" in plus.description
    assert torch.allclose(plus.votes.sum(1), torch.ones(3))
    assert plus.votes[0, EMOTIONS.index("happy")] == pytest.approx(0.8)
    assert plus.votes[2, EMOTIONS.index("sad")] == pytest.approx(0.25)  # 2 of the 8 expression votes
    assert len(load_fer(tmp_path / "ferplus" / "FER2013Train")) == 3  # a single split folder
    assert len(load_fer(tmp_path / "ferplus", "train", subset=2)) == 2
    with pytest.raises(SrferError, match="neither"):
        load_fer(tmp_path / "ferplus", "val")  # no FER2013Valid/


def test_ferplus_row_with_missing_votes_is_a_clear_error(tmp_path: Path) -> None:
    folder = write_ferplus_folder(tmp_path / "FER2013Valid", [(0, [1, 2, 3])])
    with pytest.raises(SrferError, match="line 1: expected 10 vote columns"):
        load_fer(folder)


def test_probabilities_move_between_7_and_8_classes() -> None:
    eight = torch.tensor([[0.1, 0.0, 0.0, 0.5, 0.0, 0.0, 0.2, 0.2]])
    seven = project_probs(eight, 7)
    assert seven.shape == (1, 7) and torch.allclose(seven.sum(1), torch.ones(1)) and seven[0, 3] == 0.625
    back = project_probs(seven, 8)
    assert back[0, 7] == 0 and torch.equal(back[:, :7], seven)
    assert class_names(8)[-1] == "contempt" and class_names(7) == EMOTIONS
    with pytest.raises(SrferError, match="5-class"):
        class_names(5)
