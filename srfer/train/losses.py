"""SRGAN losses: pixel, perceptual content (VGG19 φ5,4 or any srfer backbone), Gram
texture, identity and adversarial terms.

Perceptual backbones are frozen feature extractors taking images in [-1, 1] and returning
a list of feature maps, shallow to deep: the content loss uses the deepest, the texture
(style) loss all of them. A face embedder's checkpoint also gives the identity term, the
squared distance between the embeddings of SR and HR (identity-aware SR, cf. Lai et al.,
ICIP 2019).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srfer.core.errors import SrferError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision vgg19().features indices of relu1_2, relu2_2, relu3_4, relu4_4, relu5_4 (φ5,4)
VGG19_TAPS = (3, 8, 17, 26, 35)


class FeatureBackbone(nn.Module):
    """Frozen, eval-mode feature extractor: (N, C, H, W) in [-1, 1] → list of maps."""

    has_embedding = False  # True where `embedding` gives an identity vector (face embedders)

    def freeze(self) -> FeatureBackbone:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> FeatureBackbone:  # stays in eval mode (BN stats)
        return super().train(False)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [-1, 1] → (N, D) identity embedding, for backbones that have one."""
        raise SrferError(f"the {type(self).__name__} backbone gives no identity embedding")


class VGG19Features(FeatureBackbone):
    """VGG19 conv layers up to relu5_4, ImageNet-normalised input (Ledig et al.'s φ5,4)."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        from torchvision.models import vgg19

        self.layers = vgg19().features[: VGG19_TAPS[-1] + 1]
        features = {
            k.removeprefix("features."): v for k, v in state_dict.items() if not k.startswith("classifier.")
        }
        try:
            self.layers.load_state_dict(features, strict=True)
        except RuntimeError as exc:
            raise SrferError(f"VGG19 weights do not match torchvision's vgg19: {str(exc)[:200]}") from None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) / 2 - self.mean) / self.std
        maps = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in VGG19_TAPS:
                maps.append(x)
        return maps


def load_vgg19_state(weights: Path | None) -> dict[str, torch.Tensor]:
    """`--vgg-weights PATH`, else torchvision's ImageNet weights (cached or downloaded)."""
    from torchvision.models import VGG19_Weights

    from srfer.core.weights import imagenet_state_dict

    hint = "--vgg-weights PATH, --perceptual ckpt:PATH or --perceptual none"
    return imagenet_state_dict(VGG19_Weights.IMAGENET1K_V1, weights, "VGG19", hint)


