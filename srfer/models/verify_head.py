"""A learned verification head: whether two face embeddings are the same person.

DeepFace (Taigman et al., CVPR 2014, §4.2) scores a pair of its features with a logistic unit
on a weighted χ² similarity or on |f1 − f2| (the Siamese metric) instead of thresholding a
distance. Here the pair's two faces' sizes join the features, so the decision moves where a
face is small: a genuine pair with a 16 px probe lies further apart than one at full size, which
one fixed τ cannot follow.

Features of a pair, symmetric in its two faces:
- (`per_dim`) |f1 − f2| (D values) and the χ² terms (f1 − f2)² / (|f1| + |f2|) (D values; DeepFace's χ² is
  on non-negative features, these embeddings are signed, so the denominator takes magnitudes);
- the squared L2 distance d, the quantity τ thresholds;
- the smaller and the larger face's size, each as hat functions in log size at the `knots` (the
  sizes the head was trained at), and d times each: a logistic unit then has its own cut on d at
  every knot's size, interpolated between them (one linear term in size cannot: the cut moves
  little from full size to 32 px and fast below; a knot without training pairs would have no
  cut at all, so the knots are the trained sizes).
They are standardised with the training pairs' mean and spread (buffers, saved with the head),
then a logistic unit (`hidden` 0) or a one-hidden-layer MLP gives the logit.

Shapes: f1, f2 (N, D) L2-normalised embeddings; px1, px2 (N,) face sizes in px → (N,) logits
(> 0: the same person).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class VerifyHeadConfig:
    dim: int = 128  # the embedder's embedding size
    hidden: int = 0  # 0: a logistic unit; else one hidden layer of this width
    per_dim: bool = False  # also |f1 − f2| per dimension (else only d and the sizes: a size-dependent τ)
    chi2: bool = True  # with per_dim, the χ² terms beside |f1 − f2|
    sizes: bool = True  # the faces' sizes (as hat functions at `knots`) and d times each
    knots: tuple[int, ...] = (128, 32, 24, 16, 12)  # face sizes in px: the sizes trained at, full size first

    def __post_init__(self) -> None:
        self.knots = tuple(sorted(self.knots, reverse=True))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def features(self) -> int:
        per_dim = self.dim * (2 if self.chi2 else 1) if self.per_dim else 0
        return per_dim + 1 + (4 * len(self.knots) if self.sizes else 0)


def hats(px: torch.Tensor, knots: tuple[int, ...]) -> torch.Tensor:
    """(N,) face sizes in px → (N, K) piecewise-linear hat functions in log size at the K `knots`
    (each row sums to 1; sizes beyond the largest or smallest knot count as that knot): a size
    encoding in which every knot's size gets its own cut on d, interpolated between knots."""
    if len(knots) == 1:
        return torch.ones(len(px), 1, device=px.device)
    u = px.float().clamp(min(knots), max(knots)).log()[:, None]
    c = torch.tensor([math.log(k) for k in sorted(knots)], device=px.device)  # ascending
    left = torch.cat([c.new_full((1,), -math.inf), c[:-1]])
    right = torch.cat([c[1:], c.new_full((1,), math.inf)])
    rising = ((u - left) / (c - left)).nan_to_num(1.0)
    falling = ((right - u) / (right - c)).nan_to_num(1.0)
    weights = torch.minimum(rising, falling).clamp(0, 1)  # ascending knots
    return weights.flip(1)  # in `knots`' order: largest first


class VerifyHead(nn.Module):
    kind = "verify-head"

    def __init__(self, config: VerifyHeadConfig) -> None:
        super().__init__()
        self.config = config
        n = config.features
        self.register_buffer("shift", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))
        layers: list[nn.Module] = [nn.Linear(n, config.hidden), nn.ReLU()] if config.hidden else []
        self.classifier = nn.Sequential(*layers, nn.Linear(config.hidden or n, 1))

    def pair_features(
        self, f1: torch.Tensor, f2: torch.Tensor, px1: torch.Tensor, px2: torch.Tensor
    ) -> torch.Tensor:
        """The raw (unstandardised) features of each pair, (N, features)."""
        c = self.config
        diff = f1.float() - f2.float()
        d = diff.square().sum(1, keepdim=True)
        parts = [diff.abs()] if c.per_dim else []
        if c.per_dim and c.chi2:
            parts.append(diff.square() / (f1.float().abs() + f2.float().abs()).clamp_min(1e-6))
        parts.append(d)
        if c.sizes:
            p1, p2 = px1.to(f1.device), px2.to(f1.device)
            small, large = hats(torch.minimum(p1, p2), c.knots), hats(torch.maximum(p1, p2), c.knots)
            parts += [small, large, d * small, d * large]
        return torch.cat(parts, 1)

    @torch.no_grad()
    def fit_standardisation(self, features: torch.Tensor) -> None:
        """Centre and scale the features by these (the training pairs') statistics."""
        self.shift.copy_(features.mean(0))
        self.scale.copy_(features.std(0).clamp_min(1e-6))

    def forward(
        self, f1: torch.Tensor, f2: torch.Tensor, px1: torch.Tensor, px2: torch.Tensor
    ) -> torch.Tensor:
        x = (self.pair_features(f1, f2, px1, px2) - self.shift) / self.scale
        return self.classifier(x).squeeze(1)
