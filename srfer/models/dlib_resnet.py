"""dlib's ResNet-29 face recogniser (`dlib_face_recognition_resnet_model_v1`), in torch.

Source: Davis E. King, dlib (dlib.net, `dnn_face_recognition_ex.cpp`): a ResNet-34 variant
with a few layers removed and half the filters, trained with a metric loss (pairs within
distance 0.6 are the same person) on ~3 M faces of 7,485 people; 99.38 % on LFW. dlib's
author released these weights into the public domain. The graph and tensor names follow
the TensorFlow.js port in @vladmandic/face-api 1.7.15 (MIT; `src/faceRecognitionNet/`),
whose weights `srfer convert-face-api` turns into a srfer checkpoint.

Every convolution is followed by dlib's `affine` layer (its frozen batch norm: a per-channel
scale and shift, `Affine` here). Layout, for a 150×150 input:

    conv 7×7/2 valid (3→32) + affine + ReLU          → 32 × 72 × 72
    max-pool 3×3/2 valid                             → 32 × 35 × 35
    3 residual blocks (32)                           → 32 × 35 × 35
    down block (32→64) + 3 residual blocks (64)      → 64 × 17 × 17
    down block (64→128) + 2 residual blocks (128)    → 128 × 8 × 8
    down block (128→256) + 2 residual blocks (256)   → 256 × 4 × 4
    down block (256→256)                             → 256 × 2 × 2
    global mean → linear 256→128 (no bias)           → 128

A down block's first 3×3 convolution has stride 2 and no padding; its shortcut is a 2×2
average pool of the input, zero-padded in channels when the width grows (dlib's
`avg_pool` + channel-padding add). Where the two branches differ by one pixel (4 → 1 vs
4 → 2 on the 8×8 map), the conv branch gets a zero row and column at its bottom and right,
as the port does.

Input contract: (N, 3, 150, 150) RGB, x·255 − mean RGB (122.782, 117.001, 104.298), then
/255 (`normalise`); faces aligned onto dlib's 150 px chip (see `srfer.faces.align`). Output:
(N, 128) descriptors (dlib compares them unnormalised; srfer's `Embedder` L2-normalises).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

MEAN_RGB = (122.782, 117.001, 104.298)  # subtracted from 0–255 pixels before /255
INPUT_SIZE = 150


@dataclass
class DlibResNetConfig:
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (3, 3, 2, 2)  # residual blocks per width, after its down block
    dim: int = 128

    def to_dict(self) -> dict:
        return asdict(self)


def normalise(x01: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] → the network's input: (255·x − mean RGB) / 255."""
    mean = torch.tensor(MEAN_RGB, device=x01.device, dtype=x01.dtype).view(1, 3, 1, 1) / 255
    return x01 - mean


class Affine(nn.Module):
    """dlib's `affine` layer: y = x·weight + bias per channel (batch norm folded at training end)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ConvAffine(nn.Module):
    """Convolution (with bias) → affine; the port's `convLayer` without its ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        padding = kernel // 2 if stride == 1 else 0  # TF "same" at stride 1, "valid" when striding
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding)
        self.scale = Affine(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(self.conv(x))

    @torch.no_grad()
    def fold_(self) -> None:
        """Move the affine into the convolution (same function): dlib's folded batch norm
        leaves kernels of ~4e-4 behind scales of ~11, where an Adam step of 1e-4 is a 25 %
        change of a kernel; folded, kernels are ~5e-3 and fine-tuning is stable."""
        a = self.scale.weight.detach().clone()
        self.conv.weight.mul_(a.view(-1, 1, 1, 1))
        self.conv.bias.mul_(a).add_(self.scale.bias)
        self.scale.weight.fill_(1.0)
        self.scale.bias.zero_()

    def switch_to_deploy(self) -> None:
        """For inference only (`srfer.accel.deploy`): the affine folded and dropped, one op fewer."""
        self.fold_()
        self.scale = nn.Identity()  # type: ignore[assignment]


class ResidualBlock(nn.Module):
    """conv-affine-ReLU → conv-affine, plus the identity, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvAffine(channels, channels, 3)
        self.conv2 = ConvAffine(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class DownBlock(nn.Module):
    """Stride-2 residual block; shortcut = 2×2 average pool, zero channels appended."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = ConvAffine(c_in, c_out, 3, stride=2)
        self.conv2 = ConvAffine(c_out, c_out, 3)
        self.extra_channels = c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2)
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        grow_h, grow_w = shortcut.shape[-2] - out.shape[-2], shortcut.shape[-1] - out.shape[-1]
        if grow_h or grow_w:
            out = F.pad(out, (0, grow_w, 0, grow_h))  # zeros at the right and bottom
        return F.relu(out + shortcut)


class DlibResNet29(nn.Module):
    """(N, 3, 150, 150) normalised RGB → (N, 128) face descriptors (see the module docstring)."""

    def __init__(self, config: DlibResNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DlibResNetConfig()
        w = config.widths
        self.stem = ConvAffine(3, w[0], 7, stride=2)
        stages: list[nn.Module] = []
        c_in = w[0]
        for i, (width, n_blocks) in enumerate(zip(w, config.blocks, strict=True)):
            down = [DownBlock(c_in, width)] if i > 0 else []
            stages.append(nn.Sequential(*down, *(ResidualBlock(width) for _ in range(n_blocks))))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.down_out = DownBlock(c_in, c_in)
        self.fc = nn.Linear(c_in, config.dim, bias=False)

    def fold_affines_(self) -> None:
        """Every affine moved into its convolution (`ConvAffine.fold_`): before fine-tuning."""
        fold_affines_(self)

    def stem_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised faces → the stem's pooled maps (32 × 35² at 150 px), what stage 1 takes."""
        return F.max_pool2d(F.relu(self.stem(x)), 3, 2)

    def run_stages(self, maps: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """`maps` through stages `start` to `stop` (0-based, end excluded): a trunk split at a
        stage (a shared or feature-SR branch point) runs its two parts with this."""
        for stage in self.stages[start:stop]:
            maps = stage(maps)
        return maps

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each width's output (32×35², 64×17², 128×8², 256×4² at 150 px): for perceptual losses."""
        maps, x = [], self.stem_maps(x)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down_out(self.feature_maps(x)[-1])
        return self.fc(x.mean((2, 3)))


def fold_affines_(network: nn.Module) -> None:
    """Every `ConvAffine` in `network` (a whole trunk or a part of one) folded (`ConvAffine.fold_`)."""
    for module in network.modules():
        if isinstance(module, ConvAffine):
            module.fold_()