class CheckpointFeatures(FeatureBackbone):
    """Intermediate features of any srfer network that defines `feature_maps(x)`."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        from srfer.core.checkpoint import load_checkpoint
        from srfer.models import build_model

        ckpt = load_checkpoint(path)
        self.net = build_model(ckpt.kind, ckpt.config)
        if not hasattr(self.net, "feature_maps"):
            raise SrferError(f"{path}: a {ckpt.kind!r} network has no feature backbone to use")
        self.net.load_state_dict(ckpt.section("model"))
        self.path, self.kind = path, ckpt.kind
        self.has_embedding = ckpt.kind == "face-embedder"
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.feature_maps(x)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_embedding:
            raise SrferError(f"{self.path}: a {self.kind!r} network gives no identity embedding")
        return self.net((x + 1) / 2)  # embedders take [0, 1]


def build_perceptual(spec: str, vgg_weights: Path | None = None) -> FeatureBackbone | None:
    """`vgg19` | `none` | `ckpt:PATH` → a frozen backbone (or None for `none`)."""
    if spec == "none":
        return None
    if spec == "vgg19":
        return VGG19Features(load_vgg19_state(vgg_weights))
    if spec.startswith("ckpt:"):
        return CheckpointFeatures(Path(spec[len("ckpt:") :]))
    raise SrferError(f"unknown --perceptual {spec!r}; use vgg19, none or ckpt:PATH")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, C, C), normalised by C·H·W (Gatys et al.)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


@dataclass
class SRLossWeights:
    """Defaults follow SRGAN: VGG MSE rescaled by 1/12.75² ≈ 0.006, adversarial 1e-3.
    `identity` weighs ‖e(SR) − e(HR)‖² of unit embeddings (0 … 4; a face embedder only).
    `content_layer` picks the backbone map the content term compares (-1: the deepest)."""

    content: float = 0.006
    adversarial: float = 1e-3
    pixel: float = 0.0
    texture: float = 0.0
    identity: float = 0.0
    content_layer: int = -1


class SRGANGeneratorLoss(nn.Module):
    """Weighted sum of the generator's terms; returns (total, {term: value})."""

    def __init__(self, backbone: FeatureBackbone | None, weights: SRLossWeights) -> None:
        super().__init__()
        self.backbone, self.weights = backbone, weights

    def forward(
        self, sr: torch.Tensor, hr: torch.Tensor, fake_logits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.pixel or self.backbone is None:
            terms["pixel"] = (w.pixel or 1.0) * F.mse_loss(sr, hr)
        if self.backbone is not None and w.identity:
            with torch.no_grad():
                target = self.backbone.embedding(hr)
            terms["identity"] = w.identity * (self.backbone.embedding(sr) - target).pow(2).sum(1).mean()
        if self.backbone is not None and (w.content or w.texture):
            sr_maps, hr_maps = self.backbone(sr), self.backbone(hr)
            if w.content:
                layer = w.content_layer
                terms["content"] = w.content * F.mse_loss(sr_maps[layer], hr_maps[layer].detach())
            if w.texture:
                terms["texture"] = w.texture * sum(
                    F.mse_loss(gram_matrix(s), gram_matrix(h.detach()))
                    for s, h in zip(sr_maps, hr_maps, strict=True)
                )
        if fake_logits is not None and w.adversarial:
            terms["adversarial"] = w.adversarial * F.binary_cross_entropy_with_logits(
                fake_logits, torch.ones_like(fake_logits)
            )
        total = torch.stack(list(terms.values())).sum()
        return total, {k: float(v.detach()) for k, v in terms.items()}


def discriminator_term(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE-with-logits of one half of the discriminator's batch: real → 1, fake → 0."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits: real → 1, fake → 0."""
    return discriminator_term(real_logits, True) + discriminator_term(fake_logits, False)


def pixel_mse(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The SRResNet pre-training loss."""
    return F.mse_loss(sr, hr)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., ICCV 2017): -α_t (1 - p_t)^γ log p_t, mean over the batch.

    `alpha` is a per-class weight vector (e.g. inverse class frequency) or None; with
    γ = 0 and no α it equals cross-entropy."""

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("alpha", alpha if alpha is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.alpha is not None:
            loss = loss * self.alpha[target]
        return loss.mean()


def inverse_frequency(counts: list[int]) -> torch.Tensor:
    """Per-class weights ∝ 1/frequency, normalised to mean 1 (absent classes get 0)."""
    c = torch.tensor(counts, dtype=torch.float32)
    weights = torch.where(c > 0, c.sum() / c.clamp(min=1), torch.zeros_like(c))
    return weights / weights[c > 0].mean()


# ----------------------------------------------------------------------------- identity
# The miners are written here rather than taken from pytorch-metric-learning: each is a few
# lines of tensor code over one distance matrix, tested against a brute-force reference,
# and the dependency would bring nothing else this project uses.


def squared_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, D) → (B, B) squared Euclidean distances ‖f_i − f_j‖², clamped at 0."""
    sq = (embeddings * embeddings).sum(1)
    return (sq[:, None] - 2 * embeddings @ embeddings.T + sq[None, :]).clamp_min(0)


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same  # positives (a ≠ p), negatives


def mine_all(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Every valid (a, p, n) triplet, as a (T, 3) index tensor."""
    pos, neg = _masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]
    return valid.nonzero()


def mine_batch_hard(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Per anchor: its farthest positive and nearest negative (Hermans et al., 2017)."""
    pos, neg = _masks(labels)
    anchors = (pos.any(1) & neg.any(1)).nonzero().squeeze(1)
    hardest_pos = dist.masked_fill(~pos, float("-inf")).argmax(1)
    hardest_neg = dist.masked_fill(~neg, float("inf")).argmin(1)
    return torch.stack([anchors, hardest_pos[anchors], hardest_neg[anchors]], dim=1)


def mine_semi_hard(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Per (a, p): the nearest negative farther than p (FaceNet's semi-hard choice: inside
    the margin when one is); where no negative is farther than p, the farthest negative
    (TensorFlow's triplet_semihard_loss convention)."""
    pos, neg = _masks(labels)
    a_idx, p_idx = pos.nonzero(as_tuple=True)
    keep = neg[a_idx].any(1)
    a_idx, p_idx = a_idx[keep], p_idx[keep]
    d_an = dist[a_idx]  # (T, B)
    d_ap = dist[a_idx, p_idx][:, None]
    negatives = neg[a_idx]
    farther = negatives & (d_an > d_ap)
    semi = d_an.masked_fill(~farther, float("inf")).argmin(1)
    easiest = d_an.masked_fill(~negatives, float("-inf")).argmax(1)
    n_idx = torch.where(farther.any(1), semi, easiest)
    return torch.stack([a_idx, p_idx, n_idx], dim=1)


MINERS = {"all": mine_all, "batch-hard": mine_batch_hard, "semi-hard": mine_semi_hard}


class TripletLoss(nn.Module):
    """L = max(‖f(a) − f(p)‖² − ‖f(a) − f(n)‖² + α, 0) over mined triplets (FaceNet).

    `all` averages over the triplets that still violate the margin (batch-all); the
    other miners average over their one triplet per anchor (or anchor-positive pair)."""

    def __init__(self, margin: float = 0.2, mining: str = "semi-hard") -> None:
        super().__init__()
        if mining not in MINERS:
            raise SrferError(f"unknown --mining {mining!r}; use {', '.join(MINERS)}")
        self.margin, self.mining = margin, mining

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        dist = squared_distances(embeddings.float())
        triplets = MINERS[self.mining](dist.detach(), labels, self.margin)
        if len(triplets) == 0:
            return embeddings.sum() * 0, {"triplets": 0.0, "active": 0.0}
        a, p, n = triplets.unbind(1)
        losses = (dist[a, p] - dist[a, n] + self.margin).clamp_min(0)
        active = losses > 0
        if self.mining == "all":
            loss = losses[active].mean() if active.any() else losses.sum() * 0
        else:
            loss = losses.mean()
        return loss, {"triplets": float(len(losses)), "active": float(active.float().mean())}
