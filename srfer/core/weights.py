"""Where default weights come from: CLI option → `SRFER_WEIGHTS` folder → the shipped
`weights/` folder (the repo's in a checkout or editable install; installed as the package
`srfer.default_weights` by a non-editable `pip install .`). `manifest.json` there records
each file's sha256, training command and measured metrics."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from srfer.core.errors import SrferError

# role → (file name, the command that trains it)
DEFAULTS: dict[str, tuple[str, str]] = {
    "sr": (
        "sr_celeba_x4.safetensors",
        "srfer train-sr --data CELEBA_ROOT --out runs/sr (then srfer export runs/sr/best.safetensors)",
    ),
    "sr-gan": (
        "sr_celeba_x4_gan.safetensors",
        "srfer train-sr --data CELEBA_ROOT --init SR_WEIGHTS --perceptual ckpt:EMBED_WEIGHTS "
        "--content-layer 3 --content-weight 0.125 --pixel-weight 1 --adversarial-weight 1e-3 "
        "--pretrain-epochs 0 --epochs 12 --epoch-size 1024 --no-amp --out runs/sr_gan "
        "(then srfer export runs/sr_gan/best.safetensors)",
    ),
    "sr-x8": (
        "sr_celeba_x8.safetensors",
        "srfer train-sr --data CELEBA_ROOT --scale 8 --bicubic-skip --perceptual none --adversarial-weight 0 "
        "--out runs/sr_x8 (then srfer export runs/sr_x8/best.safetensors)",
    ),
    "sr-fer": (
        "sr_fer2013_gray_x4.safetensors",
        "srfer train-sr --data FER2013_ROOT --channels 1 --hr-size 48 --out runs/sr_fer (then srfer export)",
    ),
    "fer": (
        "fer_dlib_resnet29_ft_ferplus_r2.safetensors",
        "srfer train-fer --data FER2013_ROOT --arch dlib-resnet29 --pretrained --backbone-weights "
        "weights/ferplus_dlib_resnet29.safetensors --trunk-lr 0.1 --label-smoothing 0.1 "
        "--random-erasing 0.25 --epochs 14 --out runs/fer_dlib_ft, then srfer train-fer --data FER2013_ROOT "
        "--arch dlib-resnet29 --init runs/fer_dlib_ft/best.safetensors --trunk-lr 0.3 --label-smoothing 0.1 "
        "--epochs 20 --save-every 1 --out runs/fer_dlib_r2 "
        "(then srfer average runs/fer_dlib_r2/epoch-00{17..20}.safetensors --out FILE)",
    ),
    "fer-ft-ferplus": (
        "fer_dlib_resnet29_ft_ferplus.safetensors",
        "srfer train-fer --data FER2013_ROOT --arch dlib-resnet29 --pretrained --backbone-weights "
        "weights/ferplus_dlib_resnet29.safetensors --trunk-lr 0.1 --label-smoothing 0.1 "
        "--random-erasing 0.25 --epochs 14 --out runs/fer_dlib_ft "
        "(then srfer export runs/fer_dlib_ft/best.safetensors FILE)",
    ),
    "fer-dlib": (
        "fer_dlib_resnet29.safetensors",
        "srfer train-fer --data FER2013_ROOT --arch dlib-resnet29 --pretrained --trunk-lr 0.1 "
        "--label-smoothing 0.1 --random-erasing 0.25 --epochs 28 --save-every 1 --out runs/fer_dlib "
        "(then srfer average runs/fer_dlib/epoch-00{24..28}.safetensors --out FILE)",
    ),
    "fer-mcnn": (
        "fer_mcnn.safetensors",
        "srfer train-fer --data FER2013_ROOT --out runs/fer (then srfer export)",
    ),
    "ferplus": (
        "ferplus_dlib_resnet29.safetensors",
        "srfer train-fer --data FERPLUS_ROOT --arch dlib-resnet29 --backbone-weights "
        "weights/fer_dlib_resnet29.safetensors --targets votes --trunk-lr 0.1 --label-smoothing 0.1 "
        "--random-erasing 0.25 --epochs 14 --out runs/ferplus, then the same with --init "
        "runs/ferplus/best.safetensors --lr 3e-4 --trunk-lr 0.2 --epochs 6 (then srfer export)",
    ),
    "fer-upscale": (
        "fer_dlib_upscale_sr12_16.safetensors",
        "srfer train-fer --data FER2013_ROOT --arch dlib-resnet29 --init FER_DLIB_RUN/best.safetensors "
        "--upscale --lr-size 12,16 --lr 5e-4 --trunk-lr 0.2 --label-smoothing 0.1 --random-erasing 0.25 "
        "--epochs 5 --out runs/fer_up, then the same with --init runs/fer_up/best.safetensors --lr 3e-4 "
        "--epochs 8 --out runs/fer_up2, then --init runs/fer_up2/best.safetensors --lr-size 12 --lr 2e-4 "
        "--epochs 5 (then srfer export)",
    ),
    "embed": (
        "embed_dlib_resnet29.safetensors",
        "srfer convert-face-api FACE_API_TARBALL weights/embed_dlib_resnet29.safetensors --threshold TAU "
        "(dlib's ResNet-29 from `npm pack @vladmandic/face-api@1.7.15`; weights/README.md)",
    ),
    "embed-lowres": (
        "embed_dlib_resnet29_lowres.safetensors",
        "srfer train-embed --data CELEBA_ROOT --backbone dlib-resnet29 --init EMBED_WEIGHTS --upscale "
        "--upscaler bicubic --lr-size 16,24,32,128 --distill-weight 1 --lr 2e-5 --epochs 6 --epoch-size 4096 "
        "--no-amp --out runs/embed_lowres (then srfer export --no-half --threshold TAU)",
    ),
    "sr-identity": (
        "sr_celeba_x4_identity.safetensors",
        "srfer train-sr --data CELEBA_ROOT --init SR_WEIGHTS --perceptual ckpt:EMBED_WEIGHTS "
        "--align-to EMBED_WEIGHTS --pretrain-epochs 0 --epochs 12 --epoch-size 1024 --lr-sizes 32,16 "
        "--identity-weight 1 --pixel-weight 1 --content-weight 0 --adversarial-weight 0 --lr 5e-5 --no-amp "
        "--out runs/sr_id (then srfer export)",
    ),
}


# the shipped SR models by the name `upscale --model` and `compare-sr --models` take → role
SR_MODELS = {"psnr": "sr", "identity": "sr-identity", "gan": "sr-gan", "x8": "sr-x8"}


def sr_model_weights(name: str) -> Path:
    """A shipped SR model's file by its `SR_MODELS` name."""
    if name not in SR_MODELS:
        raise SrferError(f"--model {name!r}: use one of {', '.join(SR_MODELS)}")
    return resolve_weights(SR_MODELS[name])


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


