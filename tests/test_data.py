from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import synthetic_face

from srfer.core.errors import SrferError
from srfer.data.faces import SRPairDataset, collate_skipping_failures, discover_faces


def make_celeba(root: Path, n: int = 10) -> Path:
    (root / "img_align_celeba").mkdir(parents=True)
    lines = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        synthetic_face((178, 218), i).save(root / "img_align_celeba" / name)
        lines.append(f"{name} {0 if i < 7 else 1 if i < 9 else 2}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def test_celeba_partition_file_defines_the_splits(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "celeba")
    sizes = {s: len(discover_faces(root, s).paths) for s in ("train", "val", "test", "all")}
    assert sizes == {"train": 7, "val": 2, "test": 1, "all": 10}
    item = SRPairDataset(discover_faces(root, "val"), hr_size=128, scale=4, augment=False)[0]
    assert item["hr"].shape == (3, 128, 128) and item["lr"].shape == (3, 32, 32)
    assert item["hr"].min() >= -1 and item["hr"].max() <= 1


def test_plain_folder_split_is_seeded_and_disjoint(face_folder: Path) -> None:
    train, val = discover_faces(face_folder, "train"), discover_faces(face_folder, "val")
    assert len(train.paths) + len(val.paths) == 24 and not set(train.paths) & set(val.paths)
    assert discover_faces(face_folder, "val").paths == val.paths
    assert discover_faces(face_folder, "val", seed=1).paths != val.paths
    with pytest.raises(SrferError, match="no test split"):
        discover_faces(face_folder, "test")


def test_missing_or_empty_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SrferError, match="not found"):
        discover_faces(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrferError, match="no images"):
        discover_faces(tmp_path / "empty")


@pytest.mark.parametrize("cache", [True, False])
def test_corrupt_files_are_skipped_not_fatal(face_folder: Path, cache: bool, capsys) -> None:
    (face_folder / "a" / "broken.png").write_bytes(b"\x89PNG\r\n garbage")
    source = discover_faces(face_folder, "all")
    dataset = SRPairDataset(source, hr_size=32, scale=4, cache=cache)
    if cache:
        assert len(dataset) == 24
        err = capsys.readouterr().err
        assert "skipped 1 image(s) of 25" in err and "broken.png" in err and len(dataset.skipped) == 1
    else:
        items = [dataset[i] for i in range(len(dataset))]
        batch = collate_skipping_failures(items)
        assert len(batch["skipped"]) == 1 and batch["hr"].shape == (24, 3, 32, 32)
        assert "broken.png" in batch["skipped"][0].reason


def test_grayscale_and_small_images(face_folder: Path, tmp_path: Path) -> None:
    Image.new("L", (20, 20), 128).save(face_folder / "small.png")  # upsized to the crop
    dataset = SRPairDataset(discover_faces(face_folder, "all"), hr_size=48, scale=4, channels=1)
    assert dataset[0]["lr"].shape == (1, 12, 12)
    with pytest.raises(SrferError, match="not divisible"):
        SRPairDataset(discover_faces(face_folder, "all"), hr_size=50, scale=4)


def test_sample_seed_makes_augmentation_reproducible(face_folder: Path) -> None:
    dataset = SRPairDataset(discover_faces(face_folder, "all"), hr_size=32, scale=4)
    torch.manual_seed(0)
    a = dataset[(3, 1234)]["hr"]
    torch.manual_seed(99)
    assert torch.equal(a, dataset[(3, 1234)]["hr"])
