import dataclasses
from pathlib import Path

import pytest
import torch

from srfer.core.errors import SrferError
from srfer.data.faces import SRPairDataset, collate_skipping_failures, discover_faces
from srfer.models import DiscriminatorConfig, GeneratorConfig
from srfer.train.args import SRTrainArgs
from srfer.train.engine import Engine, EngineConfig, TrainingInterrupted
from srfer.train.losses import pixel_mse
from srfer.train.schedule import cosine_factor
from srfer.train.sr import SRGANRecipe, train_sr


def make_engine(
    folder: Path, out: Path, gen: GeneratorConfig, epochs: int = 2, pretrain: int = 2, resume: bool = False
) -> tuple[Engine, SRGANRecipe]:
    torch.manual_seed(0)
    source = discover_faces(folder, "all")
    data = SRPairDataset(source, hr_size=32, scale=4)
    small_disc = DiscriminatorConfig(features=4, hidden=8)
    recipe = SRGANRecipe(gen, lr=1e-3, pretrain_epochs=pretrain, epochs=epochs, discriminator=small_disc)
    cfg = EngineConfig(
        out=out, epochs=epochs, batch_size=4, device="cpu", epoch_size=12, workers=0, resume=resume
    )
    return Engine(recipe, data, data, cfg, collate_skipping_failures), recipe


def test_a_few_steps_reduce_the_pixel_loss(face_folder: Path, tiny_gen: GeneratorConfig) -> None:
    torch.manual_seed(0)
    data = SRPairDataset(discover_faces(face_folder, "all"), hr_size=32, scale=4, augment=False)
    batch = collate_skipping_failures([data[i] for i in range(8)])
    recipe = SRGANRecipe(tiny_gen, lr=3e-3)
    with torch.no_grad():
        before = float(pixel_mse(recipe.generator(batch["lr"]), batch["hr"]))
    from srfer.train.engine import StepContext

    ctx = StepContext(torch.device("cpu"), None)
    for _ in range(30):
        recipe.train_step(batch, ctx)
    with torch.no_grad():
        after = float(pixel_mse(recipe.generator(batch["lr"]), batch["hr"]))
    assert after < 0.5 * before


