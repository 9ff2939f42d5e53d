"""What the size sweeps share: the sizes' check and the ×8 SR column."""

from __future__ import annotations

from pathlib import Path

import torch

from srfer.core.errors import SrferError
from srfer.core.weights import Weights
from srfer.infer.heads import IdentityRouteRestorer
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
    if weights is not None and str(weights) == "none":
        notes.append("no ×8 SR column: left out (--x8-weights none)")
        return {}
    path = Weights.SR_X8.optional(weights)
    if path is None:
        notes.append(f"no ×8 SR column: {Weights.SR_X8.missing_note()}")
        return {}
    return {"x8_sr": make_restorer("sr", device, path, role=Weights.SR_X8)}


def route_restorer(
    device: torch.device, sr: Path | None = None, x8: Path | None = None
) -> IdentityRouteRestorer:
    """Probes restored as `predict` routes them for the embedder: the ×4 SR (given or shipped)
    and the ×8 as the sweeps take it (`x8_column`: given, shipped, or "none")."""
    generators = {Weights.SR: make_restorer("sr", device, sr, role=Weights.SR).generator}
    x8_sr = x8_column(device, x8, []).get("x8_sr")
    if x8_sr is not None:
        generators[Weights.SR_X8] = x8_sr.generator
    return IdentityRouteRestorer(generators)
