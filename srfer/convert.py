"""`srfer convert-face-api`: dlib's ResNet-29 face recogniser from the @vladmandic/face-api npm
tarball → a srfer embedder checkpoint (what ships as `weights/embed_dlib_resnet29.safetensors`).

The tarball is read as is (no extraction): `package/model/face_recognition_model-weights_manifest.json`
lists each tensor's name, shape and storage (float32, or uint8 with affine dequantisation
value = q·scale + min, as TensorFlow.js decodes it), and the `.bin` shards hold them
concatenated in manifest order. TensorFlow's layouts are turned into torch's (conv HWIO →
OIHW, dense (in, out) → (out, in)); every tensor of the model must be used exactly once.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srfer.align import DLIB_TEMPLATE
from srfer.checkpoint import save_checkpoint
from srfer.errors import SrferError
from srfer.models import Embedder, EmbedderConfig
from srfer.models.dlib_resnet import INPUT_SIZE, MEAN_RGB
from srfer.weights import sha256

FACE_API_VERSION = "1.7.15"
FACE_API_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
MODEL = "face_recognition_model"
LICENCE = (
    "weights: public domain (dlib_face_recognition_resnet_model_v1, released by Davis E. King); "
    "TensorFlow.js port and graph: @vladmandic/face-api, MIT licence"
)
_BYTES = {"uint8": 1, "uint16": 2, "float16": 2, "float32": 4}

# face-api layer prefix → srfer module path (srfer.models.dlib_resnet.DlibResNet29)
LAYERS = {
    "conv32_down": "stem",
    **{f"conv32_{i}": f"stages.0.{i - 1}" for i in (1, 2, 3)},
    "conv64_down": "stages.1.0", **{f"conv64_{i}": f"stages.1.{i}" for i in (1, 2, 3)},
    "conv128_down": "stages.2.0", **{f"conv128_{i}": f"stages.2.{i}" for i in (1, 2)},
    "conv256_down": "stages.3.0", **{f"conv256_{i}": f"stages.3.{i}" for i in (1, 2)},
    "conv256_down_out": "down_out",
}  # fmt: skip
_LEAVES = {"conv/filters": "conv.weight", "conv/bias": "conv.bias",
           "scale/weights": "scale.weight", "scale/biases": "scale.bias"}  # fmt: skip


def torch_name(tf_name: str) -> str:
    """'conv64_down/conv1/conv/filters' → 'stages.1.0.conv1.conv.weight'; 'fc' → 'fc.weight'."""
    if tf_name == "fc":
        return "fc.weight"
    layer, _, rest = tf_name.partition("/")
    if layer not in LAYERS:
        raise SrferError(f"face-api manifest: unexpected tensor {tf_name!r}")
    block, leaf = rest.split("/", 1) if rest.startswith("conv1/") or rest.startswith("conv2/") else ("", rest)
    if leaf not in _LEAVES:
        raise SrferError(f"face-api manifest: unexpected tensor {tf_name!r}")
    return ".".join(p for p in (LAYERS[layer], block, _LEAVES[leaf]) if p)


def to_torch_layout(name: str, value: np.ndarray) -> torch.Tensor:
    if value.ndim == 4:  # conv filters: (kh, kw, in, out) → (out, in, kh, kw)
        value = value.transpose(3, 2, 0, 1)
    elif value.ndim == 2:  # dense: (in, out) → (out, in)
        value = value.T
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def decode_weights(manifest: list[dict[str, Any]], read_shard) -> dict[str, np.ndarray]:
    """Name → float32 array, from a tfjs weights manifest and its shards (`read_shard(name)`)."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join(read_shard(p) for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape, quant = spec["shape"], spec.get("quantization")
            stored = quant["dtype"] if quant else spec["dtype"]
            if stored not in _BYTES:
                raise SrferError(f"face-api manifest: {spec['name']} has unsupported dtype {stored!r}")
            count = int(np.prod(shape)) if shape else 1
            size = count * _BYTES[stored]
            if offset + size > len(blob):
                raise SrferError(f"face-api weights: the shards end inside {spec['name']}")
            raw = np.frombuffer(blob, dtype=np.dtype(stored).newbyteorder("<"), count=count, offset=offset)
            offset += size
            if quant and "scale" in quant:  # affine uint8/uint16: value = q·scale + min (float32, as tfjs)
                value = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
            else:
                value = raw.astype(np.float32)
            out[spec["name"]] = value.reshape(shape)
        if offset != len(blob):
            raise SrferError(
                f"face-api weights: {len(blob) - offset} bytes left after the manifest's tensors"
            )
    return out