@pytest.mark.slow
def test_resume_after_interrupt_matches_an_uninterrupted_run(
    face_folder: Path, tiny_gen: GeneratorConfig, tmp_path: Path
) -> None:
    straight, recipe_a = make_engine(face_folder, tmp_path / "a", tiny_gen)
    straight.fit()

    interrupted, recipe_b = make_engine(face_folder, tmp_path / "b", tiny_gen)
    real_step = recipe_b.train_step

    def step_then_ctrl_c(batch, ctx):
        if ctx.step == 4:  # mid-way through epoch 2 (3 steps per epoch)
            raise KeyboardInterrupt
        return real_step(batch, ctx)

    recipe_b.train_step = step_then_ctrl_c
    with pytest.raises(TrainingInterrupted):
        interrupted.fit()
    resumed, recipe_c = make_engine(face_folder, tmp_path / "b", tiny_gen, resume=True)
    resumed.load(tmp_path / "b" / "last.safetensors")
    assert (resumed.state.epoch, resumed.state.step, resumed.state.batches_done) == (1, 4, 1)
    resumed, recipe_c = make_engine(face_folder, tmp_path / "b", tiny_gen, resume=True)
    resumed.fit()
    assert resumed.state.step == straight.state.step == 6
    for (name, a), b in zip(
        recipe_a.generator.state_dict().items(), recipe_c.generator.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one record per finished epoch


@pytest.mark.slow
def test_gan_phase_trains_discriminator(face_folder: Path, tiny_gen: GeneratorConfig, tmp_path: Path) -> None:
    engine, recipe = make_engine(face_folder, tmp_path / "gan", tiny_gen, epochs=2, pretrain=1)
    engine.fit()
    records = engine.state.history
    assert "train_mse" in records[0] and "train_d_loss" in records[1]
    assert all(torch.isfinite(torch.tensor(r["train_g_loss"])) for r in records[1:])
    assert (tmp_path / "gan" / "best.safetensors").is_file() and (tmp_path / "gan" / "curves.png").is_file()
    assert (tmp_path / "gan" / "samples" / "epoch-0002.png").is_file()


def test_existing_run_needs_resume_and_resume_needs_a_run(
    face_folder: Path, tiny_gen: GeneratorConfig, tmp_path: Path
) -> None:
    engine, _ = make_engine(face_folder, tmp_path / "r", tiny_gen, epochs=1, pretrain=1)
    engine.fit()
    again, _ = make_engine(face_folder, tmp_path / "r", tiny_gen, epochs=1, pretrain=1)
    with pytest.raises(SrferError, match="already holds a run"):
        again.fit()
    fresh, _ = make_engine(face_folder, tmp_path / "new", tiny_gen, epochs=1, pretrain=1, resume=True)
    with pytest.raises(SrferError, match="no .* to resume"):
        fresh.fit()
    other, _ = make_engine(face_folder, tmp_path / "r", GeneratorConfig(features=4, blocks=1), resume=True)
    with pytest.raises(SrferError, match="does not match"):
        other.fit()


def test_cosine_restarts_at_phase_boundaries() -> None:
    assert cosine_factor(0, [0, 10], 20, 0.0) == pytest.approx(1.0)
    assert cosine_factor(5, [0, 10], 20, 0.0) == pytest.approx(0.5)
    assert cosine_factor(10, [0, 10], 20, 0.0) == pytest.approx(1.0)
    assert cosine_factor(20, [0, 10], 20, 0.1) == pytest.approx(0.1)


@pytest.mark.slow
def test_early_stopping(face_folder: Path, tmp_path: Path) -> None:
    args = SRTrainArgs(
        data=face_folder,
        out=tmp_path / "es",
        epochs=6,
        pretrain_epochs=6,
        batch_size=4,
        lr=0.0,
        hr_size=32,
        blocks=1,
        features=4,
        epoch_size=4,
        patience=2,
        workers=0,
        device="cpu",
    )
    result = train_sr(args)  # lr 0 never improves after epoch 1
    assert result["epochs_run"] == 3 and result["best_epoch"] == 1
    resumed = train_sr(dataclasses.replace(args, resume=True))  # an early-stopped run stays stopped
    assert resumed["epochs_run"] == 3


def test_sigterm_saves_state_like_ctrl_c(
    face_folder: Path, tiny_gen: GeneratorConfig, tmp_path: Path
) -> None:
    import os
    import signal

    engine, recipe = make_engine(face_folder, tmp_path / "t", tiny_gen, epochs=1, pretrain=1)
    real_step = recipe.train_step

    def step_then_sigterm(batch, ctx):
        if ctx.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(batch, ctx)

    recipe.train_step = step_then_sigterm
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted):
        engine.fit()
    assert signal.getsignal(signal.SIGTERM) == before  # the engine's handler is not left installed
    resumed, _ = make_engine(face_folder, tmp_path / "t", tiny_gen, epochs=1, pretrain=1, resume=True)
    resumed.load(tmp_path / "t" / "last.safetensors")
    assert resumed.state.batches_done == 1


