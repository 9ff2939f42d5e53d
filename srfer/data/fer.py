"""FER2013-style expression data: the original CSV, Kaggle image folders, FER+ labels.

Every source becomes one in-memory `FerSamples`: uint8 images (N, 1, 48, 48) and labels in
FER2013 order. FER2013 is small (28,709 + 3,589 images of 2,304 bytes), so decoding
once up front is simpler and faster than decoding per epoch.

FER+ (Barsoum et al., ICMI 2016) relabels the FER2013 images by 10 voters into 8 classes:
its folder release (`FER2013Train/`, `FER2013Valid/`, `FER2013Test/`, each with a headerless
`label.csv` of vote counts) loads as 8 classes, FER2013's 7 in FER2013 order then contempt
(`FERPLUS_CLASSES`), with the majority label and the vote distribution (`votes`) of every
face. Majority protocol: the class with the most votes; faces whose top count is shared, or
won by "unknown" or "NF" (not a face), are dropped.
"""

from __future__ import annotations

import csv
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from srfer.core.console import warn
from srfer.core.errors import SrferError
from srfer.core.imageio import IMAGE_SUFFIXES, Skipped, load_face, skip_summary
from srfer.data import evenly_spaced, sample_rng, split_key

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # FER2013 order
FERPLUS_CLASSES = (*EMOTIONS, "contempt")
FERPLUS_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
# label.csv's vote columns after the image name and box, as FERPlus/generate_training_data.py
# writes them; None: not an expression (dropped when it wins)
FERPLUS_VOTES = (6, 3, 5, 4, 0, 1, 2, 7, None, None)  # neutral happiness surprise sadness anger
# disgust fear contempt unknown NF
FER_SIZE = 48
CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
# folder/class names seen in the wild → FER2013 label
SYNONYMS = {
    "angry": 0, "anger": 0, "disgust": 1, "disgusted": 1, "fear": 2, "fearful": 2, "scared": 2,
    "happy": 3, "happiness": 3, "sad": 4, "sadness": 4, "surprise": 5, "surprised": 5, "neutral": 6,
}  # fmt: skip
# FER+ vote columns (fer2013new.csv) that map to the 7 classes; contempt, unknown, NF do not
FERPLUS_COLUMNS = {"anger": 0, "disgust": 1, "fear": 2, "happiness": 3, "sadness": 4, "surprise": 5,
                   "neutral": 6}  # fmt: skip


@dataclass
class FerSamples:
    images: torch.Tensor  # (N, 1, 48, 48) uint8
    labels: torch.Tensor  # (N,) int64, FER2013 order
    description: str
    skipped: list[Skipped] = field(default_factory=list)  # files left out (unreadable, too small)
    classes: tuple[str, ...] = EMOTIONS
    votes: torch.Tensor | None = None  # (N, classes) float vote distribution (FER+), rows sum to 1

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()

    def subset(self, keep: torch.Tensor, description: str) -> FerSamples:
        votes = self.votes[keep] if self.votes is not None else None
        return FerSamples(
            self.images[keep], self.labels[keep], description, self.skipped, self.classes, votes
        )


def class_names(n: int) -> tuple[str, ...]:
    """The classes of an n-way classifier: FER2013's 7, or FER+'s 8 (contempt last)."""
    for names in (EMOTIONS, FERPLUS_CLASSES):
        if len(names) == n:
            return names
    raise SrferError(f"a {n}-class expression classifier: srfer knows 7 (FER2013) and 8 (FER+) classes")


def _parse_pixels(text: str, where: str) -> np.ndarray:
    try:
        pixels = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise SrferError(f"{where}: pixels are not integers") from None
    if pixels.size != FER_SIZE * FER_SIZE or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
        raise SrferError(f"{where}: expected {FER_SIZE * FER_SIZE} pixel values in 0..255, got {pixels.size}")
    return pixels.astype(np.uint8).reshape(1, FER_SIZE, FER_SIZE)


