import math

import torch

from srfer.data.degradations import bicubic_resize, downsample, quantize_8bit
from srfer.metrics import psnr_per_image, ssim_per_image


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
