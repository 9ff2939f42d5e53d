"""Trained expression classifiers answering together: the flip-averaged classifier (test-time
augmentation with the mirror, the one symmetry faces have) and the ensemble of several.

Shapes: as the classifiers they wrap, (N, C, S, S) → (N, classes) log mean probabilities."""

from __future__ import annotations

import torch
from torch import nn


class FlipAveraged(nn.Module):
    """A classifier answering the mean of its probabilities on the face and on its mirror
    (flip test-time augmentation; training flips faces too), as log-probabilities so it reads
    as logits. `config` is the classifier's."""

    kind = "fer-classifier"

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        self.config = classifier.config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = self.classifier(torch.cat([x, x.flip(-1)])).float().softmax(1)
        return mean_probabilities_as_logits(both.view(2, len(x), -1))


class ClassifierEnsemble(nn.Module):
    """Several trained classifiers as one: the mean of their softmax probabilities, returned
    as its log so it reads as logits (softmax(log p̄) = p̄). The members must take the same
    input (size, channels) and answer the same classes; `config` is the first member's."""

    kind = "fer-classifier"

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        first = members[0].config
        for member in members[1:]:
            c = member.config
            if (c.input_size, c.in_channels, c.num_classes) != (first.input_size, first.in_channels,
                                                                 first.num_classes):  # fmt: skip
                raise ValueError("ensemble members differ in input size, channels or classes")
        self.members = nn.ModuleList(members)
        self.config = first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_probabilities_as_logits(torch.stack([m(x).float().softmax(1) for m in self.members]))


def mean_probabilities_as_logits(probs: torch.Tensor) -> torch.Tensor:
    """(K, N, C) probabilities → the log of their mean over K: logits whose softmax is the mean
    (how `ClassifierEnsemble` and `FlipAveraged` answer)."""
    return probs.mean(0).clamp_min(1e-12).log()
