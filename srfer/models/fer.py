"""Facial-expression classifiers for 48×48 grayscale faces.

`MCNN` follows the srfer seed design: three parallel convolution branches (3×3, 5×5, 7×7
kernels; strides 1, 2, 3), each a stack of conv-BN-ReLU blocks with residual connections
and a channel-attention block (CBAM's channel half: Woo et al., ECCV 2018), fused at a
common 12×12 grid, then a pyramid pooling module (PSPNet: Zhao et al., CVPR 2017; bins
1, 2, 3, 6), then pooling → dense 128 → dropout → 7 logits.

Torchvision backbones (`resnet18`, `resnet50`, `mobilenet_v3_small`, `vgg16_bn`) are
adapted to 1-channel 48×48 input (the stem's kernel size kept, stride 1, no early
max-pool) for the seed's backbone comparison, from scratch or from ImageNet weights.

`DlibFer` (`dlib-resnet29`) reuses a face recogniser for expressions: dlib's ResNet-29
trunk (`srfer.models.dlib_resnet`; stem and its four stages, without the identity head),
fed the gray face resized to `trunk_size` and copied to RGB, then global pooling → dropout
→ 7 logits. Features learnt for identity transfer to expression (e.g. Knyazev et al.,
"Convolutional neural networks pretrained on large face recognition datasets for emotion
classification from video", 2017); `load_face_recogniser` fills the trunk from a srfer
face-embedder file of that network.

`FaceApiFer` (`faceapi-expression`) is face-api.js's expression network
(`srfer.models.faceapi_expression`: dense blocks of separable convolutions, 0.32 M
parameters) fed the gray face resized to `trunk_size` (112) and copied to RGB; `srfer
convert-face-api --model expression` makes a checkpoint of it (classes in FER2013's order)
that `train-fer --init` fine-tunes.

Every backbone is one builder registered in `FER_BACKBONES` (`--arch` lists them); adding
one is one decorated function here.

Shapes: (N, 1, 48, 48) in [0, 1] → (N, 7) logits. Other sizes work (adaptive pooling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srfer.models import dlib_resnet
from srfer.models.registry import Registry

FER_BACKBONES = Registry("arch")
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FerConfig:
    arch: str = "mcnn"
    num_classes: int = 7
    in_channels: int = 1
    width: int = 32  # mcnn: channels of each branch's first stage (second stage doubles it)
    fused: int = 128  # mcnn: channels after fusing the branches
    grid: int = 12  # mcnn: common spatial size the branches are pooled to
    dropout: float = 0.5
    input_size: int = 48
    trunk_size: int = 112  # dlib-resnet29, faceapi-expression: faces are resized to this first
    shared_stages: int = 0  # dlib-resnet29: stem + first N stages are a face recogniser's, frozen

    def __post_init__(self) -> None:
        FER_BACKBONES.get(self.arch)  # an unknown name is an error naming the known ones
        if self.shared_stages and self.arch != "dlib-resnet29":
            raise ValueError("shared stages are for dlib-resnet29, whose trunk a face recogniser has")

    def to_dict(self) -> dict:
        return asdict(self)


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)
    )


class ResidualPair(nn.Module):
    """Two conv-BN(-ReLU) layers with an identity connection around them."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.first = conv_bn_relu(channels, channels, kernel)
        self.second = nn.Sequential(
            nn.Conv2d(channels, channels, kernel, 1, kernel // 2, bias=False), nn.BatchNorm2d(channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.second(self.first(x)))


class ChannelAttention(nn.Module):
    """avg- and max-pooled descriptors → shared 1×1 MLP → sigmoid → rescale channels."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        peak = self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(avg + peak)


class Branch(nn.Module):
    """One scale: k×k stem (stride s) → residual pair → widen → residual pair → attention."""

    def __init__(self, c_in: int, width: int, kernel: int, stride: int, grid: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(c_in, width, kernel, stride),
            ResidualPair(width, kernel),
            conv_bn_relu(width, 2 * width, kernel),
            ResidualPair(2 * width, kernel),
        )
        self.attention = ChannelAttention(2 * width)
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.attention(self.body(x)), self.grid)


class PyramidPooling(nn.Module):
    """PSPNet module: per bin, adaptive avg pool → 1×1 conv to C/4 → bilinear up; concat."""

    def __init__(self, channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels // 4, 1, bias=False), nn.BatchNorm2d(channels // 4),
                          nn.ReLU(True))
            for _ in bins
        )  # fmt: skip
        self.out_channels = channels + len(bins) * (channels // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(F.adaptive_avg_pool2d(x, b)), size=size, mode="bilinear", align_corners=False)
            for b, stage in zip(self.bins, self.stages, strict=True)
        ]
        return torch.cat([x, *pooled], dim=1)


class MCNN(nn.Module):
    """Multi-scale CNN with channel attention and pyramid pooling (the srfer seed)."""

    kind = "fer-classifier"

    def __init__(self, config: FerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FerConfig()
        w = config.width
        self.branches = nn.ModuleList(
            Branch(config.in_channels, w, kernel, stride, config.grid)
            for kernel, stride in ((3, 1), (5, 2), (7, 3))
        )
        self.fuse = conv_bn_relu(3 * 2 * w, config.fused, 1)
        self.pyramid = PyramidPooling(config.fused)
        self.mix = conv_bn_relu(self.pyramid.out_channels, config.fused, 3)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(config.fused, 128), nn.ReLU(True),
            nn.Dropout(config.dropout), nn.Linear(128, config.num_classes),
        )  # fmt: skip

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Fused and pyramid features (a perceptual backbone for 1-channel faces)."""
        if x.min() < 0:  # perceptual-loss callers pass [-1, 1]
            x = (x + 1) / 2
        fused = self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
        return [fused, self.mix(self.pyramid(fused))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
        return self.head(self.mix(self.pyramid(fused)))


class TorchvisionFer(nn.Module):
    """A torchvision classifier adapted to small 1-channel faces (`net`: the registered
    builder's network), from scratch or from ImageNet weights."""

    kind = "fer-classifier"

    def __init__(self, config: FerConfig, net: nn.Module) -> None:
        super().__init__()
        self.config, self.net = config, net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def load_imagenet_state(self, state: dict[str, torch.Tensor]) -> list[str]:
        """torchvision's ImageNet weights into this network. The stem's RGB kernels, divided
        by ImageNet's std, are summed into one gray kernel, so a gray face in [0, 1] excites
        it as its normalised RGB copy would, up to a constant the next BatchNorm absorbs.
        Every other tensor whose name and shape match is copied; the rest (the new
        classifier) keeps its initialisation. Returns the names of those left."""
        stem = stem_weight(self.config.arch)
        if stem not in state or state[stem].shape[1] != 3:
            raise ValueError(f"no RGB {stem} in these weights: not torchvision {self.config.arch} weights")
        state = dict(state)
        rgb = state[stem].float() / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        state[stem] = rgb.sum(1, keepdim=True) if self.config.in_channels == 1 else rgb
        own = self.net.state_dict()
        matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if stem not in matched:
            raise ValueError(f"{stem}: {tuple(state[stem].shape)} ≠ {tuple(own[stem].shape)}")
        self.net.load_state_dict(matched, strict=False)
        return [k for k in own if k not in matched and not k.endswith("num_batches_tracked")]


class DlibFer(nn.Module):
    """(N, 1, H, W) gray in [0, 1] → resize to `trunk_size` → RGB copy → dlib normalisation →
    dlib ResNet-29 stem + stages (256 × 3 × 3 at 112 px) → mean → dropout → (N, classes).

    With `shared_stages` N the stem and the first N stages are a face recogniser's and stay
    frozen (`share_trunk_`): at the recogniser's `trunk_size` (150) they compute what the
    embedder computes, so one pass up to there serves both (`srfer.models.multitask`), and
    `from_maps` continues from those maps."""

    kind = "fer-classifier"

    def __init__(self, config: FerConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = dlib_resnet.DlibResNet29()
        self.trunk.down_out = self.trunk.fc = nn.Identity()  # the identity head is not used
        for module in self.shared_modules():
            module.requires_grad_(False)  # the recogniser's: they must stay what it computes
        self.normalise = dlib_resnet.normalise
        width = self.trunk.config.widths[-1]
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(width, config.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_maps(self.shared_maps(x))

    def shared_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Faces → the maps after the stem and the shared stages (what a sharing recogniser
        computes from the same 150 px face)."""
        size = self.config.trunk_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.trunk.run_stages(self.trunk.stem_maps(self.normalise(x)), 0, self.config.shared_stages)

    def from_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Logits from the maps after the shared stages (the recogniser's, computed once)."""
        return self.head(self.trunk.run_stages(maps, self.config.shared_stages).mean((2, 3)))

    def shared_modules(self) -> list[nn.Module]:
        """The stem and the first `shared_stages` stages (none when nothing is shared)."""
        n = self.config.shared_stages
        return [self.trunk.stem, *self.trunk.stages[:n]] if n else []

    def share_trunk_(self, recogniser: dlib_resnet.DlibResNet29) -> int:
        """Copy the shared modules from a recogniser's trunk, their affines folded (as
        `load_face_recogniser` does); returns how many tensors were copied."""
        mine = self.shared_modules()
        if not mine:
            raise ValueError("this classifier shares no stages (shared_stages is 0)")
        theirs = [recogniser.stem, *recogniser.stages[: self.config.shared_stages]]
        copied = 0
        for own, source in zip(mine, theirs, strict=True):
            state = source.state_dict()
            own.load_state_dict(state)
            dlib_resnet.fold_affines_(own)
            copied += len(state)
        return copied

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The trunk's trainable ones: `train-fer --trunk-lr` gives them their own learning rate."""
        return [p for p in self.trunk.parameters() if p.requires_grad]

    def load_face_recogniser(self, state: dict[str, torch.Tensor], prefix: str = "backbone.") -> int:
        """Copy the trunk from a face embedder's state dict (keys `backbone.*`, as srfer's
        `Embedder` of the dlib network stores them; `trunk.*` for another DlibFer's), its affines
        folded into the convolutions; returns how many tensors were copied."""
        own = self.trunk.state_dict()
        found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        missing = [k for k in own if k not in found]
        wrong = [k for k in own if k in found and found[k].shape != own[k].shape]
        if missing or wrong:
            raise ValueError(f"not a dlib ResNet-29 face recogniser ({len(missing)} tensors missing, "
                             f"{len(wrong)} of another shape)")  # fmt: skip
        self.trunk.load_state_dict({k: found[k] for k in own})
        self.trunk.fold_affines_()  # same function, well-conditioned for Adam
        return len(own)


class FaceApiFer(nn.Module):
    """(N, 1, H, W) gray in [0, 1] → TensorFlow's legacy bilinear resize to `trunk_size` → RGB
    copy → dlib/face-api normalisation → face-api's feature extractor (256 pooled) → dropout →
    (N, classes)."""

    kind = "fer-classifier"

    def __init__(self, config: FerConfig) -> None:
        super().__init__()
        from srfer.models import faceapi_expression

        self.config = config
        self.resize = faceapi_expression.legacy_bilinear_resize
        self.normalise = dlib_resnet.normalise  # the same mean RGB, /255
        self.trunk = faceapi_expression.FaceFeatureExtractor()
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(self.trunk.out_features,
                                                                        config.num_classes))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resize(x, self.config.trunk_size)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.head(self.trunk(self.normalise(x)))

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The feature extractor's: `train-fer --trunk-lr` gives them their own learning rate."""
        return list(self.trunk.parameters())


def stem_weight(arch: str) -> str:
    """The first convolution's weight of a torchvision arch: rebuilt for gray input and
    filled from the RGB one by `load_imagenet_state`."""
    return FER_BACKBONES.get(arch).extra["stem"]


def build_fer(config: FerConfig) -> nn.Module:
    return FER_BACKBONES.build(config.arch, config)


# ------------------------------------------------------------------------------ backbones
@FER_BACKBONES.register("mcnn", "multi-scale CNN with attention and pyramid pooling (the seed design)")
def mcnn(config: FerConfig) -> nn.Module:
    return MCNN(config)


def _resnet(config: FerConfig, arch: str) -> TorchvisionFer:
    import torchvision.models as tvm

    net = getattr(tvm, arch)(weights=None)
    net.conv1 = nn.Conv2d(config.in_channels, 64, 7, 1, 3, bias=False)  # 48 px: stride 1 …
    net.maxpool = nn.Identity()  # … and no early max-pool
    net.fc = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(net.fc.in_features, config.num_classes))
    return TorchvisionFer(config, net)


@FER_BACKBONES.register("resnet18", "torchvision ResNet-18, stride-1 stem", stem="conv1.weight")
def resnet18(config: FerConfig) -> nn.Module:
    return _resnet(config, "resnet18")


@FER_BACKBONES.register("resnet50", "torchvision ResNet-50, stride-1 stem", stem="conv1.weight")
def resnet50(config: FerConfig) -> nn.Module:
    return _resnet(config, "resnet50")


@FER_BACKBONES.register(
    "mobilenet_v3_small", "torchvision MobileNetV3-Small, stride-1 stem", stem="features.0.0.weight"
)
def mobilenet_v3_small(config: FerConfig) -> nn.Module:
    import torchvision.models as tvm

    net = tvm.mobilenet_v3_small(weights=None, num_classes=config.num_classes, dropout=config.dropout)
    net.features[0][0] = nn.Conv2d(config.in_channels, 16, 3, 1, 1, bias=False)
    return TorchvisionFer(config, net)


@FER_BACKBONES.register("vgg16_bn", "torchvision VGG-16-BN, global-pooled head", stem="features.0.weight")
def vgg16_bn(config: FerConfig) -> nn.Module:
    import torchvision.models as tvm

    net = tvm.vgg16_bn(weights=None)
    net.features[0] = nn.Conv2d(config.in_channels, 64, 3, 1, 1)
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Sequential(
        nn.Linear(512, 256), nn.ReLU(True), nn.Dropout(config.dropout), nn.Linear(256, config.num_classes)
    )
    return TorchvisionFer(config, net)


@FER_BACKBONES.register(
    "dlib-resnet29",
    "dlib's face-recognition ResNet-29 trunk, new head; start it from the recogniser with --pretrained",
)
def dlib_resnet29(config: FerConfig) -> nn.Module:
    return DlibFer(config)


@FER_BACKBONES.register(
    "faceapi-expression",
    "face-api.js's expression network (separable dense blocks); start it from "
    "`srfer convert-face-api --model expression`'s file with --init",
)
def faceapi_expression(config: FerConfig) -> nn.Module:
    return FaceApiFer(config)