def _read_csv_rows(path: Path, required: set[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise SrferError(f"{path}: CSV file not found")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = required - set(reader.fieldnames or [])
            if missing:
                raise SrferError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SrferError(f"{path}: not a FER2013 CSV file ({type(exc).__name__})") from None


def load_fer_csv(path: Path, split: str = "train") -> FerSamples:
    """`emotion,pixels,Usage` rows of `split` (train/val/test = Training/PublicTest/PrivateTest)."""
    rows = _read_csv_rows(path, {"emotion", "pixels", "Usage"})
    images, labels = [], []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if split != "all" and row["Usage"] != CSV_USAGE[split]:
            continue
        where = f"{path} line {number}"
        if row["emotion"] not in {str(i) for i in range(len(EMOTIONS))}:
            raise SrferError(f"{where}: emotion {row['emotion']!r} is not 0..6")
        images.append(_parse_pixels(row["pixels"], where))
        labels.append(int(row["emotion"]))
    return _samples(images, labels, f"FER2013 CSV {path} [{split}]")


def load_ferplus(fer_csv: Path, ferplus_csv: Path, split: str = "train") -> FerSamples:
    """FER+ majority-vote labels over the FER2013 CSV's images (rows align one to one).

    Rows whose majority is contempt, unknown or NF (not a face), or a tie between
    classes, are dropped; the description says how many."""
    fer_rows = _read_csv_rows(fer_csv, {"pixels", "Usage"})
    plus_rows = _read_csv_rows(ferplus_csv, {"Usage", *FERPLUS_COLUMNS})
    if len(fer_rows) != len(plus_rows):
        raise SrferError(f"{ferplus_csv}: {len(plus_rows)} rows, but {fer_csv} has {len(fer_rows)}")
    images, labels, dropped = [], [], 0
    for number, (fer, plus) in enumerate(zip(fer_rows, plus_rows, strict=True), start=2):
        if split != "all" and plus["Usage"] != CSV_USAGE[split]:
            continue
        votes = {c: int(float(plus.get(c) or 0)) for c in plus if c not in ("Usage", "Image name")}
        top = max(votes.values(), default=0)
        winners = [c for c, v in votes.items() if v == top and top > 0]
        if len(winners) != 1 or winners[0] not in FERPLUS_COLUMNS:
            dropped += 1
            continue
        images.append(_parse_pixels(fer["pixels"], f"{fer_csv} line {number}"))
        labels.append(FERPLUS_COLUMNS[winners[0]])
    note = f"{dropped} rows without a 7-class majority dropped"
    return _samples(images, labels, f"FER+ {ferplus_csv} [{split}], {note}")


def project_probs(probs: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(N, 7 or 8) expression probabilities as `n_classes` ones: FER+'s contempt (the 8th)
    dropped and the rest renormalised, or appended with probability 0."""
    have = probs.shape[1]
    if have > n_classes:
        kept = probs[:, :n_classes]
        return kept / kept.sum(1, keepdim=True).clamp_min(1e-12)
    if have < n_classes:
        return torch.cat([probs, probs.new_zeros(len(probs), n_classes - have)], 1)
    return probs


def ferplus_votes(row: list[str], where: str) -> tuple[int, list[float]] | None:
    """(majority label, vote distribution over FERPLUS_CLASSES) of one label.csv row, or
    None when the face has no single winning expression (see the module docstring)."""
    try:
        counts = [float(v) for v in row[2:]]
    except ValueError:
        raise SrferError(f"{where}: vote counts are not numbers") from None
    if len(counts) != len(FERPLUS_VOTES):
        raise SrferError(f"{where}: expected {len(FERPLUS_VOTES)} vote columns, got {len(counts)}")
    top = max(counts)
    winners = [i for i, c in enumerate(counts) if c == top]
    if top <= 0 or len(winners) != 1 or FERPLUS_VOTES[winners[0]] is None:
        return None
    votes = [0.0] * len(FERPLUS_CLASSES)
    for column, count in enumerate(counts):
        if FERPLUS_VOTES[column] is not None:
            votes[FERPLUS_VOTES[column]] += count
    total = sum(votes)
    return FERPLUS_VOTES[winners[0]], [v / total for v in votes]


def load_ferplus_folder(folder: Path, subset: int = 0) -> FerSamples:
    """One FER+ split folder: `label.csv` (image, box, 10 vote counts) beside its PNGs."""
    labels_csv = folder / "label.csv"
    with open(labels_csv, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    kept, dropped = [], 0
    for number, row in enumerate(rows, start=1):
        answer = ferplus_votes(row, f"{labels_csv} line {number}")
        if answer is None:
            dropped += 1
        else:
            kept.append((folder / row[0], *answer))
    kept = evenly_spaced(kept, subset)
    images, used, skipped = _decode_files([f for f, _, _ in kept], folder)
    note = f"{dropped} faces without a single winning expression dropped"
    note += f", {len(skipped)} unusable file(s) skipped" if skipped else ""
    samples = _samples(images, [kept[i][1] for i in used], f"FER+ folder {folder}, {note}")
    samples.classes, samples.skipped = FERPLUS_CLASSES, skipped
    samples.votes = torch.tensor([kept[i][2] for i in used], dtype=torch.float32)
    return samples


def emotion_folders(folder: Path) -> dict[Path, int]:
    """Class subfolders → label; any folder that is not one of the 7 emotions is an error."""
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not subdirs:
        raise SrferError(f"{folder}: no class folders (expected <emotion>/*.jpg)")
    unknown = [p.name for p in subdirs if p.name.lower() not in SYNONYMS]
    if unknown:
        names, known = ", ".join(unknown), ", ".join(EMOTIONS)
        raise SrferError(f"{folder}: class folder(s) {names} do not map to the 7 emotions ({known})")
    return {p: SYNONYMS[p.name.lower()] for p in subdirs}


def _decode_gray48(path: Path) -> np.ndarray | Skipped:
    try:
        img = load_face(path, mode="L")
    except SrferError as exc:
        return Skipped(path, str(exc))
    if img.size != (FER_SIZE, FER_SIZE):
        img = img.resize((FER_SIZE, FER_SIZE), resample=3)
    return np.asarray(img, dtype=np.uint8)[None]


def load_fer_folder(folder: Path, subset: int = 0) -> FerSamples:
    """`<emotion>/*.jpg` under `folder` (any size; RGB converted to gray, resized to 48);
    `subset`: only that many, spread evenly over the classes' sorted files."""
    files = [(f, label) for d, label in emotion_folders(folder).items()
             for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
    files = evenly_spaced(files, subset)
    images, used, skipped = _decode_files([f for f, _ in files], folder)
    note = f", {len(skipped)} unusable file(s) skipped" if skipped else ""
    samples = _samples(images, [files[i][1] for i in used], f"folder {folder}{note}")
    samples.skipped = skipped
    return samples


def _decode_files(paths: list[Path], folder: Path) -> tuple[list[np.ndarray], list[int], list[Skipped]]:
    """Decode `paths` as 48 px gray faces (threads): (images, indices of the paths they came
    from, the files skipped — named on stderr)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(pool.map(_decode_gray48, paths))
    skipped = [d for d in decoded if isinstance(d, Skipped)]
    used = [i for i, d in enumerate(decoded) if not isinstance(d, Skipped)]
    if skipped:
        warn(skip_summary(skipped, f"image(s) of {len(paths)} in {folder}"))
    return [decoded[i] for i in used], used, skipped


def _samples(images: list[np.ndarray], labels: list[int], description: str) -> FerSamples:
    if not images:
        raise SrferError(f"no images in {description}")
    labels_t = torch.tensor(labels, dtype=torch.int64)
    return FerSamples(torch.from_numpy(np.stack(images)), labels_t, description)


def load_fer(data: Path, split: str = "train", ferplus: Path | None = None, subset: int = 0) -> FerSamples:
    """`data` is a dataset root with split folders, a single split folder, or a FER2013 CSV;
    `subset` keeps that many faces, spread evenly (0: all)."""
    data = Path(data)
    if not data.exists():
        raise SrferError(f"{data}: data not found")
    if data.is_file():
        samples = load_ferplus(data, ferplus, split) if ferplus is not None else load_fer_csv(data, split)
        return _subset(samples, subset)
    if (data / FERPLUS_FOLDERS[split] / "label.csv").is_file():
        return load_ferplus_folder(data / FERPLUS_FOLDERS[split], subset)
    if (data / "label.csv").is_file():
        return load_ferplus_folder(data, subset)  # a single FER+ split folder
    if (data / split).is_dir():
        return load_fer_folder(data / split, subset)
    if split == "val" and (data / "test").is_dir() and not (data / "val").exists():
        return load_fer_folder(data / "test", subset)  # Kaggle's folder release names its held-out split test
    if any(p.name.lower() in SYNONYMS for p in data.iterdir() if p.is_dir()):
        return load_fer_folder(data, subset)  # a single split folder
    raise SrferError(f"{data}: neither a CSV, a split folder ({split}/) nor <emotion>/ folders")


def _subset(samples: FerSamples, n: int) -> FerSamples:
    if not 0 < n < len(samples):
        return samples
    keep = torch.tensor(evenly_spaced(list(range(len(samples))), n))
    return samples.subset(keep, f"{samples.description}, subset of {n}")


def describe_balance(samples: FerSamples) -> str:
    counts = Counter(dict(zip(samples.classes, samples.class_counts(), strict=True)))
    return ", ".join(f"{k} {v}" for k, v in counts.items())


class FerDataset(torch.utils.data.Dataset):
    """FerSamples → {"image": (1, 48, 48) float in [0, 1], "label", "index"}.

    Augmentation (seed recipe): random crop with 4-px padding, horizontal flip, rotation
    ±10° and scale 0.9–1.1; optionally random erasing of a rectangle (2–20 % of the face)
    with probability `random_erasing`. Keys may be (index, sample_seed) from the engine's
    sampler."""

    def __init__(self, samples: FerSamples, augment: bool = False, random_erasing: float = 0.0) -> None:
        from torchvision.transforms import v2

        self.samples, self.augment = samples, augment
        erase = [v2.RandomErasing(random_erasing, scale=(0.02, 0.2))] if random_erasing > 0 else []
        self.transform = v2.Compose([
            v2.RandomCrop(FER_SIZE, padding=4, padding_mode="reflect"),
            v2.RandomHorizontalFlip(),
            v2.RandomAffine(degrees=10, scale=(0.9, 1.1)),
            *erase,
        ])  # fmt: skip

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, sample_seed = split_key(key)
        image = self.samples.images[index].float().div(255)
        if self.augment:
            with sample_rng(sample_seed):
                image = self.transform(image)
        item = {"image": image, "label": self.samples.labels[index], "index": torch.tensor(index)}
        if self.samples.votes is not None:
            item["votes"] = self.samples.votes[index]
        return item