def read_tarball(tarball: Path, check_sha: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """The recogniser's tensors from an `npm pack` tarball, and the tarball's sha256."""
    if not tarball.is_file():
        raise SrferError(f"{tarball}: face-api tarball not found")
    digest = sha256(tarball)
    if check_sha and digest != FACE_API_SHA256:
        raise SrferError(
            f"{tarball}: sha256 {digest[:12]}… is not @vladmandic/face-api {FACE_API_VERSION}'s "
            f"({FACE_API_SHA256[:12]}…); pass --no-check-sha to convert another build"
        )
    try:
        with tarfile.open(tarball, "r:*") as tar:

            def read(member: str) -> bytes:
                fh = tar.extractfile(f"package/model/{member}")
                if fh is None:
                    raise KeyError(member)
                return fh.read()

            manifest = json.loads(read(f"{MODEL}-weights_manifest.json"))
            return decode_weights(manifest, read), digest
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SrferError(f"{tarball}: not a readable npm tarball ({exc})") from None
    except KeyError as exc:
        raise SrferError(
            f"{tarball}: no package/model/{exc.args[0]} inside (not a face-api package)"
        ) from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise SrferError(f"{tarball}: the {MODEL} manifest is not valid ({exc})") from None


def to_embedder(weights: dict[str, np.ndarray]) -> Embedder:
    """An `Embedder` (backbone dlib-resnet29) holding `weights`; every tensor used once."""
    embedder = Embedder(EmbedderConfig(backbone="dlib-resnet29"))
    state = {f"backbone.{torch_name(k)}": to_torch_layout(k, v) for k, v in weights.items()}
    expected = embedder.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise SrferError(
            f"face-api weights do not fit dlib-resnet29: missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}"
        )
    wrong = [k for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        raise SrferError(f"face-api weights: wrong shape for {wrong[:3]}")
    embedder.load_state_dict(state)
    return embedder.eval()


# Aligned chips are cut at 128 px (the CelebA SR models' output size, so SR faces and full-size
# faces arrive alike) and resized to 150 inside the embedder. Measured on CelebA val (6,000
# pairs): 96.08 % cut at 128 vs 95.97 % cut at 150.
CROP_SIZE = 128


def input_contract() -> dict[str, Any]:
    return {
        "size": INPUT_SIZE,
        "crop_size": CROP_SIZE,
        "channels": "RGB",
        "normalisation": f"x*255 - mean RGB {list(MEAN_RGB)}, then /255",
        "alignment": DLIB_TEMPLATE.to_json(),
    }


def convert_face_api(
    tarball: Path, target: Path, check_sha: bool = True, threshold: float | None = None
) -> dict[str, Any]:
    """Convert and write the checkpoint (fp32, atomically); returns what was written."""
    weights, digest = read_tarball(Path(tarball), check_sha)
    embedder = to_embedder(weights)
    meta: dict[str, Any] = {
        "source": {
            "package": f"@vladmandic/face-api@{FACE_API_VERSION}",
            "file": Path(tarball).name,
            "sha256": digest,
            "model": f"package/model/{MODEL}",
            "original": "dlib_face_recognition_resnet_model_v1 (dlib.net, Davis E. King)",
        },
        "license": LICENCE,
        "input": input_contract(),
        "dtype": "float32",
    }
    if threshold is not None:
        meta["threshold"] = threshold
    tensors = {f"model.{k}": v for k, v in embedder.state_dict().items()}
    path = save_checkpoint(target, embedder.kind, embedder.config.to_dict(), tensors, meta)
    parameters = sum(v.numel() for v in tensors.values())
    return {"path": str(path), "tensors": len(weights), "parameters": parameters, "sha256_tarball": digest}
