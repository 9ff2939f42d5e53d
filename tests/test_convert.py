"""`srfer convert-face-api` on synthetic tfjs manifests (never on ../shared's tarball)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from srfer.cli import app
from srfer.convert.face_api import (
    EXPRESSION_MODEL,
    MODEL,
    convert_face_api,
    decode_weights,
    expression_name,
    torch_name,
)
from srfer.core.errors import SrferError
from srfer.data.fer import EMOTIONS
from srfer.infer.load import embedder_aligner, load_classifier, load_embedder
from srfer.models.dlib_resnet import DlibResNet29

runner = CliRunner()


def tf_shapes() -> dict[str, list[int]]:
    """face-api's tensor names and TensorFlow shapes, read off a torch DlibResNet29."""
    net = DlibResNet29()
    names = {}
    for prefix in ["conv32_down", *(f"conv32_{i}" for i in (1, 2, 3)), "conv64_down",
                   *(f"conv64_{i}" for i in (1, 2, 3)), "conv128_down", "conv128_1", "conv128_2",
                   "conv256_down", "conv256_1", "conv256_2", "conv256_down_out"]:  # fmt: skip
        convs = ["conv"] if prefix == "conv32_down" else ["conv1/conv", "conv2/conv"]
        for conv in convs:
            scale = conv.replace("conv", "scale", 1) if conv == "conv" else conv.replace("/conv", "/scale")
            for leaf in (f"{conv}/filters", f"{conv}/bias", f"{scale}/weights", f"{scale}/biases"):
                names[f"{prefix}/{leaf}"] = None
    names["fc"] = None
    state = net.state_dict()
    for name in names:
        shape = list(state[torch_name(name)].shape)
        names[name] = [shape[2], shape[3], shape[1], shape[0]] if len(shape) == 4 else shape[::-1]
    return names


