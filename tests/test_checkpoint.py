from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from srfer.core.checkpoint import flatten, load_checkpoint, save_checkpoint, unflatten
from srfer.core.errors import SrferError
from srfer.models import Generator, GeneratorConfig, build_model


def test_flatten_round_trips_an_optimizer_state() -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(opt.state_dict(), "opt", tensors)
    restored = unflatten(skeleton, tensors)
    assert restored["param_groups"][0]["betas"] == (0.9, 0.99)
    assert set(restored["state"]) == {0, 1}  # int keys survive
    assert torch.equal(restored["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(restored)


def test_checkpoint_alone_rebuilds_its_model(tmp_path: Path) -> None:
    cfg = GeneratorConfig(features=8, blocks=1)
    gen = Generator(cfg)
    tensors = {f"model.{k}": v for k, v in gen.state_dict().items()}
    path = save_checkpoint(tmp_path / "g.safetensors", "sr-generator", cfg.to_dict(), tensors, {"m": 1})
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file
    ckpt = load_checkpoint(path, expect_kind="sr-generator")
    rebuilt = build_model(ckpt.kind, ckpt.config)
    rebuilt.load_state_dict(ckpt.section("model"))
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(rebuilt(x), gen(x)) and ckpt.meta == {"m": 1}


def test_wrong_files_are_clear_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, not a checkpoint")
    with pytest.raises(SrferError, match="not a safetensors checkpoint"):
        load_checkpoint(text)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(SrferError, match="not a srfer checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(SrferError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    disc = save_checkpoint(tmp_path / "d.safetensors", "sr-discriminator", {}, {"model.w": torch.zeros(1)})
    with pytest.raises(SrferError, match="expected 'sr-generator'"):
        load_checkpoint(disc, expect_kind="sr-generator")


def test_checkpoints_follow_the_umask(tmp_path) -> None:
    import os

    import torch

    from srfer.core.checkpoint import save_checkpoint

    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "w.safetensors", "sr-generator", {}, {"model.w": torch.zeros(1)})
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
