from pathlib import Path

import pytest
import torch

from srfer.core.checkpoint import save_checkpoint
from srfer.core.errors import SrferError
from srfer.models import Discriminator, DiscriminatorConfig
from srfer.train import losses
from srfer.train.losses import (
    SRGANGeneratorLoss,
    SRLossWeights,
    build_perceptual,
    discriminator_loss,
    gram_matrix,
)


def tiny_disc_checkpoint(tmp_path: Path) -> Path:
    disc = Discriminator(DiscriminatorConfig(features=4, hidden=8))
    tensors = {f"model.{k}": v for k, v in disc.state_dict().items()}
    return save_checkpoint(tmp_path / "d.safetensors", "sr-discriminator", disc.config.to_dict(), tensors)


def test_generator_loss_terms_are_finite(tmp_path: Path) -> None:
    backbone = build_perceptual(f"ckpt:{tiny_disc_checkpoint(tmp_path)}")
    assert all(not p.requires_grad for p in backbone.parameters())
    loss = SRGANGeneratorLoss(backbone, SRLossWeights(content=0.006, pixel=1.0, texture=1.0))
    sr = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    total, terms = loss(sr, torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2))
    total.backward()
    assert set(terms) == {"pixel", "content", "texture", "adversarial"}
    assert torch.isfinite(total) and torch.isfinite(sr.grad).all()
    assert torch.isfinite(discriminator_loss(torch.randn(4), torch.randn(4)))


def test_content_layer_picks_which_feature_map_is_compared(tmp_path: Path) -> None:
    backbone = build_perceptual(f"ckpt:{tiny_disc_checkpoint(tmp_path)}")
    sr, hr = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    maps_sr, maps_hr = backbone(sr), backbone(hr)
    for layer in (0, 1, -1):
        _, terms = SRGANGeneratorLoss(backbone, SRLossWeights(content=1.0, content_layer=layer))(sr, hr)
        expected = torch.nn.functional.mse_loss(maps_sr[layer], maps_hr[layer])
        assert terms["content"] == pytest.approx(float(expected), rel=1e-5)
    assert len(maps_sr) > 2 and float((maps_sr[0] - maps_hr[0]).pow(2).mean()) != pytest.approx(
        float((maps_sr[-1] - maps_hr[-1]).pow(2).mean())
    )


def test_without_perceptual_backbone_pixel_loss_drives_the_generator() -> None:
    total, terms = SRGANGeneratorLoss(None, SRLossWeights())(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8))
    assert terms["pixel"] == pytest.approx(1.0) and float(total) == pytest.approx(1.0)


def test_gram_matrix_of_identical_features_is_symmetric() -> None:
    g = gram_matrix(torch.randn(2, 4, 5, 5))
    assert g.shape == (2, 4, 4) and torch.allclose(g, g.transpose(1, 2))


def test_vgg19_without_weights_stops_with_a_clear_message(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # empty cache

    def offline(*_a, **_k):
        raise OSError("network unreachable")

    from torchvision.models import VGG19_Weights

    monkeypatch.setattr(type(VGG19_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(SrferError, match="--vgg-weights PATH"):
        build_perceptual("vgg19")


@pytest.mark.slow
def test_vgg19_weights_file_is_checked(tmp_path: Path) -> None:
    wrong = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(SrferError, match="do not match"):
        build_perceptual("vgg19", wrong)
    with pytest.raises(SrferError, match="not found"):
        build_perceptual("vgg19", tmp_path / "none.pth")
    assert losses.load_vgg19_state(wrong)["features.0.weight"].shape == (1,)


def test_perceptual_spec_errors(tmp_path: Path) -> None:
    assert build_perceptual("none") is None
    with pytest.raises(SrferError, match="unknown --perceptual"):
        build_perceptual("alexnet")
    gen = save_checkpoint(
        tmp_path / "g.safetensors", "sr-generator", {"features": 4, "blocks": 1}, {"model.x": torch.zeros(1)}
    )
    with pytest.raises(SrferError, match="no feature backbone"):
        build_perceptual(f"ckpt:{gen}")


def test_identity_term_is_the_embedding_distance(tmp_path: Path) -> None:
    from srfer.models.embedder import Embedder, EmbedderConfig

    torch.manual_seed(0)  # a random 4-channel net can come out all dead ReLUs (zero gradient) for some draws
    net = Embedder(EmbedderConfig(widths=(4, 4, 4, 4), dim=8, input_size=16))
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    path = save_checkpoint(tmp_path / "e.safetensors", "face-embedder", net.config.to_dict(), tensors)
    backbone = build_perceptual(f"ckpt:{path}")
    loss = SRGANGeneratorLoss(backbone, SRLossWeights(content=0.0, identity=2.0))
    hr = torch.rand(3, 3, 16, 16) * 2 - 1
    _, same = loss(hr.clone(), hr)
    assert same["identity"] == pytest.approx(0.0, abs=1e-6)
    sr = (torch.rand(3, 3, 16, 16) * 2 - 1).requires_grad_()
    total, terms = loss(sr, hr)
    with torch.no_grad():
        expected = 2.0 * (net.eval()((sr + 1) / 2) - net((hr + 1) / 2)).pow(2).sum(1).mean()
    assert terms["identity"] == pytest.approx(float(expected), rel=1e-4)
    total.backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0


def test_a_discriminator_gives_no_identity_embedding(tmp_path: Path) -> None:
    backbone = build_perceptual(f"ckpt:{tiny_disc_checkpoint(tmp_path)}")
    assert not backbone.has_embedding
    with pytest.raises(SrferError, match="no identity embedding"):
        backbone.embedding(torch.zeros(1, 3, 32, 32))
