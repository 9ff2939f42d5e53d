"""MTCNN's three networks: P-Net, R-Net and O-Net.

Source: Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks" (IEEE SPL 2016), figure 2. Weights: the ones facenet-pytorch 2.5.3
ships in its wheel (`facenet_pytorch/data/{pnet,rnet,onet}.pt`, ported from the authors'
Caffe models; MIT licence), read as plain state dicts (`weights_only=True`) without importing
facenet-pytorch: its package imports torchvision, whose ops import torch._dynamo, which slows
every process start by seconds (docs/performance.md). Layer names follow facenet-pytorch's so its files load
(P-Net's two heads, stored apart there, are one `conv4` here: `merge_pnet_heads`).

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

from srfer.core.errors import SrferError


class CeilMaxPool(nn.Module):
    """`nn.MaxPool2d(kernel, 2, ceil_mode=True)`, the same values, computed separably: the
    maximum of `kernel` stride-2 row views, then of `kernel` column views, written into
    preallocated outputs (a partial last window is its own small maximum, so nothing is
    padded). PyTorch's CPU kernel also builds the index map and vectorises poorly over few
    channels in channels-last (docs/performance.md). Tensors under SMALL values (or smaller
    than a window) keep PyTorch's kernel: its fixed cost is lower."""

    SMALL = 32768

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() < self.SMALL or min(x.shape[-2:]) < self.kernel:
            return F.max_pool2d(x, self.kernel, 2, ceil_mode=True)
        return _max_along(_max_along(x, 2, self.kernel), 3, self.kernel)


def _max_along(x: torch.Tensor, dim: int, kernel: int) -> torch.Tensor:
    """Ceil-mode max-pooling with stride 2 along one spatial `dim`; the input's memory format."""
    size = x.shape[dim]
    cells, whole = -(-(size - kernel) // 2) + 1, (size - kernel) // 2 + 1  # all; fully inside
    shape = list(x.shape)
    shape[dim] = cells
    last = x.is_contiguous(memory_format=torch.channels_last)
    layout = torch.channels_last if last else torch.contiguous_format
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=layout)
    body = out.narrow(dim, 0, whole)
    torch.maximum(_every_other(x, dim, 0, whole), _every_other(x, dim, 1, whole), out=body)
    for offset in range(2, kernel):
        torch.maximum(body, _every_other(x, dim, offset, whole), out=body)
    if cells > whole:  # the last window hangs over the edge
        rest = x.narrow(dim, 2 * whole, size - 2 * whole)
        torch.amax(rest, dim=dim, keepdim=True, out=out.narrow(dim, whole, 1))
    return out


def _every_other(x: torch.Tensor, dim: int, start: int, count: int) -> torch.Tensor:
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, start + 2 * count - 1, 2)
    return x[tuple(index)]


def _conv(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel), nn.PReLU(c_out)]


class PNet(nn.Module):
    """Proposal net: fully convolutional, a face/non-face score and a box per 12 px window."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 10, 3)
        self.pool1 = CeilMaxPool(2)
        self.conv2, self.prelu2 = _conv(10, 16, 3)
        self.conv3, self.prelu3 = _conv(16, 32, 3)
        # the paper's two 1×1 heads as one: box offsets (4), then face / not (2); one pass over
        # the largest feature map instead of two (`merge_pnet_heads` reads the ported files)
        self.conv4 = nn.Conv2d(32, 6, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        heads = self.conv4(self.prelu3(self.conv3(self.prelu2(self.conv2(x)))))
        return heads[:, :4], heads[:, 4:].softmax(1)


class RNet(nn.Module):
    """Refine net: 24 px windows → face score and box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 28, 3)
        self.pool1 = CeilMaxPool(3)
        self.conv2, self.prelu2 = _conv(28, 48, 3)
        self.pool2 = CeilMaxPool(3)
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
        self.pool1 = CeilMaxPool(3)
        self.conv2, self.prelu2 = _conv(32, 64, 3)
        self.pool2 = CeilMaxPool(3)
        self.conv3, self.prelu3 = _conv(64, 64, 3)
        self.pool3 = CeilMaxPool(2)
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
        net.load_state_dict(merge_pnet_heads(state) if name == "pnet" else state)
        net.eval()
    return nets


def merge_pnet_heads(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """facenet-pytorch's P-Net state (heads `conv4_2`: offsets, `conv4_1`: face / not) → this
    P-Net's, whose `conv4` stacks them in that order."""
    state = dict(state)
    for part in ("weight", "bias"):
        state[f"conv4.{part}"] = torch.cat([state.pop(f"conv4_2.{part}"), state.pop(f"conv4_1.{part}")])
    return state


def _weights_folder() -> Path:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise SrferError(
            "face detection needs facenet-pytorch's MTCNN weights: pip install facenet-pytorch==2.5.3"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"
