"""CPU inference re-parameterisations: the same function as the trained network, in fewer and
faster operations (the RepVGG/timm sense of "deploy"). Only for inference with torch on the
CPU: a deployed network is not trained or saved (moved, cast or exported, its convolutions
fall back to plain ones; `load_embedder(deploy=False)` for a network to train from).

1. Per-channel affines that follow a convolution go into its kernel: `torch.nn.utils.fusion.
   fuse_conv_bn_eval` for Conv2d → BatchNorm2d pairs in an `nn.Sequential` (the MCNN), and a
   submodule's own `switch_to_deploy()` where it has one (dlib's `ConvAffine`).
2. Every plain `nn.Conv2d` becomes a `PackedConv2d`: oneDNN's convolution with its weight
   reordered once, at load, into oneDNN's blocked layout (the op `torch.compile`'s CPU backend
   emits; private, hence `packing_available`'s guard). Why by hand: for one face at a time
   PyTorch's dispatcher sends a convolution whose input has ≤ 20,480 values and a kernel of at
   most 3×3 to its generic im2col path, and the rest to oneDNN with a weight reorder per call;
   both are slow on a CPU. MTCNN's nets are left alone: P-Net on its pyramid gains nothing and
   loses on its smallest levels. docs/performance.md has the measurements.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class PackedConv2d(nn.Module):
    """`conv`'s function (zero padding, any stride, dilation and groups) through oneDNN with a
    weight reordered once. (N, C, H, W) → as `conv`. The plain weight stays as a buffer (not
    saved): any other dtype or device, tracing or export, falls back to `F.conv2d` on it; a
    `.to()`/`.double()` of the module drops the packed copy, and a float32 CPU call repacks."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        # oneDNN's argument order: padding, stride, dilation, groups
        self._geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.register_buffer("weight", conv.weight.detach().clone(), persistent=False)
        bias = None if conv.bias is None else conv.bias.detach().clone()
        self.register_buffer("bias", bias, persistent=False)
        self._packed: torch.Tensor | None = self._pack()

    def _pack(self) -> torch.Tensor:
        return torch.ops.mkldnn._reorder_convolution_weight.default(self.weight, *self._geometry, None)

    def _apply(self, fn, recurse: bool = True):  # .to(), .double(), …: the packed copy is stale
        self._packed = None
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict:  # copies and pickles repack: oneDNN's layout has no storage
        return {**self.__dict__, "_packed": None}

    def _eager_cpu_float(self, x: torch.Tensor) -> bool:
        """Run eagerly on float32 CPU tensors; tracing, export (ONNX) and compilation see a
        plain convolution, which they know."""
        traced = torch.jit.is_tracing() or torch.compiler.is_compiling() or type(x) is not torch.Tensor
        plain = x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.dtype == torch.float32
        return plain and not traced

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._eager_cpu_float(x):
            padding, stride, dilation, groups = self._geometry
            return F.conv2d(x, self.weight, self.bias, stride, padding, dilation, groups)
        packed = self._packed if self._packed is not None else self._pack()
        self._packed = packed
        convolve = torch.ops.mkldnn._convolution_pointwise.default  # the overload: one Python hop fewer
        return convolve(x, packed, self.bias, *self._geometry, "none", [], "")


@functools.cache
def packing_available() -> bool:
    """Whether this torch build has oneDNN's packed-weight convolution (x86 and ARM builds)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        conv = nn.Conv2d(1, 1, 1)
        PackedConv2d(conv)(torch.zeros(1, 1, 1, 1))
    except (AttributeError, RuntimeError):
        return False
    return True


def switch_to_cpu_deploy(model: nn.Module) -> nn.Module:
    """`model` (eval mode, fp32, on the CPU) re-parameterised in place for inference (see the
    module docstring); returned for chaining. Without oneDNN only the folding is done."""
    for module in list(model.modules()):
        if module is not model and hasattr(module, "switch_to_deploy"):
            module.switch_to_deploy()
    _fold_batch_norms(model)
    if packing_available():
        _pack_convolutions(model)
    return model


def _fold_batch_norms(model: nn.Module) -> None:
    for sequence in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        layers = list(sequence)
        for i in range(len(layers) - 1):
            conv, norm = layers[i], layers[i + 1]
            if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.track_running_stats:
                sequence[i] = fuse_conv_bn_eval(conv, norm)
                sequence[i + 1] = nn.Identity()


def _pack_convolutions(model: nn.Module) -> None:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            plain = type(child) is nn.Conv2d and child.padding_mode == "zeros"
            if plain and not isinstance(child.padding, str):
                setattr(parent, name, PackedConv2d(child))
