import pytest
import torch
from torch import nn

from srfer.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, build_model


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_generator_output_size_follows_scale(scale: int) -> None:
    gen = Generator(GeneratorConfig(features=8, blocks=1, scale=scale))
    out = gen(torch.rand(2, 3, 16, 12) * 2 - 1)
    assert out.shape == (2, 3, 16 * scale, 12 * scale)
    assert out.abs().max() <= 1  # tanh range


@pytest.mark.parametrize(("lr_size", "channels"), [(12, 1), (32, 3)])
def test_same_weights_run_12_to_48_and_32_to_128(lr_size: int, channels: int) -> None:
    gen = Generator(GeneratorConfig(channels=channels, features=8, blocks=2, scale=4))
    assert gen(torch.zeros(1, channels, lr_size, lr_size)).shape == (1, channels, 4 * lr_size, 4 * lr_size)
    assert gen(torch.zeros(1, channels, 12, 12)).shape[-1] == 48  # fully convolutional


def test_default_generator_is_the_seed_design() -> None:
    gen = Generator()
    assert len(gen.trunk) == 16 and gen.head[0].kernel_size == (9, 9) and gen.tail.kernel_size == (9, 9)
    assert len(gen.upsample) == 2 and gen.upsample[0].conv.out_channels == 256
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gen.modules())


def test_rrdb_generator_swaps_only_the_trunk() -> None:
    """--arch rrdb: ESRGAN's blocks (3 dense blocks of 5 convs, growth channels each) in the
    trunk; head, upsampling and tail as SRResNet's; fresh blocks start near the identity."""
    config = GeneratorConfig(features=8, blocks=2, growth=4, arch="rrdb")
    gen = Generator(config)
    rrdb = gen.trunk[0]
    assert len(gen.trunk) == 2 and len(rrdb.body) == 3 and len(rrdb.body[0].convs) == 5
    assert [c.out_channels for c in rrdb.body[0].convs] == [4, 4, 4, 4, 8]
    assert rrdb.body[0].convs[-1].in_channels == 8 + 4 * 4
    x = torch.randn(1, 8, 6, 6)
    dense = rrdb.body[0]  # residual scaling + small init: a fresh dense block is nearly the identity
    assert (dense(x) - x).abs().mean() < 0.02 * x.abs().mean()
    assert torch.allclose(rrdb(x), 1.2 * x, atol=0.05)  # ESRGAN: x + 0.2 · (three dense blocks of x)
    assert gen(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 32, 32)
    assert build_model("sr-generator", config.to_dict()).config == config
    with pytest.raises(ValueError, match="arch"):
        GeneratorConfig(arch="edsr")


def test_pixel_shuffle_ordering() -> None:
    """Channel c·4 + i·2 + j of the conv output lands at pixel (2y+i, 2x+j) of channel c."""
    x = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).reshape(1, 8, 3, 3)
    y = nn.PixelShuffle(2)(x)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(y[0, c, i::2, j::2], x[0, c * 4 + i * 2 + j])


def test_bad_generator_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="scale"):
        GeneratorConfig(scale=3)
    with pytest.raises(ValueError, match="channels"):
        GeneratorConfig(channels=2)


@pytest.mark.parametrize("size", [48, 128])
def test_discriminator_is_size_agnostic(size: int) -> None:
    disc = Discriminator(DiscriminatorConfig(features=8, hidden=16))
    assert disc(torch.zeros(3, 3, size, size)).shape == (3,)
    maps = disc.feature_maps(torch.zeros(1, 3, size, size))
    assert [m.shape[-1] for m in maps] == [size // 2, size // 4, size // 8, size // 16]


def test_build_model_round_trips_config() -> None:
    cfg = GeneratorConfig(features=8, blocks=3, scale=2, channels=1)
    model = build_model("sr-generator", cfg.to_dict())
    assert model.config == cfg
    with pytest.raises(KeyError, match="unknown model kind"):
        build_model("nope", {})


def test_bicubic_skip_starts_at_bicubic() -> None:
    gen = Generator(GeneratorConfig(features=8, blocks=1, bicubic_skip=True)).eval()
    lr = torch.rand(1, 3, 8, 8) * 1.6 - 0.8
    bicubic = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(gen(lr), bicubic.clamp(-1, 1))


def test_dlib_resnet29_shapes_follow_the_port() -> None:
    from srfer.models.dlib_resnet import DlibResNet29, DownBlock

    net = DlibResNet29().eval()
    assert sum(p.numel() for p in net.parameters()) == 5_614_592  # face-api's 117 tensors
    x = torch.rand(2, 3, 150, 150)
    with torch.no_grad():
        maps = net.feature_maps(x)
        assert [tuple(m.shape[1:]) for m in maps] == [(32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4)]
        assert net(x).shape == (2, 128)
        # a down block whose conv branch is one pixel short (4 → 1 vs 2) is zero-padded at the bottom right
        block = DownBlock(4, 4).eval()
        for p in block.parameters():
            nn.init.constant_(p, 0.0)
        y = torch.rand(1, 4, 4, 4)
        assert torch.allclose(block(y), nn.functional.avg_pool2d(y, 2).relu())


def test_embedder_normalises_per_backbone() -> None:
    from srfer.models import Embedder, EmbedderConfig
    from srfer.models.dlib_resnet import MEAN_RGB

    dlib = Embedder(EmbedderConfig(backbone="dlib-resnet29"))
    assert dlib.config.input_size == 150 and dlib.config.dim == 128
    grey = torch.full((1, 3, 8, 8), 0.5)
    expected = 0.5 - torch.tensor(MEAN_RGB).view(1, 3, 1, 1) / 255
    assert torch.allclose(dlib.normalise(grey), expected)
    assert torch.allclose(Embedder().normalise(grey), torch.zeros_like(grey))  # srfer's own: [-1, 1]
