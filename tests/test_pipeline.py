import torch

from srfer.faces.annotate import comparison_strip
from srfer.infer.run import super_resolve
from srfer.models import Generator, GeneratorConfig


def test_flip_tta_averages_the_mirrored_result() -> None:
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig(features=8, blocks=1)).eval()
    x = torch.rand(2, 3, 8, 8)
    plain = super_resolve(gen, x)
    mirrored = super_resolve(gen, x.flip(-1)).flip(-1)
    assert torch.allclose(super_resolve(gen, x, flip_tta=True), (plain + mirrored) / 2, atol=1e-5)
    assert plain.shape == (2, 3, 32, 32) and plain.min() >= 0 and plain.max() <= 1


def test_comparison_strip_layout() -> None:
    strip = comparison_strip(torch.rand(3, 8, 8), torch.rand(3, 32, 32))
    assert strip.shape == (3, 32, 3 * 32 + 8)


def test_sweep_sizes_are_all_checked_before_any_work() -> None:
    import pytest

    from srfer.core.errors import SrferError
    from srfer.eval.sweeps import check_sweep_sizes

    check_sweep_sizes([48, 12, 8], 4, 48)
    with pytest.raises(SrferError, match=r"\[2, 96\]"):
        check_sweep_sizes([48, 2, 12, 96], 4, 48)