@pytest.mark.slow
def test_init_starts_from_trained_weights(face_folder: Path, tmp_path: Path) -> None:
    from srfer.core.checkpoint import load_checkpoint

    base = dict(data=face_folder, epochs=1, pretrain_epochs=1, batch_size=4, hr_size=32, blocks=1, features=4,
                epoch_size=4, workers=0, device="cpu")  # fmt: skip
    train_sr(SRTrainArgs(out=tmp_path / "a", lr=1e-3, **base))
    first = tmp_path / "a" / "best.safetensors"
    train_sr(SRTrainArgs(out=tmp_path / "b", lr=0.0, init=first, **base))  # lr 0: weights stay as loaded
    a = load_checkpoint(first).section("model")
    b = load_checkpoint(tmp_path / "b" / "best.safetensors").section("model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(SrferError, match="--init"):
        train_sr(SRTrainArgs(out=tmp_path / "c", lr=0.0, init=first, **{**base, "features": 8}))


def tiny_embedder_checkpoint(tmp_path: Path) -> Path:
    from srfer.core.checkpoint import save_checkpoint
    from srfer.models.embedder import Embedder, EmbedderConfig

    net = Embedder(EmbedderConfig(widths=(4, 4, 4, 4), dim=8, input_size=32))
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    return save_checkpoint(tmp_path / "e.safetensors", "face-embedder", net.config.to_dict(), tensors)


def test_identity_aware_fine_tune_trains_without_a_discriminator(
    face_folder: Path, tiny_gen: GeneratorConfig, tmp_path: Path
) -> None:
    from srfer.train.engine import StepContext
    from srfer.train.losses import SRLossWeights, build_perceptual

    backbone = build_perceptual(f"ckpt:{tiny_embedder_checkpoint(tmp_path)}")
    weights = SRLossWeights(content=0.0, adversarial=0.0, pixel=1.0, identity=0.5)
    recipe = SRGANRecipe(tiny_gen, pretrain_epochs=0, epochs=1, backbone=backbone, weights=weights,
                         lr_sizes=(8, 4))  # fmt: skip
    assert set(recipe.networks()) == {"generator"}  # adversarial weight 0: no discriminator to train
    assert (recipe.monitor, recipe.monitor_mode) == ("val_identity_distance_mean", "min")
    data = SRPairDataset(discover_faces(face_folder, "all"), hr_size=32, scale=4)
    batch = collate_skipping_failures([data[i] for i in range(4)])
    for step in (0, 1):  # step 1 draws the 4 px faces (HR target resized to 16 px)
        terms = recipe.train_step(batch, StepContext(torch.device("cpu"), None, step=step))
        assert set(terms) == {"g_loss", "pixel", "identity"} and terms["identity"] > 0
    lr4, hr16 = recipe._pair_at(torch.rand(2, 3, 32, 32), 4)
    assert lr4.shape[-1] == 4 and hr16.shape[-1] == 16
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate_skipping_failures)
    scores = recipe.validate(loader, StepContext(torch.device("cpu"), None))
    assert {"val_psnr_4px", "val_identity_distance_bicubic_4px"} <= set(scores)
    per_size = (scores["val_identity_distance"], scores["val_identity_distance_4px"])
    assert scores["val_identity_distance_mean"] == pytest.approx(sum(per_size) / 2)


