"""`srfer convert-face-api`: dlib's ResNet-29 face recogniser from the @vladmandic/face-api npm
tarball → a srfer embedder checkpoint (what ships as `weights/embed_dlib_resnet29.safetensors`);
with `--model expression`, face-api.js's expression network → a srfer expression classifier
(`faceapi-expression`, classes reordered to FER2013's).

The tarball is read as is (no extraction): `package/model/face_recognition_model-weights_manifest.json`
lists each tensor's name, shape and storage (float32, or uint8 with affine dequantisation
value = q·scale + min, as TensorFlow.js decodes it), and the `.bin` shards hold them
concatenated in manifest order. TensorFlow's layouts are turned into torch's (conv HWIO →
OIHW, dense (in, out) → (out, in)); every tensor of the model must be used exactly once.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from srfer.core.checkpoint import save_checkpoint
from srfer.core.errors import SrferError
from srfer.core.weights import sha256
from srfer.faces.align import DLIB_TEMPLATE
from srfer.models import Embedder, EmbedderConfig
from srfer.models.dlib_resnet import INPUT_SIZE, MEAN_RGB

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
    if name.endswith("depthwise_filter"):  # (kh, kw, channels, 1) → (channels, 1, kh, kw)
        value = value.transpose(2, 3, 0, 1)
    elif value.ndim == 4:  # conv filters: (kh, kw, in, out) → (out, in, kh, kw)
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


def read_tarball(
    tarball: Path, check_sha: bool = True, model: str = MODEL
) -> tuple[dict[str, np.ndarray], str]:
    """`model`'s tensors (default: the recogniser's) from an `npm pack` tarball, and the
    tarball's sha256."""
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

            manifest = json.loads(read(f"{model}-weights_manifest.json"))
            return decode_weights(manifest, read), digest
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SrferError(f"{tarball}: not a readable npm tarball ({exc})") from None
    except KeyError as exc:
        raise SrferError(
            f"{tarball}: no package/model/{exc.args[0]} inside (not a face-api package)"
        ) from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise SrferError(f"{tarball}: the {model} manifest is not valid ({exc})") from None


def to_embedder(weights: dict[str, np.ndarray]) -> Embedder:
    """An `Embedder` (backbone dlib-resnet29) holding `weights`; every tensor used once."""
    embedder = Embedder(EmbedderConfig(backbone="dlib-resnet29"))
    state = {f"backbone.{torch_name(k)}": to_torch_layout(k, v) for k, v in weights.items()}
    check_state(state, embedder.state_dict(), "dlib-resnet29")
    embedder.load_state_dict(state)
    return embedder.eval()


# Aligned chips are cut at 128 px (the CelebA SR models' output size, so SR faces and full-size
# faces arrive alike) and resized to 150 inside the embedder; cutting at 150 measured no better
# (docs/routing.md).
CROP_SIZE = 128


def input_contract() -> dict[str, Any]:
    return {
        "size": INPUT_SIZE,
        "crop_size": CROP_SIZE,
        "channels": "RGB",
        "normalisation": f"x*255 - mean RGB {list(MEAN_RGB)}, then /255",
        "alignment": DLIB_TEMPLATE.to_json(),
    }


# face-api.js's expression network (MIT, Vincent Mühler; the same package's port)
EXPRESSION_MODEL = "face_expression_model"
EXPRESSION_LICENCE = (
    "weights and graph: face-api.js (Vincent Mühler), MIT licence; port: @vladmandic/face-api, MIT"
)


# srfer's (FER2013's) class names → face-api's
FACEAPI_NAMES = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy",
                 "sad": "sad", "surprise": "surprised", "neutral": "neutral"}  # fmt: skip


def expression_name(tf_name: str) -> str:
    """'dense1/conv2/depthwise_filter' → 'trunk.blocks.1.conv2.depthwise.weight';
    'dense0/conv0/filters' → 'trunk.blocks.0.conv0.conv.weight'; 'fc/weights' → 'head.1.weight'."""
    if tf_name in ("fc/weights", "fc/bias"):
        return "head.1." + ("weight" if tf_name == "fc/weights" else "bias")
    parts = tf_name.split("/")
    leaves = {"filters": "conv.weight", "depthwise_filter": "depthwise.weight",
              "pointwise_filter": "pointwise.weight", "bias": "pointwise.bias"}  # fmt: skip
    if len(parts) != 3 or not parts[0].startswith("dense") or parts[2] not in leaves:
        raise SrferError(f"face-api manifest: unexpected tensor {tf_name!r}")
    leaf = leaves[parts[2]]
    if parts[:2] == ["dense0", "conv0"] and parts[2] == "bias":
        leaf = "conv.bias"  # the first block's entry is a full convolution
    return f"trunk.blocks.{parts[0][len('dense') :]}.{parts[1]}.{leaf}"


