"""face-api.js's facial-expression network (`FaceExpressionNet`), in torch.

Source: Vincent Mühler, face-api.js (MIT), as shipped in @vladmandic/face-api 1.7.15
(`src/faceFeatureExtractor/`, `src/faceExpressionNet/`, weights `model/face_expression_model`):
a small densely connected network of depthwise-separable convolutions, trained by its author
on public expression datasets and web images (which ones is not documented), 7 expressions.
`srfer convert-face-api --model expression` turns its weights into a srfer checkpoint.

Layout, for a 112×112 RGB input (TensorFlow "same" padding: a stride-2 layer on an even
map pads one pixel at the bottom and right only, `tf_same_pad`):

    dense block 0: conv 3×3/2 (3→32), then 3 separable convs        → 32 × 56 × 56
    dense block 1: separable 3×3/2 (32→64), then 3 separable        → 64 × 28 × 28
    dense block 2: separable 3×3/2 (64→128), then 3 separable       → 128 × 14 × 14
    dense block 3: separable 3×3/2 (128→256), then 3 separable      → 256 × 7 × 7
    average pool 7×7 (valid; the global mean at 112 px)             → 256
    linear 256→7                                                    → 7 logits

In a dense block each separable conv sees the ReLU of the sum of all earlier outputs
(out1, out1+out2, out1+out2+out3) and the block returns ReLU(out1+…+out4).

Input contract: (N, 3, 112, 112), x·255 − mean RGB (122.782, 117.001, 104.298), then /255
(the dlib recogniser's normalisation); faces resized to 112 by TensorFlow's legacy bilinear
resize (`legacy_bilinear_resize`: no half-pixel offset). face-api's class order is
`FACEAPI_EXPRESSIONS`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (32, 64, 128, 256)
INPUT_SIZE = 112
FACEAPI_EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad as TensorFlow's "same" does: the extra pixel of an odd total goes bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def legacy_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """tf.image.resizeBilinear(align_corners=False, half_pixel_centers=False), which face-api
    uses: output pixel i samples the input at i·(in/out), clamped at the last pixel. torch's
    `interpolate` has no such mode; the two axes are done as gathers + lerps."""

    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        n_in = t.shape[dim]
        src = torch.arange(size, dtype=torch.float32, device=t.device) * (n_in / size)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        shape = [1] * t.ndim
        shape[dim] = size
        frac = (src - lo).to(t.dtype).view(shape)
        a, b = t.index_select(dim, lo), t.index_select(dim, hi)
        return a + (b - a) * frac

    if x.shape[-2:] == (size, size):
        return x
    return along(along(x, x.ndim - 2), x.ndim - 1)


class SeparableConv(nn.Module):
    """Depthwise 3×3 (stride 1 or 2, "same") → pointwise 1×1 with bias; no activation."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride, padding=1 if stride == 1 else 0, groups=c_in,
                                   bias=False)  # fmt: skip
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = tf_same_pad(x, 3, self.stride)
        return self.pointwise(self.depthwise(x))


class FirstConv(nn.Module):
    """The network's only full convolution: 3×3/2 "same", 3 → 32 channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(tf_same_pad(x, 3, 2))


class DenseBlock4(nn.Module):
    """face-api's `denseBlock4`: a stride-2 entry conv and three separable convs, each fed the
    ReLU of the running sum of the block's outputs."""

    def __init__(self, c_in: int, c_out: int, first: bool = False) -> None:
        super().__init__()
        self.conv0 = FirstConv(c_in, c_out) if first else SeparableConv(c_in, c_out, stride=2)
        self.conv1 = SeparableConv(c_out, c_out)
        self.conv2 = SeparableConv(c_out, c_out)
        self.conv3 = SeparableConv(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = F.relu(self.conv0(x))
        for conv in (self.conv1, self.conv2, self.conv3):
            total = total + conv(F.relu(total))  # the first ReLU is a no-op: total ≥ 0 there
        return F.relu(total)


class FaceFeatureExtractor(nn.Module):
    """(N, 3, 112, 112) normalised RGB → (N, 256) pooled features."""

    def __init__(self) -> None:
        super().__init__()
        channels = (3, *WIDTHS)
        self.blocks = nn.Sequential(
            *(DenseBlock4(channels[i], channels[i + 1], first=i == 0) for i in range(len(WIDTHS)))
        )
        self.out_features = WIDTHS[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).mean((2, 3))  # = face-api's 7×7 valid average pool at 112 px
