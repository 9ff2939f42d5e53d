"""ONNX export and ONNX Runtime inference: parity with torch on tiny random-weight networks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from synthetic import synthetic_face, tiny_checkpoints
from typer.testing import CliRunner

from srfer.accel.onnx import OnnxNetwork, on_runtime
from srfer.cli import app
from srfer.core.errors import SrferError
from srfer.infer.load import load_classifier, load_embedder, load_generator

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
runner = CliRunner()
PARITY = 1e-4  # max |Δ| between torch and ONNX Runtime outputs (fp32 both)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    return tiny_checkpoints(tmp_path_factory.mktemp("weights"))


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("SRFER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def max_delta(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.slow
def test_every_network_matches_torch_under_onnx_runtime(weights) -> None:
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    generator = load_generator(weights["sr"], cpu)
    twin = on_runtime(generator.network, "onnx", cpu, generator.sources[0], generator.meta)
    assert isinstance(twin, OnnxNetwork) and twin.config == generator.config
    for shape in ((1, 3, 32, 32), (5, 3, 12, 20)):  # dynamic batch, height and width
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            assert max_delta(twin(x), generator(x)) < PARITY
    classifier = load_classifier(weights["fer"], cpu)
    x = torch.rand(7, 1, 48, 48)
    with torch.no_grad():
        assert max_delta(load_classifier(weights["fer"], cpu, runtime="onnx")(x), classifier(x)) < PARITY
    embedder = load_embedder(weights["embed_aligned"], cpu)  # the dlib network, 64 px crops in its contract
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        assert (
            max_delta(load_embedder(weights["embed_aligned"], cpu, runtime="onnx")(x), embedder(x)) < PARITY
        )


@pytest.mark.slow
def test_export_onnx_writes_a_self_describing_graph(weights, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(weights["fer"]), str(tmp_path / "f.onnx"), "--onnx"])
    assert result.exit_code == 0, result.output
    graph = onnx.load(str(tmp_path / "f.onnx"))
    header = json.loads({p.key: p.value for p in graph.metadata_props}["srfer"])
    assert header["kind"] == "fer-classifier" and header["input_shape"] == ["batch", 1, 48, 48]
    assert len(header["source_sha256"]) == 64 and header["config"]["width"] == 4


def test_export_onnx_refuses_what_it_cannot_export(tmp_path: Path) -> None:
    from srfer.core.checkpoint import save_checkpoint
    from srfer.models import Discriminator, DiscriminatorConfig

    disc = Discriminator(DiscriminatorConfig(features=4, hidden=8))
    tensors = {f"model.{k}": v for k, v in disc.state_dict().items()}
    path = save_checkpoint(tmp_path / "d.safetensors", "sr-discriminator", disc.config.to_dict(), tensors)
    result = runner.invoke(app, ["export", str(path), str(tmp_path / "d.onnx"), "--onnx"])
    assert result.exit_code == 1 and "no ONNX export" in result.stderr and "Traceback" not in result.output
    (tmp_path / "junk.safetensors").write_text("not a checkpoint")
    junk = runner.invoke(
        app, ["export", str(tmp_path / "junk.safetensors"), str(tmp_path / "j.onnx"), "--onnx"]
    )
    assert junk.exit_code == 1 and "Traceback" not in junk.output
    assert not (tmp_path / "d.onnx").exists() and not (tmp_path / "j.onnx").exists()


def test_an_unknown_runtime_is_a_one_line_error(weights) -> None:
    with pytest.raises(SrferError, match="--runtime"):
        generator = load_generator(weights["sr"])
        on_runtime(generator.network, "tensorrt", torch.device("cpu"), generator.sources[0], generator.meta)


@pytest.mark.slow
def test_predict_and_upscale_answer_the_same_under_onnx_runtime(weights, tmp_path: Path) -> None:
    for i in range(2):
        synthetic_face((32, 32), i).save(tmp_path / f"face{i}.png")
    synthetic_face((14, 14), 5).save(tmp_path / "tiny.png")  # the tiny-face expression path too
    common = ["predict", str(tmp_path / "face0.png"), str(tmp_path / "face1.png"), str(tmp_path / "tiny.png"),
              "--json", "--embeddings", "--device", "cpu", "--sr-weights", str(weights["sr"]),
              "--fer-weights", str(weights["fer"]), "--embed-weights", str(weights["embed_aligned"]),
              "--fer-sr-weights", str(weights["sr_fer"]),
              "--upscale-fer-weights", str(weights["fer_up"])]  # fmt: skip
    answers = {}
    for runtime in ("torch", "onnx"):
        result = runner.invoke(app, [*common, "--runtime", runtime])
        assert result.exit_code == 0, result.output
        answers[runtime] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(answers["onnx"]) == 3
    assert {f["expression_model"] for f in answers["onnx"]} == {"fer+fer-upscale", "fer-upscale"}
    for a, b in zip(answers["torch"], answers["onnx"], strict=True):
        assert a["expression"] == b["expression"]
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) < 1e-3
        assert max(abs(x - y) for x, y in zip(a["embedding"], b["embedding"], strict=True)) < 1e-3
    outputs = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / runtime
        result = runner.invoke(app, ["upscale", str(tmp_path / "face0.png"), "-o", str(out),
                                     "--weights", str(weights["sr"]), "--runtime", runtime])  # fmt: skip
        assert result.exit_code == 0, result.output
        from srfer.core.imageio import load_image, pil_to_tensor

        outputs[runtime] = pil_to_tensor(load_image(out / "face0.png"))
    assert max_delta(outputs["torch"], outputs["onnx"]) <= 1 / 255 + 1e-6  # at most one 8-bit level
