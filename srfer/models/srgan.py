"""SRGAN generator (SRResNet) and discriminator.

Source: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network" (CVPR 2017), figure 4, as used by the srfer seed (CelebA faces,
32×32 → 128×128). Batch norm is left out of the residual blocks as in the seed.

Shapes (defaults): LR (N, 3, 32, 32) in [-1, 1] → SR (N, 3, 128, 128) in [-1, 1].
Fully convolutional: the same weights super-resolve 12→48 or 32→128 (any input size).
Optional (not in the seed, see `GeneratorConfig.bicubic_skip`): residual over bicubic.

`arch="rrdb"` swaps each residual block for ESRGAN's Residual-in-Residual Dense Block (Wang
et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCV 2018
workshops, figure 4: three 5-conv dense blocks with `growth` channels per conv, LeakyReLU 0.2,
residuals scaled by 0.2); head, PixelShuffle upsampling and tail stay SRResNet's so the two
arches differ only in the trunk. One RRDB costs about ten residual blocks.

`srfer.accel.sr_phases.deploy_generator` re-parameterises a trained generator for CPU inference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

GENERATOR_ARCHS = ("srresnet", "rrdb")
# ESRGAN's residual scaling and smaller initialisation (section 3.1): a deep trunk without
# batch norm stays stable
RESIDUAL_SCALE = 0.2
DENSE_INIT_GAIN = 0.1


@dataclass
class GeneratorConfig:
    channels: int = 3  # image channels: 3 (RGB) or 1 (grayscale)
    features: int = 64
    blocks: int = 16
    scale: int = 4  # 2, 4 or 8: one PixelShuffle(2) step per factor of two
    # Not in the seed: learn only the residual over a bicubic upscale of the input
    # (VDSR-style global skip, tail zero-initialised). It starts at bicubic quality and
    # converges in far fewer steps, which is what a CPU-only training budget needs.
    bicubic_skip: bool = False
    arch: str = "srresnet"  # trunk blocks: "srresnet" (residual) or "rrdb" (ESRGAN's RRDB)
    growth: int = 32  # rrdb: channels each dense-block conv adds

    def __post_init__(self) -> None:
        if self.arch not in GENERATOR_ARCHS:
            raise ValueError(f"arch must be one of {', '.join(GENERATOR_ARCHS)}, got {self.arch!r}")
        if self.scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8, got {self.scale}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualBlock(nn.Module):
    """3×3 conv → PReLU → 3×3 conv, plus the identity (no batch norm, as in the seed)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1),
            nn.PReLU(features),
            nn.Conv2d(features, features, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block: 5 3×3 convs, each seeing the input and all earlier
    outputs (growth channels each), LeakyReLU 0.2 after the first four; out = x + 0.2·conv5."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        widths = [features + i * growth for i in range(5)]
        self.convs = nn.ModuleList(
            nn.Conv2d(w, growth if i < 4 else features, 3, padding=1) for i, w in enumerate(widths)
        )
        self.act = nn.LeakyReLU(0.2, inplace=True)
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(DENSE_INIT_GAIN)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = [x]
        for conv in self.convs[:-1]:
            seen.append(self.act(conv(torch.cat(seen, 1))))
        return x + RESIDUAL_SCALE * self.convs[-1](torch.cat(seen, 1))


class RRDB(nn.Module):
    """Residual in residual: three dense blocks, their sum scaled by 0.2 onto the input."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(DenseBlock(features, growth) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.body(x)


class UpsampleBlock(nn.Module):
    """×2 sub-pixel step: 3×3 conv to 4× channels → PixelShuffle(2) → PReLU."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(features, features * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class Generator(nn.Module):
    """SRResNet: head 9×9 → residual (or RRDB) trunk + global skip → log2(scale) ×2 steps → 9×9 → tanh."""

    kind = "sr-generator"

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeneratorConfig()
        f = config.features
        self.head = nn.Sequential(nn.Conv2d(config.channels, f, 9, padding=4), nn.PReLU(f))
        self.trunk = nn.Sequential(*(self._block(config) for _ in range(config.blocks)))
        self.trunk_tail = nn.Conv2d(f, f, 3, padding=1)
        self.upsample = nn.Sequential(*(UpsampleBlock(f) for _ in range(int(math.log2(config.scale)))))
        self.tail = nn.Conv2d(f, config.channels, 9, padding=4)
        if config.bicubic_skip:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    @staticmethod
    def _block(config: GeneratorConfig) -> nn.Module:
        if config.arch == "rrdb":
            return RRDB(config.features, config.growth)
        return ResidualBlock(config.features)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        shallow = self.head(lr)
        deep = self.trunk_tail(self.trunk(shallow)) + shallow
        residual = self.tail(self.upsample(deep))
        if not self.config.bicubic_skip:
            return torch.tanh(residual)
        base = F.interpolate(lr, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        out = base + residual
        return out if self.training else out.clamp(-1, 1)  # no clamp gradient dead zone in training


@dataclass
class DiscriminatorConfig:
    channels: int = 3
    features: int = 64
    pooled: int = 4  # adaptive pooling to pooled×pooled makes the head size-agnostic
    hidden: int = 1024

    def to_dict(self) -> dict:
        return asdict(self)


def _disc_block(c_in: int, c_out: int, stride: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """8 conv layers (64, 64, 128, 128, 256, 256, 512, 512; strides 1, 2, 1, 2, …),
    LeakyReLU(0.2), BN after all but the first → adaptive avg pool → dense 1024 → 1 logit.

    Shapes: (N, C, H, W) in [-1, 1], any H, W ≥ 16 → (N,) logits (real > 0).
    """

    kind = "sr-discriminator"

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        f = config.features
        widths = [f, f, 2 * f, 2 * f, 4 * f, 4 * f, 8 * f, 8 * f]
        blocks, c_in = [], config.channels
        for i, width in enumerate(widths):
            blocks.append(_disc_block(c_in, width, stride=1 + i % 2, norm=i > 0))
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(config.pooled),
            nn.Flatten(),
            nn.Linear(c_in * config.pooled**2, config.hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(config.hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate activations after each stride-2 block (a perceptual backbone)."""
        maps = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i % 2 == 1:
                maps.append(x)
        return maps
