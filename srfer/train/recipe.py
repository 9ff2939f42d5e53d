"""What a stage gives the engine (`srfer.train.engine.Engine`): a `Recipe` with its networks,
optimizers, one training step and validation; and what a step is told (`StepContext`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from srfer.core.errors import SrferError
from srfer.infer.load import load_network
from srfer.infer.run import RunContext


@dataclass
class StepContext(RunContext):
    """Where and how a training step runs, and which step it is."""

    epoch: int = 0
    step: int = 0
    wrappers: dict[int, nn.Module] = field(default_factory=dict)  # id(network) → its DDP wrapper

    def synced(self, net: nn.Module) -> nn.Module:
        """`net` as a training step calls it: through its DistributedDataParallel wrapper under
        torchrun (gradients averaged over ranks in backward), else `net` itself."""
        return self.wrappers.get(id(net), net)


class Recipe(ABC):
    """What a stage gives the engine."""

    kind: str  # checkpoint kind of the primary network
    monitor: str  # validation metric that picks `best`
    monitor_mode: str = "max"

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Named networks; the first is the primary one, saved under `model.`."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    @abstractmethod
    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        """One optimisation step; returns scalar logs (the first is shown as `loss`)."""

    @abstractmethod
    def validate(self, loader: DataLoader, ctx: StepContext) -> dict[str, float]: ...

    def restart_epochs(self) -> list[int]:
        """Epochs where the cosine schedule restarts (e.g. when a new training phase begins)."""
        return [0]

    def on_epoch_end(self, epoch: int, history: list[dict[str, Any]], out_dir: Path) -> None:  # noqa: B027
        """Artefacts such as sample grids and curves; `history` holds every epoch's record."""

    def describe(self) -> dict[str, Any]:
        """Architecture/loss/data description stored in every checkpoint."""
        return {}


class SingleNetworkRecipe(Recipe):
    """A recipe with one network trained by one Adam optimizer (classifier, embedder)."""

    network_name = "model"

    def __init__(self, model: nn.Module, lr: float, param_groups: list[dict] | None = None) -> None:
        self.model = model  # `param_groups`: per-group learning rates (e.g. a pretrained trunk's)
        self.opt = torch.optim.Adam(param_groups if param_groups is not None else model.parameters(), lr=lr)

    def networks(self) -> dict[str, nn.Module]:
        return {self.network_name: self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {self.network_name: self.opt}


def start_from(network: nn.Module, weights: Path, kind: str) -> None:
    """Copy a trained network's weights into `network` (`--init`, fine-tuning): the file must
    hold a `kind` network built from the same config as this run's."""
    source = load_network(weights, kind)
    theirs, ours = source.config.to_dict(), network.config.to_dict()
    if theirs != ours:
        differ = ", ".join(f"{k} {theirs.get(k)}≠{ours.get(k)}" for k in ours if theirs.get(k) != ours[k])
        raise SrferError(f"--init {weights}: its network differs from this run's ({differ}); match options")
    network.load_state_dict(source.network.state_dict())
