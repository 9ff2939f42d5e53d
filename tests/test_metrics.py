import math

import pytest
import torch

from srfer.data.degradations import bicubic_resize, downsample, quantize_8bit
from srfer.eval.metrics import frechet_distance, psnr_per_image, ssim_per_image


def test_psnr_matches_hand_computed_value() -> None:
    pred = torch.full((1, 3, 8, 8), 0.5)  # quantises to 128/255
    target = torch.full((1, 3, 8, 8), 0.6)  # quantises to 153/255
    expected = 20 * math.log10(255 / 25)
    assert abs(float(psnr_per_image(pred, target)[0]) - expected) < 1e-3


def test_psnr_and_ssim_are_per_image() -> None:
    target = torch.rand(3, 3, 32, 32)
    pred = target.clone()
    pred[1] = (pred[1] + 0.1).clamp(0, 1)
    psnr, ssim = psnr_per_image(pred, target), ssim_per_image(pred, target)
    assert psnr.shape == ssim.shape == (3,)
    assert torch.isinf(psnr[0]) or psnr[0] > 60
    assert psnr[1] < 30 and abs(float(ssim[0]) - 1) < 1e-5 and ssim[1] < 1


def test_degradation_quantises_and_downsamples() -> None:
    hr = torch.rand(3, 32, 32)
    lr = downsample(hr, 4)
    assert lr.shape == (3, 8, 8)
    assert torch.equal(lr, quantize_8bit(lr))
    assert bicubic_resize(lr, 32).shape == (3, 32, 32)


def test_frechet_distance_against_closed_forms() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 6, generator=g) * torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.5])
    assert abs(frechet_distance(a, a)) < 1e-8
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.square().sum()), rel=1e-6)
    # b = 2a (zero mean): Tr(Σ + 4Σ − 2·(4Σ²)^½) = Tr(Σ)
    centred = a - a.mean(0)
    trace = float(torch.cov(centred.T).trace())
    assert frechet_distance(centred, 2 * centred) == pytest.approx(trace, rel=1e-6)
    # independent Gaussians with diagonal covariances: Σ (σa − σb)² per dimension
    b = torch.randn(4000, 6, generator=g)
    expected = float((a.std(0) - b.std(0)).square().sum() + (a.mean(0) - b.mean(0)).square().sum())
    assert frechet_distance(a, b) == pytest.approx(expected, abs=0.15)
