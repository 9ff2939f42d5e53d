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


def test_the_clean_degradation_is_the_antialiased_bicubic_one() -> None:
    from srfer.data.degradations import CLEAN, bicubic_resize, quantize_8bit

    faces = torch.rand(3, 3, 64, 64)
    assert torch.equal(CLEAN(faces, 16, [0, 1, 2]), quantize_8bit(bicubic_resize(faces, 16)))


def test_a_realistic_degradation_is_seeded_8_bit_and_not_clean() -> None:
    from srfer.data.degradations import CLEAN, MIXED, REALISTIC, content_seeds

    faces = torch.rand(6, 3, 64, 64)
    seeds = content_seeds(faces)
    once, again = REALISTIC(faces, 16, seeds), REALISTIC(faces, 16, seeds)
    assert once.shape == (6, 3, 16, 16) and torch.equal(once, again)  # the same seeds, the same faces
    assert torch.equal(once, (once * 255).round() / 255)  # 8-bit
    assert not torch.equal(once, CLEAN(faces, 16, seeds)) and not torch.equal(
        REALISTIC(faces, 16, [7] * 6), once
    )
    mixed = MIXED(faces, 16, list(range(40, 46)))
    clean = CLEAN(faces, 16, seeds)
    assert 0 < sum(torch.equal(m, c) for m, c in zip(mixed, clean, strict=True)) < 6  # some of each
    assert REALISTIC(faces[:, :1], 12, seeds).shape == (6, 1, 12, 12)  # gray faces too
    assert REALISTIC.describe()["realistic"]["jpeg_quality"] == (30, 95) and CLEAN.describe() == {
        "name": "clean",
        "realistic_share": 0.0,
    }


def test_an_unknown_degradation_is_a_clear_error() -> None:
    from srfer.core.errors import SrferError
    from srfer.data.degradations import degradation

    with pytest.raises(SrferError, match="--degradation 'foggy'"):
        degradation("foggy")


def test_sr_pairs_degrade_alike_for_an_image_and_differently_per_training_draw(face_folder: Path) -> None:
    from srfer.data.degradations import REALISTIC

    source = discover_faces(face_folder, "all")
    clean = SRPairDataset(source, hr_size=32, scale=4, augment=False)
    real = SRPairDataset(source, hr_size=32, scale=4, augment=False, degradation=REALISTIC)
    assert torch.equal(real[0]["lr"], real[0]["lr"]) and not torch.equal(real[0]["lr"], clean[0]["lr"])
    assert not torch.equal(real[(0, 1)]["lr"], real[(0, 2)]["lr"])  # each training draw its own