def write_tarball(
    path: Path, seed: int = 0, float_every: int = 7, model: str = MODEL, shapes: dict | None = None
) -> dict[str, np.ndarray]:
    """An npm-pack-like tarball holding a synthetic `model` (default face_recognition_model, of
    `shapes`; uint8-quantised, every `float_every`-th tensor stored as float32 as in the real
    file); returns the values."""
    rng = np.random.default_rng(seed)
    weights, blob, values = [], b"", {}
    for i, (name, shape) in enumerate((shapes or tf_shapes()).items()):
        if i % float_every == 0:
            value = rng.normal(0, 0.05, shape).astype(np.float32)
            weights.append({"name": name, "shape": shape, "dtype": "float32"})
            blob += value.astype("<f4").tobytes()
        else:
            q = rng.integers(0, 256, shape, dtype=np.uint8)
            scale, low = float(rng.uniform(1e-4, 1e-3)), float(rng.uniform(-0.1, 0))
            if name.endswith("scale/weights"):
                low = 0.5  # dlib's affine scales are positive
            weights.append({"name": name, "shape": shape, "dtype": "float32",
                            "quantization": {"dtype": "uint8", "scale": scale, "min": low}})  # fmt: skip
            value = q.astype(np.float32) * np.float32(scale) + np.float32(low)
            blob += q.tobytes()
        values[name] = value
    manifest = json.dumps([{"paths": [f"{model}.bin"], "weights": weights}]).encode()
    with tarfile.open(path, "w:gz") as tar:
        for member, data in ((f"{model}-weights_manifest.json", manifest), (f"{model}.bin", blob)):
            info = tarfile.TarInfo(f"package/model/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return values


def test_decode_weights_dequantises_like_tfjs() -> None:
    q = np.array([[0, 1, 255], [2, 3, 4]], dtype=np.uint8)
    f = np.array([1.5, -2.0, 0.25, 8.0], dtype="<f4")
    manifest = [{"paths": ["a.bin", "b.bin"], "weights": [
        {"name": "q", "shape": [2, 3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1}},
        {"name": "f", "shape": [4], "dtype": "float32"},
    ]}]  # fmt: skip
    blob = q.tobytes() + f.tobytes()
    shards = {"a.bin": blob[:4], "b.bin": blob[4:]}  # tensors may straddle shards
    out = decode_weights(manifest, shards.__getitem__)
    np.testing.assert_array_equal(out["q"], q * 0.5 - 1)
    np.testing.assert_array_equal(out["f"], f)
    with pytest.raises(SrferError, match="shards end inside"):
        decode_weights(manifest, {"a.bin": blob[:4], "b.bin": blob[4:-1]}.__getitem__)
    with pytest.raises(SrferError, match="bytes left"):
        decode_weights(manifest, {"a.bin": blob[:4], "b.bin": blob[4:] + b"x"}.__getitem__)


def test_tensor_names_map_onto_the_torch_module() -> None:
    assert torch_name("conv32_down/conv/filters") == "stem.conv.weight"
    assert torch_name("conv32_2/conv1/scale/weights") == "stages.0.1.conv1.scale.weight"
    assert torch_name("conv64_down/conv2/conv/bias") == "stages.1.0.conv2.conv.bias"
    assert torch_name("conv256_down_out/conv1/scale/biases") == "down_out.conv1.scale.bias"
    assert torch_name("fc") == "fc.weight"
    with pytest.raises(SrferError, match="unexpected tensor"):
        torch_name("conv512_1/conv1/conv/filters")


def test_converted_network_computes_what_the_tf_layout_says(tmp_path: Path) -> None:
    tarball = tmp_path / "face-api.tgz"
    tf = write_tarball(tarball)
    target = tmp_path / "out" / "dlib.safetensors"
    result = convert_face_api(tarball, target, check_sha=False, threshold=0.4)
    assert result["tensors"] == len(tf) == 117 and result["parameters"] == 5_614_592
    embedder = load_embedder(target, torch.device("cpu"), deploy=False)  # as converted: affines unfolded
    net = embedder.network.backbone
    # the stem at output pixel (0, 0): Σ x[i, j, c] · K[i, j, c, o] + b, then the affine (TF semantics)
    x = torch.rand(1, 3, 150, 150, dtype=torch.float64)
    patch = x[0, :, :7, :7].permute(1, 2, 0).numpy()  # (7, 7, 3), HWC
    expected = np.einsum("ijc,ijco->o", patch, tf["conv32_down/conv/filters"]) + tf["conv32_down/conv/bias"]
    expected = expected * tf["conv32_down/scale/weights"] + tf["conv32_down/scale/biases"]
    with torch.no_grad():
        got = net.stem.double()(x)[0, :, 0, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    # the head: mean features (256) @ fc (256, 128)
    feats = torch.rand(2, 256, dtype=torch.float64)
    with torch.no_grad():
        head = net.fc.double()(feats).numpy()
    np.testing.assert_allclose(head, feats.numpy() @ tf["fc"], rtol=1e-6, atol=1e-9)
    # the checkpoint says where it came from and what it expects
    assert embedder.meta["threshold"] == 0.4 and "public domain" in embedder.meta["license"]
    assert embedder.meta["input"]["size"] == 150 and embedder.contract["crop_size"] == 128
    assert embedder_aligner(embedder).template.name == "dlib-chip-padding-0.25"
    with torch.no_grad():
        assert embedder.network.float()(torch.rand(2, 3, 128, 128)).shape == (2, 128)


def test_bad_tarballs_are_one_line_errors(tmp_path: Path) -> None:
    tarball = tmp_path / "face-api.tgz"
    write_tarball(tarball)
    out = tmp_path / "x.safetensors"
    for args, message in (
        ([str(tarball), str(out)], "is not @vladmandic/face-api 1.7.15"),  # the sha check is on by default
        ([str(tmp_path / "missing.tgz"), str(out)], "tarball not found"),
    ):
        result = runner.invoke(app, ["convert-face-api", *args])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    text = tmp_path / "not.tgz"
    text.write_text("hello")
    with pytest.raises(SrferError, match="not a readable npm tarball"):
        convert_face_api(text, out, check_sha=False)
    empty = tmp_path / "empty.tgz"
    with tarfile.open(empty, "w:gz"):
        pass
    with pytest.raises(SrferError, match="not a face-api package"):
        convert_face_api(empty, out, check_sha=False)
    assert not out.exists()
    ok = runner.invoke(app, ["convert-face-api", str(tarball), str(out), "--no-check-sha", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["parameters"] == 5_614_592 and out.is_file()


def expression_tf_shapes() -> dict[str, list[int]]:
    """face-api's face_expression_model tensor names and TensorFlow shapes, in manifest order."""
    shapes: dict[str, list[int]] = {}
    c_in = 3
    for i, c in enumerate((32, 64, 128, 256)):
        for j in range(4):
            prefix = f"dense{i}/conv{j}"
            if i == 0 and j == 0:
                shapes[f"{prefix}/filters"] = [3, 3, 3, c]
            else:
                source = c_in if j == 0 else c
                shapes[f"{prefix}/depthwise_filter"] = [3, 3, source, 1]
                shapes[f"{prefix}/pointwise_filter"] = [1, 1, source, c]
            shapes[f"{prefix}/bias"] = [c]
        c_in = c
    return {**shapes, "fc/weights": [256, 7], "fc/bias": [7]}


def test_expression_tensor_names_map_onto_the_torch_module() -> None:
    assert expression_name("dense0/conv0/filters") == "trunk.blocks.0.conv0.conv.weight"
    assert expression_name("dense0/conv0/bias") == "trunk.blocks.0.conv0.conv.bias"
    assert expression_name("dense2/conv3/depthwise_filter") == "trunk.blocks.2.conv3.depthwise.weight"
    assert expression_name("dense1/conv0/bias") == "trunk.blocks.1.conv0.pointwise.bias"
    assert expression_name("fc/weights") == "head.1.weight"
    with pytest.raises(SrferError, match="unexpected tensor"):
        expression_name("dense9/conv0/gamma")


def test_converted_expression_network_computes_what_the_tf_layout_says(tmp_path: Path) -> None:
    tarball = tmp_path / "face-api.tgz"
    tf = write_tarball(tarball, model=EXPRESSION_MODEL, shapes=expression_tf_shapes(), float_every=5)
    target = tmp_path / "faceapi.safetensors"
    result = convert_face_api(tarball, target, check_sha=False, model="expression")
    assert result["tensors"] == 49 and result["parameters"] == 323_687
    loaded = load_classifier(target, torch.device("cpu"))
    model = loaded.network.double()
    assert model.config.arch == "faceapi-expression" and "MIT" in loaded.meta["license"]
    blocks = model.trunk.blocks
    # the first conv, TF "same" at stride 2 on 112 px: output (0, 0) sees rows/cols 0–2; the
    # last output (55, 55) sees 110, 111 and the zero pad
    x = torch.rand(1, 3, 112, 112, dtype=torch.float64)
    kernel, bias = tf["dense0/conv0/filters"], tf["dense0/conv0/bias"]
    with torch.no_grad():
        out = blocks[0].conv0(x)[0].numpy()
    first = np.einsum("ijc,ijco->o", x[0, :, :3, :3].permute(1, 2, 0).numpy(), kernel) + bias
    last = np.einsum("ijc,ijco->o", x[0, :, 110:, 110:].permute(1, 2, 0).numpy(), kernel[:2, :2]) + bias
    np.testing.assert_allclose(out[:, 0, 0], first, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out[:, 55, 55], last, rtol=1e-6, atol=1e-9)
    # a separable conv (stride 1): depthwise Σ x[c, i+a-1, j+b-1] D[a, b, c], then pointwise + bias
    sep = blocks[1].conv2
    h = torch.rand(1, 64, 6, 6, dtype=torch.float64)
    depth, point = tf["dense1/conv2/depthwise_filter"][..., 0], tf["dense1/conv2/pointwise_filter"][0, 0]
    dw = np.einsum("cij,ijc->c", h[0, :, 1:4, 2:5].numpy(), depth)  # output pixel (2, 3)
    with torch.no_grad():
        got = sep(h)[0, :, 2, 3].numpy()
    np.testing.assert_allclose(got, dw @ point + tf["dense1/conv2/bias"], rtol=1e-6, atol=1e-9)
    # the head answers in FER2013's class order: face-api's column for each of srfer's classes
    faceapi = ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"]
    order = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
    columns = [order.index(name) for name in faceapi]
    feats = torch.rand(2, 256, dtype=torch.float64)
    with torch.no_grad():
        logits = model.head.eval()(feats).numpy()
    expected = feats.numpy() @ tf["fc/weights"] + tf["fc/bias"]
    np.testing.assert_allclose(logits, expected[:, columns], rtol=1e-6, atol=1e-9)
    assert len(EMOTIONS) == 7 and EMOTIONS[3] == "happy" and columns[3] == 1
    with torch.no_grad():
        assert model.float()(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_expression_conversion_refuses_what_does_not_fit(tmp_path: Path) -> None:
    tarball = tmp_path / "face-api.tgz"
    write_tarball(tarball)  # a recogniser only: no expression model inside
    out = tmp_path / "x.safetensors"
    with pytest.raises(SrferError, match="not a face-api package"):
        convert_face_api(tarball, out, check_sha=False, model="expression")
    with pytest.raises(SrferError, match="--threshold"):
        convert_face_api(tarball, out, check_sha=False, threshold=0.3, model="expression")
    args = [str(tarball), str(out), "--no-check-sha", "--model", "age"]
    result = runner.invoke(app, ["convert-face-api", *args])
    assert result.exit_code == 1 and "--model must be recognition or expression" in result.output
    shapes = expression_tf_shapes()
    shapes["fc/weights"] = [256, 8]
    wrong = tmp_path / "wrong.tgz"
    write_tarball(wrong, model=EXPRESSION_MODEL, shapes=shapes)
    with pytest.raises(SrferError, match="wrong shape"):
        convert_face_api(wrong, out, check_sha=False, model="expression")
    assert not out.exists()
