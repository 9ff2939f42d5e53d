import pytest
import torch

from srfer.models.fer import ARCHS, ChannelAttention, FerConfig, PyramidPooling, build_fer


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_maps_48px_gray_faces_to_7_logits(arch: str) -> None:
    model = build_fer(FerConfig(arch=arch, width=8, fused=16)).eval()
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_attention_and_pyramid_keep_sizes() -> None:
    x = torch.rand(2, 16, 12, 12)
    assert ChannelAttention(16)(x).shape == x.shape
    pyramid = PyramidPooling(16)
    assert pyramid(x).shape == (2, pyramid.out_channels, 12, 12) and pyramid.out_channels == 16 + 4 * 4


def test_channel_attention_only_rescales_channels() -> None:
    x = torch.rand(1, 8, 6, 6)
    ratio = ChannelAttention(8)(x) / x
    flat = ratio.flatten(2)
    assert torch.allclose(flat, flat[..., :1].expand_as(flat), atol=1e-6)  # one factor per channel
    assert ((ratio > 0) & (ratio < 1)).all()


def test_mcnn_feature_maps_accept_signed_input() -> None:
    model = build_fer(FerConfig(width=8, fused=16)).eval()
    maps = model.feature_maps(torch.rand(1, 1, 48, 48) * 2 - 1)
    assert [m.shape[1] for m in maps] == [16, 16]


def test_unknown_arch_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown arch"):
        FerConfig(arch="alexnet")
