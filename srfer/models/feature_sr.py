"""Feature-level super-resolution: restore a small face's *feature maps* inside the face
recogniser instead of its pixels.

The low-resolution FER design's "fsrg/fsrd" (a generator and a discriminator on features), as
in feature-level SR for low-resolution face recognition (e.g. Tan et al.'s FSR; Wang et al.,
"Low resolution face recognition using feature super-resolution"): the small face is resized
to the recogniser's input bicubically, the recogniser's trunk runs up to a branch point, a small
residual generator maps those maps towards the maps the same face gives at full size, and the
rest of the trunk runs unchanged. No high-resolution image is made, so it costs a fraction of a
pixel SR.

`FeatureSR`: conv 3×3 (C → width) → `blocks` residual blocks (conv-ReLU-conv + identity) →
conv 3×3 (width → C), added to its input; the last convolution starts at zero, so an untrained
generator is the identity (the recogniser as it was). Shapes: (N, C, H, W) → (N, C, H, W).

`FeatureSREmbedder`: a dlib ResNet-29 `Embedder` with a `FeatureSR` after stage `branch`
(1: 32 × 35², 2: 64 × 17², 3: 128 × 8², 4: 256 × 4² at 150 px): (N, 3, S, S) in [0, 1] → (N, dim)
unit vectors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srfer.models.dlib_resnet import DlibResNet29


@dataclass
class FeatureSRConfig:
    branch: int = 1  # after which stage of the recogniser's trunk
    channels: int = 32  # the trunk's width there (dlib ResNet-29: 32, 64, 128, 256 after stages 1-4)
    width: int = 64
    blocks: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class FeatureSR(nn.Module):
    """Maps of a restored small face → maps like the full-size face's (see the module docstring)."""

    kind = "feature-sr"

    def __init__(self, config: FeatureSRConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FeatureSRConfig()
        self.head = nn.Conv2d(config.channels, config.width, 3, padding=1)
        self.body = nn.Sequential(*(_Block(config.width) for _ in range(config.blocks)))
        self.tail = nn.Conv2d(config.width, config.channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps + self.tail(self.body(F.relu(self.head(maps))))


def split_trunk(embedder: nn.Module, branch: int) -> tuple[nn.Module, nn.Module]:
    """A dlib ResNet-29 embedder as (up to stage `branch`, the rest): prefix(x01) → maps,
    rest(maps) → unit embedding; together they are the embedder."""
    backbone = getattr(embedder, "backbone", None)
    if not isinstance(backbone, DlibResNet29):
        raise ValueError("feature SR needs a dlib-resnet29 embedder")
    if not 1 <= branch <= len(backbone.stages):
        raise ValueError(f"branch {branch}: the trunk has stages 1 to {len(backbone.stages)}")
    return _Prefix(embedder, branch), _Rest(backbone, branch)


def branch_channels(embedder: nn.Module, branch: int) -> int:
    """The trunk's width after stage `branch` (what a `FeatureSR` there takes)."""
    split_trunk(embedder, branch)  # checks the embedder and the branch
    return embedder.backbone.config.widths[branch - 1]


class _Prefix(nn.Module):
    def __init__(self, embedder: nn.Module, branch: int) -> None:
        super().__init__()
        self.embedder, self.branch = embedder, branch

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        b = self.embedder.backbone
        return b.run_stages(b.stem_maps(self.embedder.prepare(x01)), 0, self.branch)


class _Rest(nn.Module):
    def __init__(self, backbone: DlibResNet29, branch: int) -> None:
        super().__init__()
        self.backbone, self.branch = backbone, branch

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        maps = b.run_stages(maps, self.branch)
        return F.normalize(b.fc(b.down_out(maps).mean((2, 3))).float(), dim=1)


class FeatureSREmbedder(nn.Module):
    """The embedder with `fsr` at its branch point: what the feature-SR route embeds with."""

    kind = "face-embedder"

    def __init__(self, embedder: nn.Module, fsr: FeatureSR) -> None:
        super().__init__()
        self.prefix, self.rest = split_trunk(embedder, fsr.config.branch)
        if branch_channels(embedder, fsr.config.branch) != fsr.config.channels:
            raise ValueError(
                f"the generator takes {fsr.config.channels} channels, the trunk has others there"
            )
        self.fsr, self.config = fsr, embedder.config

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.rest(self.fsr(self.prefix(x01)))
