"""Face image sources (CelebA or any folder) and the HR/LR pair dataset for SR training.

CelebA: `img_align_celeba/*.jpg` (178×218) with `list_eval_partition.txt` when present
(0 train, 1 val, 2 test), else a fixed seeded 90/10 split. Any other folder: every image
below it (recursive), or its `train/`, `val/`, `test/` subfolder when the split exists.
Seed pipeline: center crop hr_size (no resize), random h-flip, small colour jitter,
HR in [-1, 1], LR = antialiased bicubic ↓scale.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from srfer.core.console import warn
from srfer.core.errors import SrferError
from srfer.core.imageio import IMAGE_SUFFIXES, Skipped, load_face, pil_to_tensor, skip_summary
from srfer.data import sample_rng, split_key
from srfer.data.degradations import CLEAN, Degradation, downsample, to_signed

SPLITS = ("train", "val", "test", "all")
CELEBA_PARTITION = {"train": "0", "val": "1", "test": "2"}


@dataclass
class FaceSource:
    """Which files a split holds, and a one-line description for checkpoints and logs."""

    paths: list[Path]
    description: str


def _seeded_split(paths: list[Path], split: str, seed: int, val_fraction: float) -> list[Path]:
    if split == "all":
        return paths
    if split == "test":
        raise SrferError("this folder has no test split (only CelebA's partition file defines one)")
    order = list(range(len(paths)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(paths) * val_fraction))
    chosen = sorted(order[:n_val] if split == "val" else order[n_val:])
    return [paths[i] for i in chosen]


def _celeba_paths(root: Path, split: str, seed: int, val_fraction: float) -> FaceSource:
    image_dir = root / "img_align_celeba"
    partition = root / "list_eval_partition.txt"
    if partition.is_file() and split != "all":
        wanted = CELEBA_PARTITION[split]
        names = [
            parts[0]
            for parts in (line.split() for line in partition.read_text().splitlines())
            if len(parts) == 2 and parts[1] == wanted
        ]
        paths = [image_dir / n for n in names if (image_dir / n).is_file()]
        how = f"partition file, partition {wanted}"
    else:
        all_paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths = _seeded_split(all_paths, split, seed, val_fraction)
        how = "all images" if split == "all" else f"seeded split (seed {seed})"
    return FaceSource(paths, f"CelebA {root} [{split}: {how}]")


def check_data_root(root: str | Path, split: str) -> Path:
    """A known split name and an existing folder, or a one-line error."""
    if split not in SPLITS:
        raise SrferError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise SrferError(f"{root}: data folder not found")
    return root


def discover_faces(
    root: str | Path, split: str = "train", seed: int = 0, val_fraction: float = 0.1
) -> FaceSource:
    """The images of `split` under `root` (CelebA root, split folders, or a plain folder)."""
    root = check_data_root(root, split)
    if (root / "img_align_celeba").is_dir():
        source = _celeba_paths(root, split, seed, val_fraction)
    elif split != "all" and (root / split).is_dir():
        sub = root / split
        paths = sorted(p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        source = FaceSource(paths, f"folder {sub}")
    else:
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        how = "" if split == "all" else f", seeded split (seed {seed})"
        source = FaceSource(
            _seeded_split(paths, split, seed, val_fraction) if paths else [], f"folder {root} [{split}{how}]"
        )
    if not source.paths:
        raise SrferError(f"{root}: no images found for split {split!r}")
    return source


def center_crop_hr(path: Path, hr_size: int, channels: int) -> torch.Tensor:
    """Decode and center-crop to hr_size (resizing up first only if the image is smaller).
    Unreadable files and images below the face minimum are `SrferError`s."""
    img = load_face(path, mode="L" if channels == 1 else "RGB")
    if min(img.size) < hr_size:  # small inputs: scale the short side up to hr_size
        ratio = hr_size / min(img.size)
        img = img.resize(
            (max(hr_size, round(img.width * ratio)), max(hr_size, round(img.height * ratio))), resample=3
        )
    left, top = (img.width - hr_size) // 2, (img.height - hr_size) // 2
    img = img.crop((left, top, left + hr_size, top + hr_size))
    return pil_to_tensor(img).mul(255).round().to(torch.uint8)


class SRPairDataset(Dataset):
    """(LR, HR) pairs in [-1, 1]. Unreadable or too-small images are skipped, never a crash
    mid-epoch.

    With `cache=True` every crop is decoded once (threads) into one uint8 tensor, which
    forked loader workers share copy-on-write; failing files are dropped, listed in
    `skipped` and named in one warning. Without the cache, a failing file yields its
    `Skipped` record and the collate function drops it (`skipped` lists them per batch).

    With an `aligner` (`srfer.faces.align.FaceAligner`, e.g. onto a recogniser's template) the HR
    faces are aligned chips instead of centre crops (always cached: alignment runs MTCNN);
    `alignment` then reports how many fell back to the centre-crop landmarks.
    """

    def __init__(
        self,
        source: FaceSource,
        hr_size: int = 128,
        scale: int = 4,
        channels: int = 3,
        augment: bool = True,
        cache: bool = True,
        aligner=None,
        degradation: Degradation = CLEAN,
    ) -> None:
        if hr_size % scale:
            raise SrferError(f"--hr-size {hr_size} is not divisible by --scale {scale}")
        if aligner is not None and (channels != 3 or aligner.size != hr_size):
            raise SrferError("aligned SR faces are RGB chips of --hr-size px")
        self.source, self.hr_size, self.scale, self.channels = source, hr_size, scale, channels
        self.degradation = degradation
        self.paths = list(source.paths)
        self.augment = augment
        jitter = dict(brightness=0.05, contrast=0.05)
        if channels == 3:
            jitter.update(saturation=0.05, hue=0.05)
        self.jitter = v2.ColorJitter(**jitter)
        self.skipped: list[Skipped] = []
        self.alignment: dict | None = None
        self.aligner = aligner
        self.cached: torch.Tensor | None = self._decode_all() if cache or aligner else None

    def _try_crop(self, path: Path) -> torch.Tensor | Skipped:
        try:
            return center_crop_hr(path, self.hr_size, self.channels)
        except SrferError as exc:
            return Skipped(path, str(exc))

    def _decode_all(self) -> torch.Tensor:
        if self.aligner is not None:
            crops, self.alignment = self.aligner.chips_and_report(self.paths)
        else:
            with ThreadPoolExecutor(max_workers=4) as pool:
                crops = list(pool.map(self._try_crop, self.paths))
        self.skipped = [c for c in crops if isinstance(c, Skipped)]
        if self.skipped:
            warn(skip_summary(self.skipped, f"image(s) of {len(self.paths)}"))
        self.paths = [p for p, c in zip(self.paths, crops, strict=True) if not isinstance(c, Skipped)]
        if not self.paths:
            raise SrferError(f"none of the images in {self.source.description} could be used")
        return torch.stack([c for c in crops if not isinstance(c, Skipped)])

    def __len__(self) -> int:
        return len(self.paths)

    def _augment(self, hr: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) < 0.5:
            hr = hr.flip(-1)
        return self.jitter(hr).clamp(0, 1)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor] | Skipped:
        """`key` is an index, or (index, sample_seed) from the engine's `EpochSampler`."""
        index, sample_seed = split_key(key)
        hr_u8 = self.cached[index] if self.cached is not None else self._try_crop(self.paths[index])
        if isinstance(hr_u8, Skipped):
            return hr_u8
        hr = hr_u8.float().div(255)
        if self.augment:
            with sample_rng(sample_seed):
                hr = self._augment(hr)
        # a realistic draw per sample seed when training, per image when evaluating
        lr = downsample(hr, self.scale, self.degradation, sample_seed if sample_seed is not None else index)
        return {"lr": to_signed(lr), "hr": to_signed(hr), "index": torch.tensor(index)}


def collate_skipping_failures(items: list[dict | Skipped]) -> dict[str, Any]:
    """Stack the usable items; `skipped` lists this batch's `Skipped` records."""
    good = [it for it in items if not isinstance(it, Skipped)]
    batch: dict[str, Any] = {k: torch.stack([it[k] for it in good]) for k in good[0]} if good else {}
    batch["skipped"] = [it for it in items if isinstance(it, Skipped)]
    return batch