def test_a_gan_judged_by_a_face_embedder_keeps_the_most_realistic_epoch(
    face_folder: Path, tiny_gen: GeneratorConfig, tmp_path: Path
) -> None:
    from srfer.eval.metrics import frechet_distance
    from srfer.infer.run import bicubic_baseline
    from srfer.train.engine import StepContext
    from srfer.train.losses import SRLossWeights, build_perceptual

    backbone = build_perceptual(f"ckpt:{tiny_embedder_checkpoint(tmp_path)}")
    weights = SRLossWeights(content=1.0, content_layer=1)
    recipe = SRGANRecipe(tiny_gen, pretrain_epochs=0, epochs=1, backbone=backbone, weights=weights,
                         discriminator=DiscriminatorConfig(features=4, hidden=8))  # fmt: skip
    assert (recipe.monitor, recipe.monitor_mode) == ("val_frechet", "min") and "discriminator" in recipe.nets
    data = SRPairDataset(discover_faces(face_folder, "all"), hr_size=32, scale=4, augment=False)
    batch = collate_skipping_failures([data[i] for i in range(4)])
    terms = recipe.train_step(batch, StepContext(torch.device("cpu"), None))
    assert {"content", "adversarial", "d_loss"} <= set(terms)
    loader = torch.utils.data.DataLoader(data, batch_size=8, collate_fn=collate_skipping_failures)
    scores = recipe.validate(loader, StepContext(torch.device("cpu"), None))
    batches = list(loader)  # the bicubic column by hand: HR and bicubic faces through the embedder
    hr = torch.cat([b["hr"] for b in batches])
    bicubic = torch.cat([bicubic_baseline(b["lr"], hr.shape[-2:]) * 2 - 1 for b in batches])
    with torch.no_grad():
        expected = frechet_distance(backbone.embedding(hr), backbone.embedding(bicubic))
    assert scores["val_frechet_bicubic"] == pytest.approx(expected, rel=1e-4) and scores["val_frechet"] > 0
    bad = dict(data=face_folder, out=tmp_path / "r", hr_size=32, device="cpu", pretrain_epochs=0, epochs=1,
               perceptual=f"ckpt:{tiny_embedder_checkpoint(tmp_path)}", content_layer=7)  # fmt: skip
    with pytest.raises(SrferError, match="--content-layer 7: the backbone has 4 maps"):
        train_sr(SRTrainArgs(**bad))


def test_identity_weight_needs_a_face_embedder(face_folder: Path, tiny_gen: GeneratorConfig) -> None:
    from srfer.train.losses import SRLossWeights

    with pytest.raises(SrferError, match="--identity-weight needs"):
        SRGANRecipe(tiny_gen, pretrain_epochs=0, epochs=1, weights=SRLossWeights(identity=1.0))
    with pytest.raises(SrferError, match="--identity-weight needs"):  # a pixel-only run has no second phase
        SRGANRecipe(tiny_gen, pretrain_epochs=1, epochs=1, weights=SRLossWeights(identity=1.0))
    base = dict(data=face_folder, out=face_folder.parent / "r", hr_size=32, device="cpu")
    for bad in ("32,16", "8,x"):  # 32 px > 32 / 4
        with pytest.raises(SrferError, match="--lr-sizes"):
            train_sr(SRTrainArgs(lr_sizes=bad, **base))


@pytest.mark.slow
def test_align_to_trains_on_chips_aligned_like_the_embedder_and_records_it(
    face_folder: Path, tmp_path: Path
) -> None:
    """`--align-to` an aligning embedder (its file names a template): the SR's faces are its
    chips, the run records the framing and which recogniser an identity term was made for."""
    from synthetic import tiny_checkpoints

    from srfer.convert.export import export_weights
    from srfer.core.checkpoint import load_checkpoint
    from srfer.core.weights import sha256

    files = tiny_checkpoints(tmp_path)
    base = dict(data=face_folder, epochs=1, pretrain_epochs=0, batch_size=4, hr_size=32, blocks=1, features=4,
                epoch_size=4, workers=0, device="cpu", adversarial_weight=0.0, content_weight=0.0,
                pixel_weight=1.0, identity_weight=1.0, amp=False)  # fmt: skip
    embedder = files["embed_aligned"]
    train_sr(SRTrainArgs(out=tmp_path / "a", align_to=embedder, perceptual=f"ckpt:{embedder}", **base))
    meta = load_checkpoint(
        export_weights(tmp_path / "a" / "best.safetensors", tmp_path / "a.safetensors")
    ).meta
    assert meta["input"]["alignment"]["name"] == "dlib-chip-padding-0.25"
    counted = meta["data"]["alignment"]
    assert sum(c["aligned_by_landmarks"] + c["fallback_centre_crop"] for c in counted.values()) == 24
    assert meta["identity_embedder"]["sha256"] == sha256(embedder)
    with pytest.raises(SrferError, match="centre crops"):  # srfer's own embedders take centre crops
        train_sr(SRTrainArgs(out=tmp_path / "b", align_to=files["embed"], perceptual="none", **base))