PACKAGE_WEIGHTS = _shipped_weights_dir()


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("SRFER_WEIGHTS"):
        dirs.append(Path(os.environ["SRFER_WEIGHTS"]))
    dirs.append(PACKAGE_WEIGHTS)
    return dirs


# roles whose shipped file answers with flip test-time augmentation (mean of face and mirror)
# when no file is named: on FER2013 val it added 0.25–0.5 points to three of the four
# dlib-trunk classifiers measured and 0.5 to the default (weights/README.md)
FLIP_TTA_ROLES: frozenset[str] = frozenset({"fer"})


def resolve_weights(role: str, explicit: Path | None = None) -> Path:
    """The checkpoint to use for `role`; a clear error names the command that trains it."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise SrferError(f"{explicit}: weights file not found")
        return Path(explicit)
    name, how = DEFAULTS[role]
    for folder in search_dirs():
        if (folder / name).is_file():
            return folder / name
    where = " or ".join(str(d) for d in search_dirs())
    raise SrferError(f"default {role} weights {name} not found in {where}; train them with: {how}")


def optional_weights(role: str, explicit: Path | None = None) -> Path | None:
    """Weights for an optional extra (a sweep column, a second SR): `explicit` (which must
    exist), else the default for `role` when one is found, else None."""
    if explicit is not None:
        return resolve_weights(role, explicit)
    try:
        return resolve_weights(role)
    except SrferError:
        return None


def missing_note(role: str) -> str:
    """Why an optional extra is left out (`srfer weights` names the command that trains it)."""
    return f"no {role} weights found (srfer weights says how to train them)"


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
        raise SrferError(f"{path}: cannot read {what} weights ({str(exc)[:160]})") from None


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
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest() -> dict:
    path = PACKAGE_WEIGHTS / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def weights_report() -> list[dict[str, Any]]:
    """Per role: file, where it was found, sha256 check against the manifest, recorded metrics."""
    entries = manifest()
    rows = []
    for role, (name, how) in DEFAULTS.items():
        entry = entries.get(name, {})
        row: dict[str, Any] = {"role": role, "file": name, "path": None, "status": "missing", "train": how}
        try:
            path = resolve_weights(role)
        except SrferError:
            rows.append(row)
            continue
        expected = entry.get("sha256")
        check = "no manifest entry" if not expected else "ok" if sha256(path) == expected else "MISMATCH"
        row.update(path=str(path), status=f"sha256 {check}", metrics=entry.get("metrics", {}))
        rows.append(row)
    return rows


def weights_status() -> dict[str, str]:
    """role → '<path> sha256 ok' / '<path> sha256 MISMATCH' / 'missing (<file>)'."""
    return {
        r["role"]: f"{r['path']} {r['status']}" if r["path"] else f"missing ({r['file']})"
        for r in weights_report()
    }
