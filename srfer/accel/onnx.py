"""ONNX export of srfer's networks and ONNX Runtime inference behind the torch call.

`export_onnx` writes a trained network (SR generator, expression classifier, face embedder)
as an ONNX graph with torch's exporter (`torch.onnx.export(dynamo=True)`): a dynamic batch
axis for every network, and dynamic height and width for the fully convolutional SR
generator. srfer's own header (kind, config, the source checkpoint's sha256, its `input`
contract and τ) travels in the model's `metadata_props` under `srfer`.

`OnnxNetwork` runs such a graph in an ONNX Runtime session but is called like the torch
module it came from (a float tensor in, a tensor out) and carries the same `kind` and
`config`, so `predict` and `upscale` use it unchanged (`--runtime onnx`). The
graph for a checkpoint is exported once and cached by the checkpoint's sha256 in
`$SRFER_CACHE/onnx` (default `~/.cache/srfer/onnx`); a cached graph ONNX Runtime cannot load
(junk, truncated, empty) is exported again, once, with a warning.

onnx, onnxscript and onnxruntime are an optional extra: `pip install 'srfer[onnx]'`.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srfer.core.console import info, warn
from srfer.core.errors import SrferError, writing
from srfer.core.options import check_runtime
from srfer.core.weights import sha256

OPSET = 18
INPUT, OUTPUT = "input", "output"
INSTALL_HINT = "pip install 'srfer[onnx]' (onnx, onnxscript, onnxruntime)"


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise SrferError(f"ONNX needs the optional packages: {INSTALL_HINT} ({module} is missing)") from None


def example_input(model: nn.Module, side: int | None = None) -> tuple[torch.Tensor, dict[int, Any]]:
    """A batch of 2 the network takes, and the dynamic axes of that input (index → Dim).
    `side`: the face size a classifier or embedder is fed (default: its config's input size)."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    kind, config = getattr(model, "kind", ""), getattr(model, "config", None)
    if kind == "sr-generator":
        spatial = {i: torch.export.Dim(name, min=4, max=4096) for i, name in ((2, "height"), (3, "width"))}
        return torch.zeros(2, config.channels, 32, 32), {0: batch, **spatial}
    if kind in ("fer-classifier", "face-embedder"):
        side = side or config.input_size
        return torch.zeros(2, getattr(config, "in_channels", 3), side, side), {0: batch}
    raise SrferError(f"no ONNX export for a {kind or 'unknown'!r} network")


def export_onnx(
    model: nn.Module, target: Path, source: Path, meta: Mapping[str, Any], side: int | None = None
) -> Path:
    """Write `model` (a srfer network loaded from the checkpoint `source`, whose header's meta
    is `meta`) to `target` as ONNX, atomically; `side` as in `example_input`."""
    onnx = _require("onnx")
    _require("onnxscript")
    target = Path(target)
    model = model.eval().cpu()
    example, axes = example_input(model, side)
    shape: list = ["batch", *example.shape[1:]]
    if len(axes) > 1:  # SR: any height and width
        shape[2:] = ["height", "width"]
    header = {
        "kind": model.kind,
        "config": model.config.to_dict(),
        "source_sha256": sha256(source),
        "input": meta.get("input"),
        "threshold": meta.get("threshold"),
        "input_shape": shape,
    }
    tmp = target.with_name(f".{target.name}.tmp")
    with writing(target, partial=tmp), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and shape notes
        target.parent.mkdir(parents=True, exist_ok=True)
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
            dynamic_shapes=(axes,), opset_version=OPSET, verbose=False,
        )  # fmt: skip
        graph = program.model_proto
        entry = graph.metadata_props.add()
        entry.key, entry.value = "srfer", json.dumps(header)
        onnx.save(graph, str(tmp))
        os.replace(tmp, target)
    return target


def cache_dir() -> Path:
    root = os.environ.get("SRFER_CACHE") or Path.home() / ".cache" / "srfer"
    return Path(root) / "onnx"


def cached_export(model: nn.Module, source: Path, meta: Mapping[str, Any], side: int | None = None) -> Path:
    """The ONNX graph of the checkpoint `source`, exported on first use (keyed by its sha256)."""
    sized = f"-{side}px" if side else ""
    path = cache_dir() / f"{model.kind}-{sha256(source)[:16]}{sized}-opset{OPSET}.onnx"
    if not path.is_file():
        info(f"exporting {Path(source).name} to ONNX (once; cached as {path})")
        export_onnx(model, path, source, meta, side)
    return path


_SESSIONS_LOCK = threading.Lock()


class UnreadableGraph(SrferError):
    """ONNX Runtime cannot load a graph file."""


class OnnxNetwork(nn.Module):
    """An ONNX Runtime session in a torch module's place: same `kind` and `config`, called with
    a float tensor (any device; run where the session runs)."""

    def __init__(self, model: nn.Module, graph: Path, device: torch.device) -> None:
        super().__init__()
        ort = _require("onnxruntime")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise SrferError("--runtime onnx on CUDA needs onnxruntime-gpu; use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
        elif device.type != "cpu":
            raise SrferError(f"--runtime onnx runs on cpu or cuda, not {device.type}")
        self._ort, self._providers, self._sessions = ort, providers, {}
        self.kind, self.config, self.graph = model.kind, model.config, graph
        self.session()  # opened now: a broken graph fails at load, not mid-job

    def session(self):
        """A session with torch's current intra-op thread count, opened on first use: with
        several inputs in flight (`srfer.accel.workers.in_flight`) each has a one-thread share of the
        cores, and a session of the load-time count would overrun it."""
        threads = torch.get_num_threads()
        with _SESSIONS_LOCK:
            if threads not in self._sessions:
                options = self._ort.SessionOptions()
                options.log_severity_level = 3  # errors only
                options.intra_op_num_threads = threads
                # no spin-waiting between runs: spinning threads would take the cores from the
                # torch work (MTCNN) in between
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                try:
                    self._sessions[threads] = self._ort.InferenceSession(
                        str(self.graph), options, providers=self._providers
                    )
                except Exception as exc:  # noqa: BLE001 - onnxruntime's error types are not public
                    if not type(exc).__module__.startswith("onnxruntime"):
                        raise
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise UnreadableGraph(f"{self.graph}: ONNX Runtime cannot load it ({reason})") from None
            return self._sessions[threads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session().run([OUTPUT], {INPUT: array})[0]).to(x.device)


def on_runtime(
    model: nn.Module, runtime: str, device: torch.device, source: Path, meta: Mapping[str, Any],
    side: int | None = None,
) -> nn.Module:  # fmt: skip
    """`model` itself for `torch`, or its ONNX Runtime twin for `onnx` (exported from the
    checkpoint `source` with header meta `meta`; `side` as in `example_input`)."""
    check_runtime(runtime)
    if runtime == "torch":
        return model
    graph = cached_export(model, source, meta, side)
    try:
        return OnnxNetwork(model, graph, device)
    except UnreadableGraph as exc:  # a damaged cache entry (junk, truncated, empty): made again, once
        warn(f"{exc}; the cached graph is exported again")
        graph.unlink(missing_ok=True)
        return OnnxNetwork(model, cached_export(model, source, meta, side), device)
