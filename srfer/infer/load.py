"""Load trained networks: a checkpoint (a role's shipped file, or a given one) → a `LoadedModel`,
eval mode, ready for inference on its device and runtime.

Networks are made channels-last (oneDNN then runs their convolutions in its fast layout
whatever layout the input has) and, with torch on the CPU, re-parameterised for inference
(`srfer.accel`: the same function in faster operations); `--runtime onnx` swaps each for its
ONNX Runtime twin. docs/performance.md has the measurements behind both."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srfer.accel.deploy import switch_to_cpu_deploy
from srfer.accel.onnx import on_runtime
from srfer.accel.sr_phases import deploy_generator
from srfer.core.checkpoint import load_checkpoint
from srfer.core.errors import SrferError
from srfer.core.weights import Weights, WeightsEntry, check_shipped, entry_for, sha256, weights_file
from srfer.data.fer import class_names
from srfer.faces.align import FaceAligner, FaceTemplate, template_from_json
from srfer.infer.options import HEAD_CHOICES
from srfer.models import build_model
from srfer.models.feature_sr import FeatureSREmbedder
from srfer.models.fer_ensemble import ClassifierEnsemble, FlipAveraged

# the checkpoint kinds inference loads
SR, CLASSIFIER, EMBEDDER = "sr-generator", "fer-classifier", "face-embedder"
VERIFY_HEAD, FEATURE_SR = "verify-head", "feature-sr"


@dataclass(eq=False)
class LoadedModel:
    """A trained network as loaded: the module that runs (torch, re-parameterised, flip-averaged,
    an ensemble or an ONNX Runtime twin), the file(s) it came from, its checkpoint header's
    `meta` and, for a shipped file, its weights entry. Called like the network."""

    network: nn.Module
    sources: tuple[Path, ...]
    kind: str
    meta: Mapping[str, Any]
    entry: WeightsEntry | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    @property
    def config(self) -> Any:
        return self.network.config

    @property
    def source(self) -> Path | str:
        """The file, or the comma-separated files of an ensemble."""
        return self.sources[0] if len(self.sources) == 1 else ",".join(map(str, self.sources))

    @property
    def device(self) -> torch.device:
        return model_device(self.network)

    @property
    def contract(self) -> dict[str, Any]:
        return contract_of(self.kind, self.config.to_dict(), self.meta)

    @property
    def template(self) -> FaceTemplate | None:
        """The face template the input contract names; None for centre-cropped faces."""
        return template_from_json(self.meta.get("input", {}).get("alignment"))

    @functools.cached_property
    def model_id(self) -> str:
        """A gallery's model identity: the sha256 of the checkpoint file."""
        return sha256(Path(self.source))


Network = nn.Module | LoadedModel


def as_network(model: Network) -> nn.Module:
    """The module that runs: a loaded model's, or a (training) network itself."""
    return model.network if isinstance(model, LoadedModel) else model


