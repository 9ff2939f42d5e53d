"""The SR generator's tail re-parameterised for CPU inference (the RepVGG/timm sense of
"deploy": the same function in fewer or faster operations; not for training or saving).

oneDNN runs the SRResNet tail (64 → 3 channels, 9×9, at the output size) far below its usual
rate, as 3 output channels fill none of its vector blocks. `PhaseSplitConv` computes it on the
2×2 space-to-depth of its input instead (12 outputs), and since that starts by unshuffling what
the last ×2 step has just shuffled, `UpsampleToPhases` lets that step hand over its phases
directly: the pixel shuffle and unshuffle are skipped, bit-identical. The measured gains are in
docs/performance.md.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from srfer.models.srgan import Generator, UpsampleBlock


class UpsampleToPhases(nn.Module):
    """An `UpsampleBlock` whose output stays as its 2×2 phases: `pixel_unshuffle(block(x), 2)`,
    computed without the shuffle: PReLU is per element, so its per-channel slopes, each
    repeated over the channel's four phases, act on the convolution's output directly.
    (N, C, H, W) → (N, 4·C, H, W), bit-identical to shuffling and unshuffling."""

    def __init__(self, block: UpsampleBlock) -> None:
        super().__init__()
        self.conv = block.conv
        slopes = block.act.weight.detach()
        self.register_buffer("slopes", slopes.repeat_interleave(4) if slopes.numel() > 1 else slopes.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(self.conv(x), self.slopes)


class PhaseSplitConv(nn.Module):
    """A stride-1 k×k convolution (odd k, 'same' padding) computed on the 2×2 space-to-depth of
    its padded input: a (k//2 + 1)² kernel, 4× the input and 4× the output channels (one per
    output phase, zero taps where a phase does not reach), then depth-to-space. The same
    function (to float rounding) for even output sizes, for 24 % more multiply-adds that
    oneDNN runs at its full rate (see the module docstring).

    Shapes: (N, C_in, H, W) → (N, C_out, H, W), H and W even (else the plain convolution)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        k = conv.kernel_size[0]
        if conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.padding != (k // 2,) * 2:
            raise ValueError("PhaseSplitConv takes a stride-1, odd-square-kernel, same-padded Conv2d")
        if conv.dilation != (1, 1) or conv.groups != 1:
            raise ValueError("PhaseSplitConv takes an undilated, ungrouped Conv2d")
        weight = conv.weight.detach()
        bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(weight.shape[0])
        self.pad = k // 2
        self.register_buffer("plain_weight", weight.clone())
        self.register_buffer("plain_bias", bias.clone())
        self.register_buffer("weight", phase_kernel(weight).contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", bias.repeat_interleave(4))
        self.takes_phases = False  # set by Generator.switch_to_deploy: the input is already unshuffled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.takes_phases:
            phases, pad = x, self.pad // 2
        elif x.shape[-2] % 2 or x.shape[-1] % 2:
            return F.conv2d(x, self.plain_weight, self.plain_bias, padding=self.pad)
        elif self.pad % 2:
            phases, pad = F.pixel_unshuffle(F.pad(x, (self.pad,) * 4), 2), 0
        else:  # an even pad is a pad of half as much on every phase: the convolution pads
            phases, pad = F.pixel_unshuffle(x, 2), self.pad // 2
        return F.pixel_shuffle(F.conv2d(phases, self.weight, self.bias, padding=pad), 2)


def phase_kernel(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, k, k) → (4·C_out, 4·C_in, k//2 + 1, k//2 + 1): output channel c·4 + 2a + b
    is output phase (a, b) of channel c (`pixel_shuffle`'s order), input channel i·4 + 2u + v
    the (u, v) phase of input channel i (`pixel_unshuffle`'s). Tap (m, n) of that pair is
    the original tap (2m + u − a, 2n + v − b), or zero outside the k×k kernel."""
    c_out, c_in, k, _ = weight.shape
    half = k // 2 + 1
    split = weight.new_zeros(c_out, 2, 2, c_in, 2, 2, half, half)
    for a, b, u, v, m, n in itertools.product(
        range(2), range(2), range(2), range(2), range(half), range(half)
    ):
        dy, dx = 2 * m + u - a, 2 * n + v - b
        if 0 <= dy < k and 0 <= dx < k:
            split[:, a, b, :, u, v, m, n] = weight[:, :, dy, dx]
    return split.reshape(4 * c_out, 4 * c_in, half, half)


def deploy_generator(generator: Generator) -> Generator:
    """`generator` (eval mode, on the CPU) with its 9×9 tail as a `PhaseSplitConv` and, where
    that tail's padding is even, its last ×2 step as an `UpsampleToPhases`; returned for chaining."""
    if isinstance(generator.tail, nn.Conv2d):
        generator.tail = PhaseSplitConv(generator.tail)
    last = generator.upsample[-1] if len(generator.upsample) else None
    even_pad = isinstance(generator.tail, PhaseSplitConv) and generator.tail.pad % 2 == 0
    if isinstance(last, UpsampleBlock) and even_pad:
        generator.upsample[-1] = UpsampleToPhases(last)
        generator.tail.takes_phases = True
    return generator
