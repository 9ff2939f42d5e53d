"""Identity-labelled faces: identity folders (LFW layout) or CelebA with
`identity_CelebA.txt`; verification pairs from LFW's `pairs.txt` or generated (seeded).

Identities never cross splits: CelebA's partition file is identity-disjoint, and plain
folders are split by identity (seeded), never by image.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from srfer.core.console import warn
from srfer.core.errors import SrferError
from srfer.core.imageio import IMAGE_SUFFIXES, Skipped, skip_summary
from srfer.data import evenly_spaced, sample_rng, split_key
from srfer.data.faces import CELEBA_PARTITION, center_crop_hr, check_data_root


@dataclass
class IdentitySource:
    paths: list[Path]
    labels: list[int]  # dense 0..n_identities-1
    names: list[str]  # identity name per label
    description: str
    notes: list[str] = field(default_factory=list)

    @property
    def singletons(self) -> int:
        counts = torch.bincount(torch.tensor(self.labels), minlength=len(self.names))
        return int((counts == 1).sum())


def _dense(pairs: list[tuple[Path, str]], description: str) -> IdentitySource:
    if not pairs:
        raise SrferError(f"no identity-labelled images in {description}")
    names = sorted({name for _, name in pairs})
    index = {name: i for i, name in enumerate(names)}
    source = IdentitySource([p for p, _ in pairs], [index[n] for _, n in pairs], names, description)
    if source.singletons:
        source.notes.append(f"{source.singletons} identities have one image: usable as negatives only")
    return source


def _celeba(root: Path, split: str) -> IdentitySource:
    id_file, partition = root / "identity_CelebA.txt", root / "list_eval_partition.txt"
    if not id_file.is_file():
        raise SrferError(f"{root}: CelebA identities need identity_CelebA.txt")
    identity = dict(line.split()[:2] for line in id_file.read_text().splitlines() if len(line.split()) >= 2)
    if split != "all":
        if not partition.is_file():
            raise SrferError(f"{root}: --split {split} needs list_eval_partition.txt (or use --split all)")
        wanted = CELEBA_PARTITION[split]
        names = [p[0] for p in (ln.split() for ln in partition.read_text().splitlines()) if p[1:] == [wanted]]
    else:
        names = sorted(identity)
    image_dir = root / "img_align_celeba"
    pairs = [(image_dir / n, identity[n]) for n in names if n in identity and (image_dir / n).is_file()]
    return _dense(pairs, f"CelebA {root} [{split}]")


def _folders(root: Path, split: str, seed: int, val_fraction: float) -> IdentitySource:
    people = sorted(p for p in root.iterdir() if p.is_dir())
    if not people:
        raise SrferError(f"{root}: no identity folders (expected <identity>/<image>.jpg)")
    empty = [p.name for p in people if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())]
    if empty:
        raise SrferError(f"{root}: identity folder(s) without images: {', '.join(empty[:5])}")
    if split in ("train", "val"):
        order = list(range(len(people)))
        random.Random(seed).shuffle(order)
        n_val = max(2, round(len(people) * val_fraction))  # impostor pairs need 2 identities
        if len(people) - n_val < 2:
            raise SrferError(f"{root}: {len(people)} identities are too few for a train/val split")
        chosen = set(order[:n_val] if split == "val" else order[n_val:])
        people = [p for i, p in enumerate(people) if i in chosen]
    elif split == "test":
        raise SrferError(f"{root}: identity folders have no test split; use --split all, train or val")
    pairs = [(f, p.name) for p in people for f in sorted(p.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    how = "" if split == "all" else f", identity-disjoint seeded split (seed {seed})"
    return _dense(pairs, f"identity folders {root} [{split}{how}]")


def discover_identities(
    root: str | Path, split: str = "all", seed: int = 0, val_fraction: float = 0.1, subset: int = 0
) -> IdentitySource:
    """The identity-labelled images of `split`; `subset` keeps about that many images, whole
    identities spread over all of them (so genuine pairs remain)."""
    root = check_data_root(root, split)
    source = (
        _celeba(root, split)
        if (root / "img_align_celeba").is_dir()
        else _folders(root, split, seed, val_fraction)
    )
    return _keep_identities(source, subset) if subset else source


def _keep_identities(source: IdentitySource, n_images: int) -> IdentitySource:
    per_identity = max(1, len(source.paths) // max(1, len(source.names)))
    keep = set(evenly_spaced(list(range(len(source.names))), max(2, n_images // per_identity)))
    pairs = [
        (p, source.names[label])
        for p, label in zip(source.paths, source.labels, strict=True)
        if label in keep
    ]
    return _dense(pairs, f"{source.description}, subset of {len(keep)} identities")


def generate_pairs(labels: list[int], n_pairs: int, seed: int = 0) -> list[tuple[int, int, bool]]:
    """Up to n_pairs index pairs, half genuine and half impostor (fewer when the data holds
    fewer), seeded and shuffled so that contiguous folds stay balanced."""
    rng = random.Random(seed)
    by_id: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_id.setdefault(label, []).append(i)
    n_genuine_max = sum(len(m) * (len(m) - 1) // 2 for m in by_id.values())
    n_impostor_max = len(labels) * (len(labels) - 1) // 2 - n_genuine_max
    half = min(n_pairs // 2, n_genuine_max, n_impostor_max)
    if half == 0:
        raise SrferError("verification pairs need an identity with 2+ images and at least 2 identities")
    multi = [m for m in by_id.values() if len(m) >= 2]
    weights = [len(m) * (len(m) - 1) for m in multi]  # uniform over genuine pairs
    genuine: set[tuple[int, int, bool]] = set()
    while len(genuine) < half:  # half ≤ what exists, and draws cover every pair
        a, b = sorted(rng.sample(rng.choices(multi, weights)[0], 2))
        genuine.add((a, b, True))
    impostor: set[tuple[int, int, bool]] = set()
    while len(impostor) < half:
        a, b = sorted(rng.sample(range(len(labels)), 2))
        if labels[a] != labels[b]:
            impostor.add((a, b, False))
    pairs = sorted(genuine) + sorted(impostor)
    rng.shuffle(pairs)
    return pairs


def read_lfw_pairs(pairs_file: Path, source: IdentitySource) -> list[tuple[int, int, bool]]:
    """LFW `pairs.txt`: 'name i j' (genuine) or 'name1 i name2 j' (impostor), 1-based."""
    if not pairs_file.is_file():
        raise SrferError(f"{pairs_file}: pairs file not found")
    index = {(p.parent.name, p.stem): i for i, p in enumerate(source.paths)}
    pairs = []
    lines = pairs_file.read_text().splitlines()
    for number, line in enumerate(lines[1:], start=2):  # line 1: "<folds> <pairs per fold>"
        parts = line.split()
        if len(parts) == 3:
            (n1, i1), (n2, i2) = (parts[0], parts[1]), (parts[0], parts[2])
        elif len(parts) == 4:
            n1, i1, n2, i2 = parts
        else:
            raise SrferError(f"{pairs_file} line {number}: expected 3 or 4 fields")
        try:
            a, b = index[(n1, f"{n1}_{int(i1):04d}")], index[(n2, f"{n2}_{int(i2):04d}")]
        except (KeyError, ValueError):
            raise SrferError(f"{pairs_file} line {number}: image not found under the data folder") from None
        pairs.append((a, b, len(parts) == 3))
    return pairs


class FaceIdentityDataset(Dataset):
    """Faces in [0, 1] with identity labels, decoded once: centre crops (threads), or, with
    an `aligner` (`srfer.faces.align.FaceAligner`), chips aligned by their landmarks (`alignment`
    then counts how many fell back to the centre-crop landmarks).

    Unusable files (unreadable, too small) are dropped at load, listed in `skipped` and named
    in one warning (labels stay aligned)."""

    def __init__(self, source: IdentitySource, size: int = 128, augment: bool = False, aligner=None) -> None:
        from torchvision.transforms import v2

        self.size, self.augment = size, augment
        self.alignment: dict | None = None
        if aligner is not None:
            crops, self.alignment = aligner.chips_and_report(source.paths)
        else:
            with ThreadPoolExecutor(max_workers=4) as pool:
                crops = list(pool.map(self._try_crop, source.paths))
        keep = [i for i, c in enumerate(crops) if not isinstance(c, Skipped)]
        self.skipped: list[Skipped] = [c for c in crops if isinstance(c, Skipped)]
        if self.skipped:
            warn(skip_summary(self.skipped, f"image(s) of {len(crops)}"))
        if not keep:
            raise SrferError(f"none of the images in {source.description} could be used")
        self.images = torch.stack([crops[i] for i in keep])
        self.labels = torch.tensor([source.labels[i] for i in keep])
        self.paths = [source.paths[i] for i in keep]
        self.transform = v2.Compose([
            v2.RandomHorizontalFlip(),
            v2.RandomResizedCrop(size, scale=(0.85, 1.0), ratio=(0.95, 1.05), antialias=True),
            v2.ColorJitter(0.1, 0.1, 0.1, 0.02),
        ])  # fmt: skip

    def _try_crop(self, path: Path) -> torch.Tensor | Skipped:
        try:
            return center_crop_hr(path, self.size, 3)
        except SrferError as exc:
            return Skipped(path, str(exc))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, sample_seed = split_key(key)
        image = self.images[index].float().div(255)
        if self.augment:
            with sample_rng(sample_seed):
                image = self.transform(image).clamp(0, 1)
        return {"image": image, "label": self.labels[index], "index": torch.tensor(index)}
