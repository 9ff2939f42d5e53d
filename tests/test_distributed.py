"""Data-parallel training (DDP) on two CPU ranks over gloo: tiny synthetic data, a few steps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from srfer.cli import app
from srfer.core.checkpoint import load_checkpoint
from srfer.data.faces import SRPairDataset, collate_skipping_failures, discover_faces
from srfer.models import DiscriminatorConfig, GeneratorConfig
from srfer.train import distributed
from srfer.train.distributed import World, shard
from srfer.train.engine import Engine, EngineConfig
from srfer.train.sr import SRGANRecipe

GEN = GeneratorConfig(channels=3, features=8, blocks=1, scale=4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_sr_recipe(epochs: int, pretrain: int) -> SRGANRecipe:
    """The recipe with its seeded initial weights."""
    torch.manual_seed(0)
    disc = DiscriminatorConfig(features=4, hidden=8)
    return SRGANRecipe(
        GEN, lr=1e-3, pretrain_epochs=pretrain, epochs=epochs, discriminator=disc, backbone=None
    )


def fit_tiny_sr(folder: Path, out: Path, epochs: int, pretrain: int) -> SRGANRecipe:
    """The SR recipe on 32 px faces: global batch 8, 3 steps per epoch."""
    recipe = tiny_sr_recipe(epochs, pretrain)
    data = SRPairDataset(discover_faces(folder, "all"), hr_size=32, scale=4)
    cfg = EngineConfig(out=out, epochs=epochs, batch_size=8, epoch_size=24, device="cpu", workers=0, seed=3)
    Engine(recipe, data, data, cfg, collate_skipping_failures).fit()
    return recipe


RUNS = {"pixel": (2, 2), "gan": (2, 1)}  # name → (epochs, pretrain epochs): the GAN run trains two networks


def rank_worker(rank: int, port: int, folder: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"))
    for name, (epochs, pretrain) in RUNS.items():
        recipe = fit_tiny_sr(Path(folder), Path(out) / name, epochs, pretrain)
        weights = {f"{net_name}.{k}": v.detach().contiguous() for net_name, net in recipe.networks().items()
                   for k, v in net.named_parameters()}  # fmt: skip
        save_file(weights, str(Path(out) / name / f"rank{rank}.safetensors"))


def test_a_global_batch_is_split_into_contiguous_rank_shares() -> None:
    batch = list(range(12))  # e.g. P = 4 identities × K = 3, grouped by identity
    assert shard(batch, World(0, 2)) == [0, 1, 2, 3, 4, 5]
    assert shard(batch, World(1, 2)) == [6, 7, 8, 9, 10, 11]
    assert shard(batch, World(0, 1)) == batch


@pytest.mark.slow
def test_two_gloo_ranks_agree_and_match_one_process_with_the_same_global_batch(
    face_folder: Path, tmp_path: Path
) -> None:
    mp.spawn(rank_worker, args=(free_port(), str(face_folder), str(tmp_path)), nprocs=2)
    for name in RUNS:  # DDP: every rank steps with the same gradient, in the GAN phase too
        ranks = [load_file(str(tmp_path / name / f"rank{r}.safetensors")) for r in range(2)]
        assert ranks[0].keys() == ranks[1].keys()
        for key, value in ranks[0].items():
            assert torch.equal(value, ranks[1][key]), f"{name}: {key}"
    assert any(k.startswith("discriminator.") for k in ranks[0])
    pixel = load_file(str(tmp_path / "pixel" / "rank0.safetensors"))
    start = {k: v.detach().clone() for k, v in tiny_sr_recipe(*RUNS["pixel"]).generator.named_parameters()}
    single = fit_tiny_sr(face_folder, tmp_path / "single", *RUNS["pixel"]).generator
    for key, value in single.named_parameters():
        # Same trajectory up to float noise: CPUs reduce the half and whole batches in different
        # orders, and Adam's first steps (≈ lr · sign g) magnify that noise where g ≈ 0 (2e-4
        # absolute on this AMD EPYC, under 1e-5 on the CPU CI ran on before). So the gap is
        # held to 2 % of how far each tensor moved (measured here: at most 0.6 %).
        moved, gap = (value.detach() - start[key]).norm(), (pixel[f"generator.{key}"] - value.detach()).norm()
        assert gap <= 0.02 * moved + 1e-6, (key, float(gap), float(moved))
    # rank 0 alone wrote the run's records: one line per epoch, the checkpoints
    records = (tmp_path / "pixel" / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 2 and json.loads(records[-1])["train_images_per_s"] > 0
    assert (tmp_path / "pixel" / "best.safetensors").is_file()


@pytest.mark.slow
def test_torchrun_trains_and_a_single_process_resumes_the_run(face_folder: Path, tmp_path: Path) -> None:
    """The user's path: `torchrun -m srfer train-sr` on 2 CPU ranks, then `--resume` in one
    process (the world size changes; the global batch and sample stream do not)."""
    out = tmp_path / "run"
    common = ["train-sr", "--data", str(face_folder), "--out", str(out), "--hr-size", "32", "--blocks", "1",
              "--features", "8", "--pretrain-epochs", "2", "--batch-size", "8", "--epoch-size", "16",
              "--workers", "0", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(free_port()), "-m", "srfer"]  # fmt: skip
    first = subprocess.run([*torchrun, *common, "--epochs", "1"], env=env, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stderr.count("2 processes (DDP)") == 1  # rank 0 alone speaks
    resumed = CliRunner().invoke(app, [*common, "--epochs", "2", "--resume"])  # one process, in this one
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.stderr
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert load_checkpoint(out / "last.safetensors").meta["engine"]["step"] == 4


def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused(monkeypatch) -> None:
    from srfer.core.errors import SrferError

    monkeypatch.setattr(distributed, "_world", World(0, 3))
    with pytest.raises(SrferError, match="does not split over 3 processes"):
        distributed.check_batch(8)
