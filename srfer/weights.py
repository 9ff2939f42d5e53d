"""Where default weights come from: CLI option → `SRFER_WEIGHTS` folder → the repo's
`weights/` folder. `weights/manifest.json` records each file's sha256 and metrics."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from srfer.errors import SrferError

# role → (file name, the command that trains it)
DEFAULTS: dict[str, tuple[str, str]] = {
    "sr": (
        "sr_celeba_x4.safetensors",
        "srfer train-sr --data CELEBA_ROOT --out runs/sr (then srfer export runs/sr/best.safetensors)",
    ),
    "sr-fer": (
        "sr_fer2013_gray_x4.safetensors",
        "srfer train-sr --data FER2013_ROOT --channels 1 --hr-size 48 --out runs/sr_fer (then srfer export)",
    ),
    "fer": ("fer_mcnn.safetensors", "srfer train-fer --data FER2013_ROOT --out runs/fer (then srfer export)"),
    "fer-upscale": (
        "fer_mcnn_upscale_sr12.safetensors",
        "srfer train-fer --data FER2013_ROOT --upscale --out runs/fer_up (then srfer export)",
    ),
    "embed": (
        "embed_celeba.safetensors",
        "srfer train-embed --data CELEBA_ROOT --out runs/embed (then srfer export)",
    ),
}
PACKAGE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("SRFER_WEIGHTS"):
        dirs.append(Path(os.environ["SRFER_WEIGHTS"]))
    dirs.append(PACKAGE_WEIGHTS)
    return dirs


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


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest() -> dict:
    path = PACKAGE_WEIGHTS / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def weights_status() -> dict[str, str]:
    """role → 'present (sha256 ok)' / 'present (sha256 MISMATCH)' / 'missing'."""
    entries = manifest()
    status = {}
    for role, (name, _) in DEFAULTS.items():
        try:
            path = resolve_weights(role)
        except SrferError:
            status[role] = f"missing ({name})"
            continue
        expected = entries.get(name, {}).get("sha256")
        check = "" if not expected else " sha256 ok" if sha256(path) == expected else " sha256 MISMATCH"
        status[role] = f"{path}{check}"
    return status
