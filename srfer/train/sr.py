"""Stage 1 recipe: SRResNet pre-training (pixel MSE), then SRGAN adversarial training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision.utils import make_grid

from srfer.data.degradations import bicubic_resize, to_unit
from srfer.data.faces import SRPairDataset, collate_skipping_failures, discover_faces
from srfer.errors import SrferError
from srfer.imageio import save_image_atomic, tensor_to_pil
from srfer.losses import (
    FeatureBackbone,
    SRGANGeneratorLoss,
    SRLossWeights,
    build_perceptual,
    discriminator_loss,
    pixel_mse,
)
from srfer.metrics import PROTOCOL, sr_vs_bicubic
from srfer.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from srfer.pipeline import super_resolve
from srfer.plots import plot_training_curves
from srfer.train.engine import Engine, Recipe, RunArgs, StepContext, check_run_folder
from srfer.train.runtime import resolve_device

GRID_SAMPLES = 8


def bicubic_baseline(lr: torch.Tensor, hr_size: tuple[int, int]) -> torch.Tensor:
    """LR in [-1, 1] → bicubic upscale in [0, 1] (the baseline every SR number is against)."""
    return bicubic_resize(to_unit(lr), hr_size)


class SRGANRecipe(Recipe):
    kind = "sr-generator"
    monitor = "val_psnr"
    monitor_mode = "max"

    def __init__(
        self,
        generator: GeneratorConfig,
        lr: float = 1e-4,
        pretrain_epochs: int = 1,
        epochs: int = 1,
        backbone: FeatureBackbone | None = None,
        weights: SRLossWeights | None = None,
        discriminator: DiscriminatorConfig | None = None,
    ) -> None:
        self.generator = Generator(generator)
        self.pretrain_epochs, self.epochs = pretrain_epochs, epochs
        self.adversarial = epochs > pretrain_epochs
        self.weights = weights or SRLossWeights()
        betas = (0.9, 0.999)
        self.opts = {"generator": torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)}
        self.nets: dict[str, torch.nn.Module] = {"generator": self.generator}
        if self.adversarial:  # the discriminator only exists when a GAN phase will run
            disc_cfg = discriminator or DiscriminatorConfig(channels=generator.channels)
            self.discriminator = Discriminator(disc_cfg)
            self.nets["discriminator"] = self.discriminator
            self.opts["discriminator"] = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
            self.gan_loss = SRGANGeneratorLoss(backbone, self.weights)
        self._grid: torch.Tensor | None = None

    def networks(self) -> dict[str, torch.nn.Module]:
        return self.nets

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opts

    def restart_epochs(self) -> list[int]:
        return [0, self.pretrain_epochs] if 0 < self.pretrain_epochs < self.epochs else [0]

    def describe(self) -> dict[str, Any]:
        losses = {"pretrain": "pixel MSE", "pretrain_epochs": self.pretrain_epochs}
        if self.adversarial:
            losses["adversarial_phase"] = {k: v for k, v in vars(self.weights).items() if v}
            losses["perceptual"] = type(self.gan_loss.backbone).__name__ if self.gan_loss.backbone else "none"
        return {"stage": "sr", "losses": losses, "metric_protocol": PROTOCOL}

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        lr = batch["lr"].to(ctx.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        hr = batch["hr"].to(ctx.device, non_blocking=True)
        if ctx.epoch < self.pretrain_epochs or not self.adversarial:
            return self._pixel_step(lr, hr, ctx)
        return self._adversarial_step(lr, hr, ctx)

    def _pixel_step(self, lr: torch.Tensor, hr: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        opt = self.opts["generator"]
        with ctx.autocast():
            loss = pixel_mse(self.generator(lr).float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"mse": float(loss.detach())}

    def _adversarial_step(self, lr: torch.Tensor, hr: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        g_opt, d_opt = self.opts["generator"], self.opts["discriminator"]
        self.gan_loss.to(ctx.device)  # the frozen perceptual backbone is not an engine network
        with ctx.autocast():
            sr = self.generator(lr)
            d_loss = discriminator_loss(self.discriminator(hr), self.discriminator(sr.detach()))
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        with ctx.autocast():
            g_loss, terms = self.gan_loss(sr.float(), hr, self.discriminator(sr))
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        return {"g_loss": float(g_loss.detach()), "d_loss": float(d_loss.detach()), **terms}

    def validate(self, loader: DataLoader, ctx: StepContext) -> dict[str, float]:
        sums: dict[str, float] = {}
        seen, grid = 0, []
        for batch in loader:
            batch.pop("skipped", None)
            if not batch:
                continue
            lr, hr = batch["lr"].to(ctx.device), to_unit(batch["hr"].to(ctx.device))
            sr = super_resolve(self.generator, to_unit(lr), ctx.dtype)
            bic = bicubic_baseline(lr, hr.shape[-2:])
            for key, values in sr_vs_bicubic(sr, bic, hr).items():
                sums[key] = sums.get(key, 0.0) + float(values.sum())
            seen += len(hr)
            if len(grid) < GRID_SAMPLES:
                lr_big = torch.nn.functional.interpolate(to_unit(lr), size=hr.shape[-2:], mode="nearest")
                for i in range(min(len(hr), GRID_SAMPLES - len(grid))):
                    grid.append(torch.stack([lr_big[i], bic[i], sr[i], hr[i]]).cpu())
        self._grid = torch.cat(grid) if grid else None
        means = {f"val_{k.replace('_sr', '')}": v / max(1, seen) for k, v in sums.items()}
        means["val_psnr_gain"] = means["val_psnr"] - means["val_psnr_bicubic"]
        means["val_images"] = float(seen)
        return means

    def on_epoch_end(self, epoch: int, history: list[dict[str, Any]], out_dir: Path) -> None:
        if self._grid is not None:  # rows: LR (nearest) | bicubic | SR | HR
            grid = make_grid(self._grid, nrow=4, padding=2, pad_value=1.0)
            save_image_atomic(tensor_to_pil(grid), out_dir / "samples" / f"epoch-{epoch:04d}.png")
        history = [r for r in history if "val_psnr" in r]
        if history:
            plot_training_curves(
                history,
                out_dir / "curves.png",
                [("val_psnr", "val_psnr_bicubic"), ("val_ssim", "val_ssim_bicubic")],
            )


@dataclass(kw_only=True)
class SRTrainArgs(RunArgs):
    """Everything `srfer train-sr` takes (stored in each checkpoint)."""

    pretrain_epochs: int = 5
    lr: float = 1e-4
    scale: int = 4
    hr_size: int = 128
    channels: int = 3
    blocks: int = 16
    features: int = 64
    bicubic_skip: bool = False
    perceptual: str = "vgg19"
    vgg_weights: Path | None = None
    content_weight: float = 0.006
    adversarial_weight: float = 1e-3
    pixel_weight: float = 0.0
    texture_weight: float = 0.0
    val_limit: int = 0
    cache: bool = True
    init: Path | None = None  # start the generator from these weights (fine-tuning)


def _generator_config(args: SRTrainArgs) -> GeneratorConfig:
    try:
        config = GeneratorConfig(args.channels, args.features, args.blocks, args.scale, args.bicubic_skip)
    except ValueError as exc:
        raise SrferError(f"bad generator option: {exc}") from None
    if args.hr_size % args.scale:
        raise SrferError(f"--hr-size {args.hr_size} is not divisible by --scale {args.scale}")
    return config


def _start_from(generator: torch.nn.Module, config: GeneratorConfig, weights: Path) -> None:
    """Copy a trained generator's weights in (e.g. to fine-tune the shipped one with an
    identity loss); its architecture must be the one this run builds."""
    from srfer.pipeline import load_generator

    source = load_generator(weights)
    if source.config.to_dict() != config.to_dict():
        raise SrferError(
            f"--init {weights}: its generator ({source.config.to_dict()}) differs from this run's "
            f"({config.to_dict()}); match --channels/--blocks/--features/--scale"
        )
    generator.load_state_dict(source.state_dict())


def train_sr(args: SRTrainArgs) -> dict[str, Any]:
    """Build data, recipe and engine from `args` and train; returns the best record."""
    resolve_device(args.device)  # cheap checks first, before decoding thousands of images
    check_run_folder(Path(args.out), args.resume)
    gen_cfg = _generator_config(args)
    train_src = discover_faces(args.data, "train", seed=args.seed)
    val_src = discover_faces(args.data, "val", seed=args.seed)
    adversarial = args.epochs > args.pretrain_epochs
    backbone = build_perceptual(args.perceptual, args.vgg_weights) if adversarial else None
    if args.val_limit:
        val_src.paths = val_src.paths[: args.val_limit]
    pair = dict(hr_size=args.hr_size, scale=args.scale, channels=args.channels, cache=args.cache)
    train_set = SRPairDataset(train_src, augment=True, **pair)
    val_set = SRPairDataset(val_src, augment=False, **pair)
    weights = SRLossWeights(
        args.content_weight, args.adversarial_weight, args.pixel_weight, args.texture_weight
    )
    recipe = SRGANRecipe(gen_cfg, args.lr, args.pretrain_epochs, args.epochs, backbone, weights)
    if args.init is not None and not args.resume:  # a resumed run restores its own weights
        _start_from(recipe.generator, gen_cfg, args.init)
    engine_cfg = args.engine_config()
    data_meta = {
        "train": train_src.description,
        "val": val_src.description,
        "train_images": len(train_set),
        "val_images": len(val_set),
        "hr_size": args.hr_size,
        "lr_size": args.hr_size // args.scale,
    }
    run_meta = {
        "data": data_meta,
        "train_args": args.as_meta(),
    }
    engine = Engine(recipe, train_set, val_set, engine_cfg, collate_skipping_failures, run_meta)
    return engine.fit()
