"""One dlib ResNet-29 trunk for identity and expression: hard parameter sharing (Caruana,
"Multitask learning", 1997; the multi-task face design of srfer's seeds).

The face recogniser's stem and first N stages run once; its remaining stages make the
identity embedding, and an expression classifier trained with those N stages frozen
(`DlibFer` with `shared_stages` N, `srfer train-fer --shared-stages N`) continues from the
same maps with its own stages and head. Freezing the shared part is the limit of weighting
the identity loss infinitely: the embedding is the recogniser's, bit for bit, so verification
cannot move; only the expression branch learns.

Shapes: (N, 3, H, W) faces in [0, 1] (the embedder's aligned chip, resized to its 150 px
`INPUT_SIZE`) → the maps after stage N (64 × 17² after stage 2, 128 × 8² after stage 3) →
(N, 128) unit embeddings and (N, classes) expression logits.
"""

from __future__ import annotations

import torch
from torch import nn

from srfer.models.dlib_resnet import INPUT_SIZE
from srfer.models.feature_sr import split_trunk
from srfer.models.fer import DlibFer


class SharedTrunk(nn.Module):
    """An embedder and an expression classifier that shares its first stages."""

    def __init__(self, embedder: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        if not isinstance(classifier, DlibFer) or not classifier.config.shared_stages:
            raise ValueError("the expression classifier shares no stages with a recogniser")
        self.prefix, self.identity = split_trunk(embedder, classifier.config.shared_stages)
        if not same_maps(self.prefix, classifier):
            raise ValueError("the expression classifier's shared stages are not this embedder's")
        self.classifier = classifier

    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.prefix(x01)
        return self.identity(maps), self.classifier.from_maps(maps)


@torch.no_grad()
def same_maps(prefix: nn.Module, classifier: DlibFer) -> bool:
    """Whether the classifier's shared stages compute the recogniser's maps (checked on a fixed
    probe face, so a deployed recogniser, its affines folded away, passes too)."""
    device = next(classifier.parameters()).device
    probe = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0)).to(device)
    theirs, ours = prefix(probe).float(), classifier.shared_maps(probe).float()
    return theirs.shape == ours.shape and torch.allclose(theirs, ours, rtol=1e-3, atol=1e-4)
