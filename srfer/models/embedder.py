"""Face embedders: L2-normalised identity embeddings (FaceNet: Schroff et al., CVPR 2015).

`FaceResNet` (default): a compact residual CNN sized for 128×128 RGB faces (the SR output):
stem 3×3/2 → four stages of two basic blocks (32, 64, 128, 256 channels; stride 1, 2, 2, 2)
→ global average pool → BN → linear → 128-d unit vector. ~2.8 M parameters.

`InceptionResnetV1` (`backbone="inception-resnet-v1"`): facenet-pytorch's network
(512-d), from scratch or with its VGGFace2 / CASIA-WebFace weights. It was trained at
160×160, so inputs are resized to `input_size` (≥ 75 px is required by its stem).

`DlibResNet29` (`backbone="dlib-resnet29"`, the shipped default): dlib's public-domain face
recogniser (`srfer.models.dlib_resnet`), 128-d, 150×150 input with its own normalisation,
on faces aligned to dlib's chip (`srfer.faces.align`).

Shapes: (N, 3, H, W) in [0, 1] → (N, dim) with ‖f‖₂ = 1.

Every backbone is one builder registered in `EMBEDDER_BACKBONES` (`--backbone` lists them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srfer.models import dlib_resnet
from srfer.models.registry import Registry

EMBEDDER_BACKBONES = Registry("backbone")


def signed(x01: torch.Tensor) -> torch.Tensor:
    """facenet-pytorch's fixed_image_standardization, near enough: (x − 127.5) / 128."""
    return x01 * 2 - 1


@dataclass
class EmbedderConfig:
    backbone: str = "face-resnet"
    dim: int = 128
    widths: tuple[int, ...] = (32, 64, 128, 256)
    input_size: int = 128  # faces are resized to this before the backbone

    def __post_init__(self) -> None:
        facts = EMBEDDER_BACKBONES.get(self.backbone).extra
        self.widths = tuple(self.widths)
        self.dim = facts.get("dim", self.dim)  # a backbone with a fixed embedding size says so
        self.input_size = facts.get("input_size", max(self.input_size, facts.get("min_input", 0)))

    def to_dict(self) -> dict:
        return asdict(self)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al., 2016): two 3×3 conv-BN, projection when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )  # fmt: skip
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class FaceResNet(nn.Module):
    def __init__(self, config: EmbedderConfig) -> None:
        super().__init__()
        w = config.widths
        self.stem = nn.Sequential(
            nn.Conv2d(3, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(True)
        )
        stages, c_in = [], w[0]
        for i, width in enumerate(w):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(c_in), nn.Linear(c_in, config.dim)
        )

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps, x = [], self.stem(x)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


class Embedder(nn.Module):
    """Resize → normalise → backbone → L2-normalised embedding."""

    kind = "face-embedder"

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or EmbedderConfig()
        self.backbone: nn.Module = EMBEDDER_BACKBONES.build(config.backbone, config)

        # each backbone's own input normalisation (registered beside it; default [-1, 1])
        self.normalise = EMBEDDER_BACKBONES.get(config.backbone).extra.get("normalise", signed)

    def prepare(self, x01: torch.Tensor) -> torch.Tensor:
        """Faces in [0, 1] as the backbone takes them: resized to `input_size`, normalised."""
        size = self.config.input_size
        if x01.shape[-1] != size or x01.shape[-2] != size:
            x01 = F.interpolate(x01, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return self.normalise(x01)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(self.prepare(x01)).float(), dim=1)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone stage outputs for an identity-preserving perceptual loss; `x` in [-1, 1]."""
        if not hasattr(self.backbone, "feature_maps"):
            raise NotImplementedError(
                "feature maps are defined for the face-resnet and dlib-resnet29 backbones"
            )
        return self.backbone.feature_maps(self.prepare((x + 1) / 2))


@EMBEDDER_BACKBONES.register("face-resnet", "compact residual CNN, 128-d (default)")
def face_resnet(config: EmbedderConfig) -> nn.Module:
    return FaceResNet(config)


@EMBEDDER_BACKBONES.register(
    "inception-resnet-v1", "facenet-pytorch's network, 512-d, ≥ 75 px input", dim=512, min_input=75
)
def inception_resnet_v1(config: EmbedderConfig) -> nn.Module:
    from facenet_pytorch import InceptionResnetV1

    return InceptionResnetV1(pretrained=None, classify=False)


@EMBEDDER_BACKBONES.register(
    "dlib-resnet29",
    "dlib's public-domain ResNet-29 face recogniser, 128-d, 150 px aligned input (shipped converted)",
    dim=128, input_size=dlib_resnet.INPUT_SIZE, normalise=dlib_resnet.normalise,
)  # fmt: skip
def dlib_resnet29(config: EmbedderConfig) -> nn.Module:
    return dlib_resnet.DlibResNet29(dlib_resnet.DlibResNetConfig(widths=config.widths, dim=config.dim))


FACENET_FILES = {
    "vggface2": "20180402-114759-vggface2.pt",
    "casia-webface": "20180408-102900-casia-webface.pt",
}


def load_facenet_weights(embedder: Embedder, name: str, path=None) -> None:
    """facenet-pytorch's pretrained InceptionResnetV1 weights: `path`, else the torch hub
    cache ($TORCH_HOME/checkpoints), else facenet-pytorch's own download (online users)."""
    from pathlib import Path

    from srfer.core.errors import SrferError
    from srfer.core.weights import read_state_dict

    if embedder.config.backbone != "inception-resnet-v1":
        raise SrferError("--pretrained / --backbone-weights need --backbone inception-resnet-v1")
    if name not in FACENET_FILES:
        raise SrferError(f"unknown --pretrained {name!r}; use vggface2 or casia-webface")
    if path is None:
        from facenet_pytorch.models.inception_resnet_v1 import get_torch_home

        path = Path(get_torch_home()) / "checkpoints" / FACENET_FILES[name]
        if not path.is_file():
            try:
                from facenet_pytorch.models.inception_resnet_v1 import load_weights

                load_weights(embedder.backbone, name)  # downloads into the cache when online
            except Exception as exc:  # noqa: BLE001 - offline: any network error
                raise SrferError(
                    f"facenet-pytorch {name} weights are not in {path.parent} and cannot be downloaded "
                    f"({type(exc).__name__}); pass --backbone-weights PATH"
                ) from None
    path = Path(path)
    state = read_state_dict(path, "backbone")
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}  # the classifier head
    try:
        embedder.backbone.load_state_dict(state)
    except RuntimeError as exc:
        raise SrferError(f"{path}: not InceptionResnetV1 weights ({str(exc)[:120]})") from None
