"""Run networks on tensors: super-resolve, restore low-resolution batches, and turn a loader of
faces into expression probabilities or embeddings. Training validation, the evaluations and
`predict` share these; they take a `LoadedModel` or a bare (training) network alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from srfer.core.errors import SrferError
from srfer.core.runtime import amp_dtype, autocast
from srfer.core.weights import Weights
from srfer.data.degradations import LowResPath, bicubic_resize, to_signed, to_unit
from srfer.infer.load import LoadedModel, Network, as_network, load_generator, model_device
from srfer.models.fer_ensemble import FlipAveraged


@dataclass
class RunContext:
    """Where a network runs and in which autocast precision (None: fp32)."""

    device: torch.device
    dtype: torch.dtype | None

    def autocast(self):
        return autocast(self.device, self.dtype)


def inference_context(device: torch.device) -> RunContext:
    """Inference precision for `device`: bf16 on CUDA, fp32 on CPU (see `amp_dtype`)."""
    return RunContext(device, amp_dtype(device))


# ------------------------------------------------------------------------- super-resolution
_AUTO = object()


@torch.no_grad()
def super_resolve(
    generator: Network, images01: torch.Tensor, dtype=_AUTO, flip_tta: bool = False
) -> torch.Tensor:
    """(N, C, h, w) in [0, 1] → (N, C, h·s, w·s) in [0, 1]; bf16 on CUDA unless `dtype` says.

    `flip_tta` averages the result with that of the mirrored face (a ×2 self-ensemble, as in
    EDSR's "+" but with the one symmetry faces have: no rotations, which training never saw)."""
    network, device = as_network(generator), model_device(generator)
    x = to_signed(images01.to(device)).contiguous(memory_format=torch.channels_last)
    dtype = amp_dtype(device) if dtype is _AUTO else dtype
    with autocast(device, dtype):
        out = network(x).float()
        if flip_tta:
            out = (out + network(x.flip(-1)).float().flip(-1)) / 2
    return to_unit(out)


def bicubic_baseline(lr: torch.Tensor, hr_size: tuple[int, int]) -> torch.Tensor:
    """LR in [-1, 1] → bicubic upscale in [0, 1] (the baseline every SR number is against)."""
    return bicubic_resize(to_unit(lr), hr_size)


class Restorer:
    """LR batch in [0, 1] → restored batch: a frozen SR generator (gray ↔ RGB adapted), or
    without one the identity (`degrade_and_restore` then resizes back bicubically)."""

    def __init__(self, generator: LoadedModel | None = None) -> None:
        self.generator = generator
        if generator is not None:
            generator.network.requires_grad_(False)

    @property
    def source(self) -> Path | str | None:
        return self.generator.source if self.generator is not None else None

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        if self.generator is None:
            return lr
        channels, theirs = lr.shape[1], self.generator.config.channels
        if theirs == 3 and channels == 1:
            return super_resolve(self.generator, lr.expand(-1, 3, -1, -1)).mean(1, keepdim=True)
        if theirs == 1 and channels == 3:
            return super_resolve(self.generator, lr.mean(1, keepdim=True)).expand(-1, 3, -1, -1)
        return super_resolve(self.generator, lr)


def make_restorer(
    upscaler: str, device: torch.device, sr_weights: Path | None = None, role: Weights = Weights.SR_FER,
    runtime: str = "torch",
) -> Restorer:  # fmt: skip
    """`bicubic` (the identity here) or `sr` (`sr_weights`, or `role`'s shipped generator)."""
    if upscaler == "bicubic":
        return Restorer()
    if upscaler != "sr":
        raise SrferError(f"unknown --upscaler {upscaler!r}; use sr or bicubic")
    return Restorer(load_generator(sr_weights, device, role, runtime))


# ------------------------------------------------------------------ recognisers over loaders
def predict_probs(
    model: Network,
    loader: DataLoader,
    ctx: RunContext,
    low_res: LowResPath | None = None,
    flip_tta: bool = False,
    step: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and labels over a loader (model in eval mode, no grad).
    `flip_tta` averages them with the mirrored face's (training flips faces too); `step`
    picks the size of a several-size `low_res` (as a training step would)."""
    network = as_network(model)
    classifier = FlipAveraged(network) if flip_tta else network
    probs, labels = [], []
    for logits, batch in _answers(classifier, loader, ctx, low_res, step):
        probs.append(logits.softmax(1).cpu())
        labels.append(batch["label"])
    return torch.cat(probs), torch.cat(labels)


def embed_all(
    model: Network, loader: DataLoader, ctx: RunContext, low_res: LowResPath | None = None, step: int = 0
) -> torch.Tensor:
    """Embeddings of every image a loader yields, in order (eval mode, no grad)."""
    return torch.cat([out.cpu() for out, _ in _answers(as_network(model), loader, ctx, low_res, step)])


def _answers(
    network: nn.Module, loader: DataLoader, ctx: RunContext, low_res: LowResPath | None, step: int
) -> Iterator[tuple[torch.Tensor, dict]]:
    """The network's float answer to each batch's images (degraded by `low_res` first) and the
    batch; eval mode, no grad."""
    network.eval()
    with torch.no_grad():
        for batch in loader:
            x = batch["image"].to(ctx.device)
            if low_res is not None:
                x = low_res(x, step)
            with ctx.autocast():
                out = network(x).float()
            yield out, batch


def pair_distances(
    embeddings: torch.Tensor, pairs: list[tuple[int, int, bool]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared L2 distance of each (a, b, same) pair, and the `same` flags."""
    a = torch.tensor([p[0] for p in pairs])
    b = torch.tensor([p[1] for p in pairs])
    same = torch.tensor([p[2] for p in pairs])
    return (embeddings[a] - embeddings[b]).pow(2).sum(1), same
