"""`srfer.accel`: CPU inference re-parameterisations keep each network's function."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from srfer.accel import deploy
from srfer.accel.deploy import PackedConv2d, switch_to_cpu_deploy
from srfer.accel.sr_phases import PhaseSplitConv, UpsampleToPhases, deploy_generator
from srfer.models.dlib_resnet import Affine, DlibResNet29
from srfer.models.fer import FerConfig, build_fer
from srfer.models.srgan import Generator, GeneratorConfig

needs_onednn = pytest.mark.skipif(not deploy.packing_available(), reason="this torch has no oneDNN packing")


def randomise_affines(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial per-channel affines and running statistics, so that folding them matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=g) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=g) + 0.5)
            if isinstance(module, (nn.BatchNorm2d, Affine)):
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize("network", ["mcnn", "dlib-resnet29", "faceapi-expression"])
def test_a_deployed_network_computes_the_same_function(network: str) -> None:
    torch.manual_seed(0)
    if network == "mcnn":
        model, shape = build_fer(FerConfig(width=8, fused=32)), (3, 1, 48, 48)
    elif network == "faceapi-expression":  # depthwise convolutions (groups = channels) packed too
        model, shape = build_fer(FerConfig(arch=network)), (3, 1, 48, 48)
    else:
        model, shape = DlibResNet29(), (3, 3, 150, 150)
    model = randomise_affines(model, seed=1)
    x = torch.rand(shape)
    with torch.no_grad():
        expected = model(x)
        deployed = switch_to_cpu_deploy(copy.deepcopy(model))
        for batch in (x[:1], x, x.contiguous(memory_format=torch.channels_last)):
            torch.testing.assert_close(deployed(batch), expected[: len(batch)], atol=2e-5, rtol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    assert not any(isinstance(m, Affine) for m in deployed.modules())
    if deploy.packing_available():
        assert not any(type(m) is nn.Conv2d for m in deployed.modules())


def test_without_onednn_only_the_folding_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy, "packing_available", lambda: False)
    model = randomise_affines(build_fer(FerConfig(width=8, fused=32)), seed=2)
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        expected = model(x)
        deployed = switch_to_cpu_deploy(model)
        torch.testing.assert_close(deployed(x), expected, atol=2e-5, rtol=1e-4)
    assert not any(isinstance(m, PackedConv2d) for m in deployed.modules())


@needs_onednn
@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Conv2d(8, 8, 3, stride=2, bias=False),
        nn.Conv2d(8, 16, 5, padding=2, dilation=1, groups=2),
        nn.Conv2d(4, 6, 1),
    ],
    ids=["3x3", "stride-2-no-bias", "grouped-5x5", "1x1"],
)
def test_a_packed_convolution_is_the_convolution(conv: nn.Conv2d) -> None:
    packed = PackedConv2d(conv)
    x = torch.randn(2, conv.in_channels, 13, 11)
    with torch.no_grad():
        expected = conv(x)
        torch.testing.assert_close(packed(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(packed(x.contiguous(memory_format=torch.channels_last)), expected,
                                   atol=1e-5, rtol=1e-5)  # fmt: skip
        for twin in (copy.deepcopy(packed), pickle.loads(pickle.dumps(packed))):  # oneDNN's layout repacked
            torch.testing.assert_close(twin(x), expected, atol=1e-5, rtol=1e-5)
        # another dtype: the plain weight, through F.conv2d
        torch.testing.assert_close(packed.double()(x.double()), conv.double()(x.double()))


def test_a_deployed_network_still_exports() -> None:
    """ONNX export traces through torch.export, which has no kernel for oneDNN's packed weights:
    under it a packed convolution is a plain one."""
    model = switch_to_cpu_deploy(randomise_affines(build_fer(FerConfig(width=8, fused=32)), seed=3))
    x = torch.rand(2, 1, 48, 48)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("kernel", "height", "width"), [(9, 16, 12), (3, 6, 10), (5, 7, 8)])
def test_a_phase_split_convolution_is_the_same_convolution(kernel: int, height: int, width: int) -> None:
    """Even sizes take the space-to-depth path, odd ones the plain convolution; both agree."""
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 3, kernel, padding=kernel // 2)
    x = torch.randn(2, 6, height, width)
    with torch.no_grad():
        torch.testing.assert_close(PhaseSplitConv(conv)(x), conv(x), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="stride-1"):
        PhaseSplitConv(nn.Conv2d(6, 3, 3, stride=2, padding=1))


@pytest.mark.parametrize("scale", [4, 8])
def test_a_deployed_generator_computes_the_same_images(scale: int) -> None:
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig(features=8, blocks=1, scale=scale)).eval()
    with torch.no_grad():
        gen.tail.weight.normal_(0, 0.05)  # a tail that matters (bicubic_skip would start it at zero)
        for block in gen.upsample:
            block.act.weight.uniform_(-0.5, 0.5)  # slopes per channel: the phases must keep their channel
    lr = torch.rand(2, 3, 10, 6) * 2 - 1
    with torch.no_grad():
        before = gen(lr)
        split_only = copy.deepcopy(gen)
        split_only.tail = PhaseSplitConv(split_only.tail)
        deployed = deploy_generator(gen)
        assert isinstance(deployed.tail, PhaseSplitConv)
        assert isinstance(deployed.upsample[-1], UpsampleToPhases)
        torch.testing.assert_close(deployed(lr), before, atol=1e-5, rtol=0)
        assert torch.equal(deployed(lr), split_only(lr))  # handing over the phases changes no bit
