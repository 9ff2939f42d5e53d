import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm

from srfer.models import Embedder, EmbedderConfig
from srfer.models.fer import (
    FER_BACKBONES,
    IMAGENET_STD,
    ChannelAttention,
    FerConfig,
    PyramidPooling,
    build_fer,
    stem_weight,
)
from srfer.models.fer_ensemble import ClassifierEnsemble


@pytest.mark.parametrize(
    "arch", [pytest.param(a, marks=pytest.mark.slow) if a == "vgg16_bn" else a for a in FER_BACKBONES.names()]
)
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


@pytest.mark.parametrize(("arch", "head"), [("resnet18", "fc."), ("mobilenet_v3_small", "classifier.3.")])
def test_imagenet_weights_fill_a_gray_torchvision_classifier(arch: str, head: str) -> None:
    torch.manual_seed(0)
    imagenet = getattr(tvm, arch)(weights=None).state_dict()  # random stand-in, same names and shapes
    model = build_fer(FerConfig(arch=arch))
    left = model.load_imagenet_state(imagenet)
    assert left and all(k.startswith(head) for k in left)  # only the new 7-way classifier is left
    own, stem = model.net.state_dict(), stem_weight(arch)
    body = next(k for k in own if k.endswith("weight") and k != stem and not k.startswith(head))
    assert torch.equal(own[body], imagenet[body])
    # a gray face excites the gray stem as its ImageNet-normalised RGB copy excites the RGB one,
    # up to one constant per channel (away from the zero-padded border)
    gray = torch.rand(2, 1, 48, 48)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
    )
    pad = own[stem].shape[-1] // 2
    ours = F.conv2d(gray, own[stem], padding=pad)
    theirs = F.conv2d((gray.expand(-1, 3, -1, -1) - mean) / std, imagenet[stem], padding=pad)
    inner = (ours - theirs)[..., pad:-pad, pad:-pad]
    assert torch.allclose(inner, inner[..., :1, :1].expand_as(inner), atol=1e-4)


def test_imagenet_weights_of_another_arch_are_refused() -> None:
    model = build_fer(FerConfig(arch="resnet18"))
    with pytest.raises(ValueError, match="conv1.weight"):
        model.load_imagenet_state(tvm.mobilenet_v3_small(weights=None).state_dict())


def test_dlib_classifier_starts_from_the_face_recogniser_trunk() -> None:
    torch.manual_seed(0)
    recogniser = Embedder(EmbedderConfig(backbone="dlib-resnet29"))
    model = build_fer(FerConfig(arch="dlib-resnet29", trunk_size=64)).eval()
    assert model.load_face_recogniser(recogniser.state_dict()) == len(model.trunk.state_dict())
    theirs = recogniser.backbone.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.trunk.state_dict().items())
    assert {id(p) for p in model.pretrained_parameters()} == {id(p) for p in model.trunk.parameters()}
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 7)  # gray 48 px in, resized inside
    narrow = Embedder(EmbedderConfig(backbone="dlib-resnet29", widths=(4, 4, 4, 4)))
    with pytest.raises(ValueError, match="not a dlib ResNet-29"):
        model.load_face_recogniser(narrow.state_dict())


def test_ensemble_averages_its_members_probabilities() -> None:
    torch.manual_seed(0)
    members = [build_fer(FerConfig(width=4, fused=16)).eval() for _ in range(3)]
    x = torch.rand(4, 1, 48, 48)
    mean = torch.stack([m(x).softmax(1) for m in members]).mean(0)
    ensemble = ClassifierEnsemble(members)
    assert torch.allclose(ensemble(x).softmax(1), mean, atol=1e-6) and ensemble.config is members[0].config
    other = build_fer(FerConfig(width=4, fused=16, num_classes=8))
    with pytest.raises(ValueError, match="differ"):
        ClassifierEnsemble([members[0], other])


def test_flip_averaged_is_the_mean_of_face_and_mirror() -> None:
    from srfer.models.fer_ensemble import FlipAveraged

    torch.manual_seed(0)
    model = build_fer(FerConfig(width=4, fused=16)).eval()
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        expected = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
        mirrored = FlipAveraged(model)
        torch.testing.assert_close(mirrored(x).softmax(1), expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(mirrored(x.flip(-1)), mirrored(x), atol=1e-5, rtol=1e-5)  # symmetric
    assert mirrored.config is model.config and not torch.allclose(model(x).softmax(1), expected)


def test_tf_same_padding_puts_the_odd_pixel_bottom_right() -> None:
    from srfer.models.faceapi_expression import tf_same_pad

    x = torch.ones(1, 1, 4, 5)
    padded = tf_same_pad(x, 3, 2)  # H 4 → out 2, total 1: (0, 1); W 5 → out 3, total 2: (1, 1)
    assert padded.shape == (1, 1, 5, 7)
    assert padded[0, 0, :4, 1:6].eq(1).all() and padded[0, 0, 4].eq(0).all()
    assert padded[0, 0, :, 0].eq(0).all() and padded[0, 0, :, 6].eq(0).all()
    assert tf_same_pad(x, 3, 1).shape == (1, 1, 6, 7)  # stride 1: one pixel on every side


def test_legacy_bilinear_resize_samples_at_i_times_in_over_out() -> None:
    from srfer.models.faceapi_expression import legacy_bilinear_resize

    row = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    up = legacy_bilinear_resize(row, 8)  # samples at 0, 0.5, …, 3.5 → the last clamps to 3
    torch.testing.assert_close(up[0, 0, 0], torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3, 3]))
    assert up.shape == (1, 1, 8, 8) and torch.equal(up[0, 0, 0], up[0, 0, 7])
    down = legacy_bilinear_resize(row, 3)  # samples at 0, 4/3, 8/3
    torch.testing.assert_close(down[0, 0, 0], torch.tensor([0.0, 4 / 3, 8 / 3]))
    assert legacy_bilinear_resize(row, 4) is row


def test_faceapi_dense_block_sums_as_face_api_does() -> None:
    from srfer.models.faceapi_expression import DenseBlock4

    torch.manual_seed(0)
    block = DenseBlock4(8, 16).eval()
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        out1 = F.relu(block.conv0(x))
        out2 = block.conv1(out1)
        out3 = block.conv2(F.relu(out1 + out2))
        out4 = block.conv3(F.relu(out1 + out2 + out3))
        torch.testing.assert_close(block(x), F.relu(out1 + out2 + out3 + out4))
    assert block(x).shape == (2, 16, 5, 5)


def test_faceapi_expression_classifier_has_face_apis_size_and_a_trunk_group() -> None:
    model = build_fer(FerConfig(arch="faceapi-expression"))
    assert sum(p.numel() for p in model.parameters()) == 323_687  # face-api's manifest holds as many
    assert len(model.pretrained_parameters()) == sum(1 for _ in model.trunk.parameters())
    assert model.eval()(torch.rand(1, 1, 48, 48)).shape == (1, 7)