def to_expression_classifier(weights: dict[str, np.ndarray]) -> nn.Module:
    """A `faceapi-expression` classifier holding `weights` (every tensor used once), its 7
    outputs reordered from face-api's classes to FER2013's (`srfer.data.fer.EMOTIONS`)."""
    from srfer.data.fer import EMOTIONS
    from srfer.models.faceapi_expression import FACEAPI_EXPRESSIONS
    from srfer.models.fer import FaceApiFer, FerConfig

    model = FaceApiFer(FerConfig(arch="faceapi-expression"))
    state = {expression_name(k): to_torch_layout(k, v) for k, v in weights.items()}
    check_state(state, model.state_dict(), "faceapi-expression")
    ours = [FACEAPI_EXPRESSIONS.index(FACEAPI_NAMES[e]) for e in EMOTIONS]
    for key in ("head.1.weight", "head.1.bias"):
        state[key] = state[key][ours].contiguous()
    model.load_state_dict(state)
    return model.eval()


def check_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], network: str) -> None:
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise SrferError(
            f"face-api weights do not fit {network}: missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}"
        )
    wrong = [k for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        raise SrferError(f"face-api weights: wrong shape for {wrong[:3]}")


def expression_input_contract() -> dict[str, Any]:
    from srfer.models.faceapi_expression import INPUT_SIZE as EXPRESSION_INPUT_SIZE

    return {
        "size": EXPRESSION_INPUT_SIZE,
        "channels": "gray 48 px face, copied to RGB inside the network",
        "resize": "TensorFlow legacy bilinear (no half-pixel offset), as face-api",
        "normalisation": f"x*255 - mean RGB {list(MEAN_RGB)}, then /255",
        "classes": "FER2013 order (reordered from face-api's neutral, happy, sad, angry, fearful, "
        "disgusted, surprised)",
    }


@dataclass(frozen=True)
class Conversion:
    """What `convert_face_api` reads and records for one of the tarball's networks."""

    source_model: str  # package/model/<name>-weights_manifest.json
    build: Callable[[dict[str, np.ndarray]], nn.Module]
    original: str
    licence: str
    input_contract: Callable[[], dict[str, Any]]


CONVERSIONS = {
    "recognition": Conversion(
        MODEL, to_embedder, "dlib_face_recognition_resnet_model_v1 (dlib.net, Davis E. King)", LICENCE,
        input_contract,
    ),
    "expression": Conversion(
        EXPRESSION_MODEL, to_expression_classifier, "face-api.js FaceExpressionNet (Vincent Mühler)",
        EXPRESSION_LICENCE, expression_input_contract,
    ),
}  # fmt: skip


def convert_face_api(
    tarball: Path, target: Path, check_sha: bool = True, threshold: float | None = None,
    model: str = "recognition",
) -> dict[str, Any]:  # fmt: skip
    """Convert `model` (recognition: dlib's recogniser → embedder; expression: face-api.js's
    expression network → classifier) and write the checkpoint (fp32, atomically); returns what
    was written."""
    if model not in CONVERSIONS:
        raise SrferError(f"--model must be recognition or expression, not {model!r}")
    if threshold is not None and model != "recognition":
        raise SrferError("--threshold is the recogniser's verification τ: not for --model expression")
    conversion = CONVERSIONS[model]
    weights, digest = read_tarball(Path(tarball), check_sha, conversion.source_model)
    network = conversion.build(weights)
    meta: dict[str, Any] = {
        "source": {
            "package": f"@vladmandic/face-api@{FACE_API_VERSION}",
            "file": Path(tarball).name,
            "sha256": digest,
            "model": f"package/model/{conversion.source_model}",
            "original": conversion.original,
        },
        "license": conversion.licence,
        "input": conversion.input_contract(),
        "dtype": "float32",
    }
    if threshold is not None:
        meta["threshold"] = threshold
    tensors = {f"model.{k}": v for k, v in network.state_dict().items()}
    path = save_checkpoint(target, network.kind, network.config.to_dict(), tensors, meta)
    parameters = sum(v.numel() for v in tensors.values())
    return {"path": str(path), "model": model, "kind": network.kind, "tensors": len(weights),
            "parameters": parameters, "sha256_tarball": digest}  # fmt: skip
