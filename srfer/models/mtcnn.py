"""MTCNN's three networks: P-Net, R-Net and O-Net.

Source: Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks" (IEEE SPL 2016), figure 2. Weights: the ones facenet-pytorch 2.5.3
ships in its wheel (`facenet_pytorch/data/{pnet,rnet,onet}.pt`, ported from the authors'
Caffe models; MIT licence), read as plain state dicts (`weights_only=True`) without importing
facenet-pytorch: its package imports torchvision, whose ops import torch._dynamo, which made
every process start 2.5 s slower here. Layer names follow facenet-pytorch's so its files load.

Shapes (inputs normalised as (pixel − 127.5) / 128):
- P-Net: (N, 3, H, W), H, W ≥ 12 → box offsets (N, 4, h, w), face probabilities (N, 2, h, w)
  with h = ⌈(H − 2) / 2⌉ − 4 (one cell per 12 px window, stride 2).
- R-Net: (N, 3, 24, 24) → offsets (N, 4), probabilities (N, 2).
- O-Net: (N, 3, 48, 48) → offsets (N, 4), landmarks (N, 10: five x then five y, fractions of
  the window), probabilities (N, 2).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srfer.errors import SrferError


class CeilMaxPool2x2(nn.Module):
    """`nn.MaxPool2d(2, 2, ceil_mode=True)` as the maximum of the four stride-2 views of its
    input (an odd last row or column padded with −inf): the same values, without the index
    map PyTorch's CPU kernel computes too. On P-Net's first pyramid level (10 × 958 × 638,
    channels-last, one thread) 4.3 vs 13.6 ms. (Its 3×3 pools measured slower this way.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        odd_h, odd_w = x.shape[-2] % 2, x.shape[-1] % 2
        if odd_h or odd_w:
            x = F.pad(x, (0, odd_w, 0, odd_h), value=float("-inf"))
        top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
        return torch.maximum(top, torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


def _conv(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel), nn.PReLU(c_out)]


class PNet(nn.Module):
    """Proposal net: fully convolutional, a face/non-face score and a box per 12 px window."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 10, 3)
        self.pool1 = CeilMaxPool2x2()
        self.conv2, self.prelu2 = _conv(10, 16, 3)
        self.conv3, self.prelu3 = _conv(16, 32, 3)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(1)


class RNet(nn.Module):
    """Refine net: 24 px windows → face score and box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 28, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = _conv(28, 48, 3)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = _conv(48, 64, 2)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(caffe_flatten(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), self.dense5_1(x).softmax(1)


class ONet(nn.Module):
    """Output net: 48 px windows → face score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 32, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = _conv(32, 64, 3)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = _conv(64, 64, 3)
        self.pool3 = CeilMaxPool2x2()
        self.conv4, self.prelu4 = _conv(64, 128, 2)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(caffe_flatten(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(1)


def caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, W·H·C) in the order the ported dense weights expect."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


def pretrained_mtcnn() -> tuple[PNet, RNet, ONet]:
    """The three networks with facenet-pytorch's shipped weights, eval mode."""
    folder = _weights_folder()
    nets = (PNet(), RNet(), ONet())
    for net, name in zip(nets, ("pnet", "rnet", "onet"), strict=True):
        state = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        net.eval()
    return nets


def _weights_folder() -> Path:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise SrferError(
            "face detection needs facenet-pytorch's MTCNN weights: pip install facenet-pytorch==2.5.3"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"