def model_device(model: Network) -> torch.device:
    """Where a network runs: its parameters' device (CPU for an ONNX Runtime twin)."""
    first = next(as_network(model).parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def contract_of(kind: str, config: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a network of a checkpoint takes, from its header: SR generators their channels,
    scale, training HR size and the face framing; classifiers their channels, input size and
    classes; embedders their input and crop sizes, framing and verification τ."""
    framing = (meta.get("input", {}).get("alignment") or {}).get("name", "centre-crop")
    if kind == SR:
        hr_size = meta.get("data", {}).get("hr_size", 32 * config["scale"])
        return {
            "channels": config["channels"],
            "scale": config["scale"],
            "hr_size": hr_size,
            "framing": framing,
        }
    if kind == CLASSIFIER:
        return {"channels": config["in_channels"], "input_size": config["input_size"],
                "classes": list(class_names(config["num_classes"]))}  # fmt: skip
    if kind == EMBEDDER:
        crop = meta.get("input", {}).get("crop_size", meta.get("train_args", {}).get("size", 128))
        tau = meta.get("threshold", meta.get("metrics", {}).get("val_threshold"))
        return {
            "input_size": config["input_size"],
            "crop_size": int(crop),
            "framing": framing,
            "threshold": tau,
        }
    if kind in (VERIFY_HEAD, FEATURE_SR):
        trained_with = Path(meta.get("identity_embedder", {}).get("path", "?")).name
        size = {"dim": config["dim"]} if kind == VERIFY_HEAD else {"branch": config["branch"]}
        return {**size, "embedder": trained_with}
    return {}


# ---------------------------------------------------------------------------------- loading
def load_network(
    weights: Path | None, kind: str | tuple[str, ...], device: torch.device | None = None,
    role: Weights | None = None,
) -> LoadedModel:  # fmt: skip
    """A trained network of `kind` (or of one of several kinds) from `weights` (or `role`'s
    shipped file), eval mode, as trained (no re-parameterisation)."""
    if role is not None:
        path = role.resolve(weights)
    elif weights is not None:
        path = weights_file(weights)
    else:
        raise SrferError("no weights file given")
    entry = entry_for(path)
    if entry is not None:
        check_shipped(path, entry)
    ckpt = load_checkpoint(path, expect_kind=kind)
    network = build_model(ckpt.kind, ckpt.config)
    try:
        network.load_state_dict({k: v.float() for k, v in ckpt.section("model").items()})
    except RuntimeError as exc:
        raise SrferError(f"{path}: weights do not match their config ({str(exc)[:160]})") from None
    network = network.eval().to(device or torch.device("cpu"))
    return LoadedModel(network, (path,), ckpt.kind, ckpt.meta, entry)


def _ready(model: LoadedModel, runtime: str, deploy: bool = True, side: int | None = None) -> LoadedModel:
    """`model` channels-last, re-parameterised where `deploys` says, on its runtime."""
    network = model.network.to(memory_format=torch.channels_last)
    device = model_device(network)
    if deploy and deploys(runtime, device):
        network = deploy_generator(network) if model.kind == SR else switch_to_cpu_deploy(network)
    model.network = on_runtime(network, runtime, device, model.sources[0], model.meta, side)
    return model


def load_generator(
    weights: Path | None = None, device: torch.device | None = None, role: Weights = Weights.SR,
    runtime: str = "torch",
) -> LoadedModel:  # fmt: skip
    """The SR generator from `weights` (or `role`'s shipped file); `runtime` torch or onnx."""
    return _ready(load_network(weights, SR, device, role), runtime)


def load_classifier(
    weights: Path | None, device: torch.device, role: Weights = Weights.FER, runtime: str = "torch"
) -> LoadedModel:
    """A trained expression classifier (default: `role`'s shipped file, answering with flip TTA
    where its entry says). `weights` "a,b,c" (several files, comma-separated) loads an ensemble
    averaging their probabilities; named files answer without flip (`eval-fer --flip-tta`'s
    choice)."""
    paths = ensemble_paths(weights)
    members = [_ready(load_network(path, CLASSIFIER, device, role), runtime) for path in paths]
    flip = weights is None and role.entry.flip_tta
    if len(members) == 1:
        model = members[0]
        if flip:
            model.network = FlipAveraged(model.network)
        return model
    try:
        ensemble = ClassifierEnsemble([m.network for m in members])
    except ValueError as exc:
        raise SrferError(f"{weights}: {exc}") from None
    sources = tuple(m.sources[0] for m in members)
    return LoadedModel(ensemble, sources, CLASSIFIER, {"ensemble": [dict(m.meta) for m in members]})


def ensemble_paths(weights: Path | None) -> list[Path | None]:
    """`weights` as the files it names: one, or several comma-separated (a path that exists
    as written is one file, commas and all)."""
    if weights is None or Path(weights).exists() or "," not in str(weights):
        return [weights]
    return [Path(p.strip()) for p in str(weights).split(",") if p.strip()]


def load_embedder(
    weights: Path | None, device: torch.device, runtime: str = "torch", deploy: bool = True,
    role: Weights = Weights.EMBED,
) -> LoadedModel:  # fmt: skip
    """The embedder from `weights` (or `role`'s shipped file); `deploy=False` keeps the trained
    form (a network that will be moved or trained from)."""
    model = load_network(weights, EMBEDDER, device, role)
    return _ready(model, runtime, deploy, side=model.contract["crop_size"])


def deploys(runtime: str, device: torch.device) -> bool:
    """Whether inference re-parameterises its networks: with torch on the CPU, where it was
    measured (elsewhere a network runs as trained)."""
    return runtime == "torch" and device.type == "cpu"


# ------------------------------------------------------------------------------- embedders
def embedder_threshold(model: LoadedModel) -> float:
    """τ from evaluation when one was written, else the training validation's τ."""
    tau = model.contract["threshold"]
    if tau is None:
        raise SrferError(f"{model.source}: no verification threshold stored; pass --threshold")
    return float(tau)


def load_verify_head(
    embedder: LoadedModel, device: torch.device, weights: Path | None = None, how: str = "learned"
) -> LoadedModel | None:
    """The learned verification head (`srfer.models.verify_head`) `how` asks for: `tau` none;
    `learned` the given or shipped head, refused when it was made for another embedder (a head
    scores the embeddings of the network it was trained on); `auto` the given head, else the
    shipped one when it was made for `embedder`, else none (τ decides)."""
    if how not in HEAD_CHOICES:
        raise SrferError(f"--head {how!r}: use one of {', '.join(HEAD_CHOICES)}")
    if how == "tau":
        return None
    found = Weights.VERIFY_HEAD.optional(weights)
    if found is None:
        if how == "learned":
            raise SrferError(f"--head learned: {Weights.VERIFY_HEAD.missing_note()}")
        return None
    explicit = weights is not None or how == "learned"
    instead = "use --head tau or train one"
    return _for_embedder(found, VERIFY_HEAD, embedder, device, explicit, "verification head", instead)


def _for_embedder(
    path: Path,
    kind: str,
    embedder: LoadedModel,
    device: torch.device,
    explicit: bool,
    what: str,
    instead: str,
) -> LoadedModel | None:
    """A head or feature SR (`kind`) from `path` when it was trained with `embedder`; else None,
    or, when it was asked for by name (`explicit`), a one-line refusal."""
    model = load_network(path, kind, device)
    if made_for(model.meta) == embedder.model_id:
        return model
    if not explicit:
        return None
    theirs = str(made_for(model.meta))[:12]
    raise SrferError(f"{model.source}: this {what} was trained with another embedder (sha256 {theirs}…, "
                     f"not {embedder.source}); {instead}")  # fmt: skip


def made_for(meta: Mapping[str, Any]) -> str | None:
    """The sha256 of the embedder a head, feature SR or identity-aware SR was trained with, from
    its header's `meta` (`identity_embedder`)."""
    return meta.get("identity_embedder", {}).get("sha256")


def optional_file(role: Weights, weights: Path | None, flag: str) -> tuple[Path | None, str | None]:
    """The file of an optional network `weights` names (None: the shipped one), or None and why:
    "none" leaves it out on request (`flag none`), and the shipped file may be missing."""
    if weights is not None and str(weights) == "none":
        return None, f"left out ({flag} none)"
    found = role.optional(weights)
    return (found, None) if found is not None else (None, role.missing_note())


def load_feature_sr(
    embedder: LoadedModel, weights: Path | None, device: torch.device, explicit: bool = True
) -> LoadedModel | None:
    """`embedder` with the trained feature SR of `weights` (or the shipped one) at its branch
    point (`srfer.models.feature_sr`): faces in, embeddings out, as the embedder. A generator
    works inside the recogniser it was trained in; one trained in another is refused, or with
    `explicit` False (the shipped one, offered where it fits) answers None."""
    instead = "train one with srfer train-feature-sr"
    path = Weights.FEATURE_SR.resolve(weights)
    fsr = _for_embedder(path, FEATURE_SR, embedder, device, explicit, "feature SR", instead)
    if fsr is None:
        return None
    if deploys("torch", device):
        fsr.network = switch_to_cpu_deploy(fsr.network)
    try:
        whole = FeatureSREmbedder(embedder.network, fsr.network)
    except ValueError as exc:
        raise SrferError(f"{fsr.source}: {exc}") from None
    return LoadedModel(whole, fsr.sources, EMBEDDER, embedder.meta)


def embedder_aligner(model: LoadedModel, size: int | None = None) -> FaceAligner | None:
    """A `FaceAligner` onto the embedder's template at `size` (default: its crop size); None for
    a centre-crop embedder. MTCNN runs where the embedder does."""
    template = model.template
    if template is None:
        return None
    return FaceAligner(size or model.contract["crop_size"], template, device=model.device)
