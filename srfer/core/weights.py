"""The shipped weights as typed entries, and where weights files are found.

`weights/manifest.json` is the one source of what srfer ships: one entry per file, with the
role it fills by default, its sha256 and size, its checkpoint kind and input contract (τ and
class names included), the command that made it and the metrics measured on it. The
file-derived facts are written from the files themselves (`tools/sync_manifest.py`; a test
keeps them in step). `WeightsEntry` is one such entry; `Weights` names the roles, as
torchvision's `Weights` enums name theirs: `Weights.SR_X8.entry.contract["scale"]`.

Files are found by: CLI option → `SRFER_WEIGHTS` folder → the shipped `weights/` folder (the
repo's in a checkout or editable install; the package `srfer.default_weights` once installed
by a non-editable `pip install .`)."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from srfer.core.errors import SrferError


@dataclass(frozen=True)
class WeightsEntry:
    """One shipped weights file: what it is, what it expects, how it was made, what it measured.

    `role`: the slot it fills when no file is named (`Weights`); None for a file kept for
    reference, loaded only by path. `contract`: what the network takes (SR: channels and
    scale; classifiers: channels, input size and `classes`; embedders: input and crop size,
    the alignment template, τ as `threshold`). `flip_tta`: the role answers with the mean of
    face and mirror. `train`: how to make it again; `command`: what made this very file."""

    file: str
    role: str | None
    sha256: str
    bytes: int
    kind: str
    contract: Mapping[str, Any]
    flip_tta: bool = False
    train: str = ""
    command: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    card: Mapping[str, Any] = field(default_factory=dict)  # the model card's prose: data, losses, …

    @property
    def threshold(self) -> float | None:
        return self.contract.get("threshold")

    @property
    def classes(self) -> tuple[str, ...] | None:
        classes = self.contract.get("classes")
        return tuple(classes) if classes is not None else None

    def find(self) -> Path | None:
        """This file in the first search folder (`search_dirs`) that holds it, or None."""
        return next((folder / self.file for folder in search_dirs() if (folder / self.file).is_file()), None)

    @classmethod
    def from_json(cls, file: str, raw: Mapping[str, Any]) -> WeightsEntry:
        known = {"role", "sha256", "bytes", "kind", "contract", "flip_tta", "train", "command", "metrics"}
        return cls(
            file=file, role=raw.get("role"), sha256=raw["sha256"], bytes=raw["bytes"], kind=raw["kind"],
            contract=raw.get("contract", {}), flip_tta=raw.get("flip_tta", False), train=raw.get("train", ""),
            command=raw.get("command", ""), metrics=raw.get("metrics", {}),
            card={k: v for k, v in raw.items() if k not in known},
        )  # fmt: skip


class Weights(Enum):
    """The roles a shipped file fills when no file is named (`weights/manifest.json`'s `role`)."""

    SR = "sr"  # the ×4 CelebA SR (pixel MSE): predict's and upscale's default
    SR_GAN = "sr-gan"  # the ×4 SRGAN (sharper, less faithful): upscale --model gan
    SR_ROBUST = "sr-robust"  # the ×4 trained on blurred, noisy, JPEG faces too: upscale --model robust
    SR_X8 = "sr-x8"  # the ×8 CelebA SR for the smallest faces
    SR_IDENTITY = "sr-identity"  # the ×4 trained through the face recogniser, for its aligned chips
    SR_FER = "sr-fer"  # the gray FER-domain ×4 of the tiny-face expression path
    FER = "fer"  # the default expression classifier
    FER_FT_FERPLUS = "fer-ft-ferplus"
    FER_DLIB = "fer-dlib"
    FER_MCNN = "fer-mcnn"
    FERPLUS = "ferplus"  # 8 classes (contempt)
    FER_UPSCALE = "fer-upscale"  # the classifier of the tiny-face expression path
    EMBED = "embed"  # the face recogniser: dlib's ResNet-29 fine-tuned on small, degraded faces
    EMBED_DLIB = "embed-dlib"  # dlib's ResNet-29 as released: the trunk the FER classifiers start from
    VERIFY_HEAD = "verify-head"  # the learned verification head on the embedder's pairs and face sizes
    FEATURE_SR = "feature-sr"  # feature-level SR inside the embedder's trunk (predict's small sharp faces)

    @property
    def entry(self) -> WeightsEntry:
        entry = catalog().get(self.value)
        if entry is None:
            raise SrferError(f"{MANIFEST}: no file has the role {self.value!r}")
        return entry

    def resolve(self, explicit: Path | None = None) -> Path:
        """`explicit` (which must exist), else this role's shipped file; a clear error names
        the command that makes it."""
        if explicit is not None:
            return weights_file(explicit)
        entry = self.entry
        found = entry.find()
        if found is None:
            where = " or ".join(str(d) for d in search_dirs())
            train = f"train them with: {entry.train}"
            raise SrferError(f"default {self.value} weights {entry.file} not found in {where}; {train}")
        return found

    def optional(self, explicit: Path | None = None) -> Path | None:
        """For an optional extra (a sweep column, a second SR): `explicit` (which must exist),
        else the shipped file when it is found, else None."""
        if explicit is not None:
            return self.resolve(explicit)
        return self.entry.find()

    def missing_note(self) -> str:
        """Why an optional extra is left out."""
        return f"no {self.value} weights found (srfer weights says how to train them)"


def weights_file(path: Path) -> Path:
    """A weights file named by the user, which must exist."""
    if not Path(path).is_file():
        raise SrferError(f"{path}: weights file not found")
    return Path(path)


# the shipped SR models by the name `upscale --model` and `compare-sr --models` take
SR_MODELS: dict[str, Weights] = {
    "psnr": Weights.SR,
    "identity": Weights.SR_IDENTITY,
    "gan": Weights.SR_GAN,
    "robust": Weights.SR_ROBUST,
    "x8": Weights.SR_X8,
}


def sr_model_weights(name: str) -> Path:
    """A shipped SR model's file by its `SR_MODELS` name."""
    if name not in SR_MODELS:
        raise SrferError(f"--model {name!r}: use one of {', '.join(SR_MODELS)}")
    return SR_MODELS[name].resolve()


def sr_models_from(spec: str) -> dict[str, Path]:
    """`compare-sr --models psnr,gan,runs/x/best.safetensors` → {name: file}: shipped names
    (`SR_MODELS`) or checkpoint paths, named by their stem, or `folder/stem` where stems
    clash (runs/a/best, runs/b/best)."""
    items = [x.strip() for x in spec.split(",") if x.strip()]
    paths = [sr_model_weights(x) if x in SR_MODELS else Path(x) for x in items]
    if not items:
        names = ", ".join(SR_MODELS)
        raise SrferError(f"--models {spec!r}: give shipped names ({names}) or checkpoint paths")
    stems = [x if x in SR_MODELS else p.stem for x, p in zip(items, paths, strict=True)]
    models: dict[str, Path] = {}
    for item, path, stem in zip(items, paths, stems, strict=True):
        name = stem if stems.count(stem) == 1 or item in SR_MODELS else f"{path.parent.name}/{stem}"
        if name in models:
            raise SrferError(f"--models names {name!r} twice")
        models[name] = path
    return models


def _shipped_weights_dir() -> Path:
    """pyproject.toml maps the repo's weights/ to the package `srfer.default_weights`."""
    try:
        spec = importlib.util.find_spec("srfer.default_weights")
    except ImportError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[2] / "weights"  # a source tree on PYTHONPATH


PACKAGE_WEIGHTS = _shipped_weights_dir()  # searched last for files
MANIFEST = PACKAGE_WEIGHTS / "manifest.json"  # what srfer ships, wherever the files are found


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("SRFER_WEIGHTS"):
        dirs.append(Path(os.environ["SRFER_WEIGHTS"]))
    dirs.append(PACKAGE_WEIGHTS)
    return dirs


@functools.cache
def shipped_entries() -> tuple[WeightsEntry, ...]:
    """Every shipped file's entry, in the manifest's order."""
    try:
        raw = json.loads(MANIFEST.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SrferError(f"{MANIFEST}: the weights manifest cannot be read ({exc})") from None
    return tuple(WeightsEntry.from_json(file, entry) for file, entry in raw.items())


def catalog() -> dict[str, WeightsEntry]:
    """role → its entry."""
    return {e.role: e for e in shipped_entries() if e.role is not None}


def entry_for(path: Path) -> WeightsEntry | None:
    """The entry of a shipped file found at `path` (in a search folder), else None."""
    path = Path(path).resolve()
    for entry in shipped_entries():
        if any((folder / entry.file).resolve() == path for folder in search_dirs()):
            return entry
    return None


def entry_with_sha256(digest: str) -> WeightsEntry | None:
    """The shipped file whose contents have this sha256 (a gallery's model identity), else None."""
    return next((e for e in shipped_entries() if e.sha256 == digest), None)


def read_state_dict(path: Path, what: str) -> dict:
    """A state dict from .safetensors or a torch file, never unpickling code."""
    if not path.is_file():
        raise SrferError(f"{path}: {what} weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the same user error
        raise SrferError(f"{path}: cannot read {what} weights: {_unreadable_because(path, exc)}") from None


def _unreadable_because(path: Path, exc: Exception) -> str:
    """Why a weights file could not be read, in a sentence (torch's own messages run for lines)."""
    if isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in str(exc):  # torch's weights-only refusal
        return "it holds pickled Python objects, not only tensors, and srfer never unpickles them"
    if path.suffix == ".safetensors":
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"not a valid safetensors file ({first[:120]})"
    return "neither a safetensors file nor a torch file of plain tensors"


def imagenet_state_dict(weights_enum, path: Path | None, what: str, offline_hint: str) -> dict:
    """torchvision's ImageNet weights (`weights_enum`, e.g. VGG19_Weights.IMAGENET1K_V1):
    `path` when given, else the torch hub cache, else torchvision's download for online users.
    Offline without either, one line that says what to pass instead (`offline_hint`)."""
    if path is not None:
        return read_state_dict(Path(path), what)
    import torch

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_enum.url).name
    if cached.is_file():
        return read_state_dict(cached, what)
    try:
        return weights_enum.get_state_dict(progress=True)
    except Exception as exc:  # noqa: BLE001 - offline: URLError, socket errors, …
        raise SrferError(
            f"{what} ImageNet weights are not available (no network and no {cached.name} in "
            f"{cached.parent}: {type(exc).__name__}); pass {offline_hint}"
        ) from None


def sha256(path: Path) -> str:
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """A file's digest, computed once per process for one version of the file (size, mtime)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


ALLOW_MODIFIED = "SRFER_ALLOW_MODIFIED_WEIGHTS"  # "1": load shipped files that fail their sha256 check


def check_shipped(path: Path, entry: WeightsEntry) -> None:
    """A shipped file must be the one its entry describes: a damaged or replaced file (a flipped
    bit keeps its size) would answer wrongly without a word. Refused unless ALLOW_MODIFIED is
    set (`srfer --allow-modified-weights …`)."""
    if os.environ.get(ALLOW_MODIFIED) == "1":
        return
    digest = sha256(path)
    if digest != entry.sha256:
        raise SrferError(
            f"{path}: its sha256 ({digest[:12]}…) is not that of the shipped {entry.file} "
            f"({entry.sha256[:12]}…): the file is damaged or was replaced. Reinstall srfer or restore "
            f"the file; to use it anyway, run srfer --allow-modified-weights … (or set {ALLOW_MODIFIED}=1)"
        )


def weights_report() -> list[dict[str, Any]]:
    """Per role: file, where it was found, its sha256 checked against the entry, recorded metrics."""
    rows = []
    for role, entry in catalog().items():
        row: dict[str, Any] = {"role": role, "file": entry.file, "path": None, "status": "missing",
                               "train": entry.train}  # fmt: skip
        path = entry.find()
        if path is not None:
            check = "ok" if sha256(path) == entry.sha256 else "MISMATCH"
            row.update(path=str(path), status=f"sha256 {check}", metrics=dict(entry.metrics))
        rows.append(row)
    return rows


def mismatched(report: list[dict[str, Any]]) -> list[str]:
    """The files of a `weights_report` that fail their sha256 check."""
    return [row["path"] for row in report if row["status"] == "sha256 MISMATCH"]


def weights_status() -> dict[str, str]:
    """role → '<path> sha256 ok' / '<path> sha256 MISMATCH' / 'missing (<file>)'."""
    return {
        r["role"]: f"{r['path']} {r['status']}" if r["path"] else f"missing ({r['file']})"
        for r in weights_report()
    }
