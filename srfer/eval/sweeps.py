"""What the size sweeps share: the sizes' check, the ×8 and feature-SR columns, the route."""

from __future__ import annotations

from pathlib import Path

import torch

from srfer.core.errors import SrferError
from srfer.core.weights import Weights
from srfer.infer.heads import IdentityRouteRestorer
from srfer.infer.load import LoadedModel, load_feature_sr, optional_file
from srfer.infer.run import Restorer, make_restorer


def check_sweep_sizes(sizes: list[int], low: int, high: int) -> None:
    """Every size is checked before any work starts."""
    bad = [s for s in sizes if not low <= s <= high]
    if bad or not sizes:
        raise SrferError(f"--sweep sizes {bad or sizes}: use sizes between {low} and {high} px")


def column(name: str, how) -> str:
    """A sweep column's name: the restorer's, and the degradation's unless it is clean."""
    return name if how.name == "clean" else f"{name} ({how.name})"


def x8_column(device: torch.device, weights: Path | None, notes: list[str]) -> dict[str, Restorer]:
    """The sweeps' ×8 SR column (`x8_sr`): given, or shipped, or left out with a note
    (`weights` "none": left out on request; at large sizes it is the slowest column)."""
    path, why = optional_file(Weights.SR_X8, weights, "--x8-weights")
    if path is None:
        notes.append(f"no ×8 SR column: {why}")
        return {}
    return {"x8_sr": make_restorer("sr", device, path, role=Weights.SR_X8)}


def feature_sr_column(model: LoadedModel, device: torch.device, weights: Path | None, notes: list[str]):
    """The sweeps' feature-SR embedder: given, or shipped and made for `model`, or left out
    with a note (`weights` "none": on request)."""
    found, why = optional_file(Weights.FEATURE_SR, weights, "--feature-sr-weights")
    if found is None:
        notes.append(f"no feature_sr column: {why}")
        return None
    feature_sr = load_feature_sr(model, found, device, explicit=weights is not None)
    if feature_sr is None:
        notes.append("no feature_sr column: the shipped feature SR was trained in another embedder")
    return feature_sr


def route_restorer(
    embedder: LoadedModel, sr: Path | None = None, x8: Path | None = None, feature_sr: Path | None = None
) -> IdentityRouteRestorer:
    """Probes restored (and embedded) as `predict` routes them for `embedder`: the ×4 SR (given
    or shipped), the ×8 and the feature SR as the sweeps take them (`x8_column`,
    `feature_sr_column`: given, shipped, or "none")."""
    device = embedder.device
    generators = {Weights.SR: make_restorer("sr", device, sr, role=Weights.SR).generator}
    x8_sr = x8_column(device, x8, []).get("x8_sr")
    if x8_sr is not None:
        generators[Weights.SR_X8] = x8_sr.generator
    return IdentityRouteRestorer(generators, feature_sr_column(embedder, device, feature_sr, []))
