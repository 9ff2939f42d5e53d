"""Stage 1 recipe: SRResNet pre-training (pixel MSE), then SRGAN adversarial training.

The second phase is the generator loss of `srfer.train.losses` (content, texture, identity,
pixel, adversarial terms); with `--adversarial-weight 0` it trains without a
discriminator (e.g. the identity-aware fine-tune, where half the compute would otherwise
go to a network whose term is switched off). With an identity term, validation also
measures how far SR and bicubic faces land from their HR face in the embedder's space,
and `best` is the checkpoint closest to HR identity (not the PSNR-best). A GAN phase whose
perceptual backbone is a face embedder is judged by it too: validation reports the Fréchet
distance of SR (and bicubic) faces to the HR faces in its embedding space, and `best` is
the most realistic epoch by that measure (a GAN's PSNR falls by design).

`lr_sizes` (`--lr-sizes 32,16`) trains on faces of several sizes, one drawn per step: a
face of size s is made from the HR crop (antialiased bicubic, 8-bit) and its target is the
HR crop resized to s × scale. The ×4 generator then learns the 16 px faces it meets in the
size sweeps instead of only the 32 px it was trained on; validation reports each size."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.utils import make_grid

from srfer.core.errors import SrferError
from srfer.core.imageio import save_image_atomic, tensor_to_pil
from srfer.core.plots import plot_training_curves
from srfer.core.weights import sha256
from srfer.data import evenly_spaced
from srfer.data.degradations import (
    CLEAN,
    Degradation,
    bicubic_resize,
    content_seeds,
    degradation,
    quantize_8bit,
    to_signed,
    to_unit,
)
from srfer.data.faces import SRPairDataset, collate_skipping_failures, discover_faces
from srfer.eval.metrics import PROTOCOL, frechet_distance, psnr_per_image, sr_vs_bicubic
from srfer.faces.align import FaceAligner
from srfer.infer.load import embedder_aligner, load_embedder
from srfer.infer.run import bicubic_baseline, super_resolve
from srfer.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from srfer.train import distributed
from srfer.train.args import SRTrainArgs, parse_lr_sizes
from srfer.train.engine import Engine, Recipe, StepContext
from srfer.train.losses import (
    FeatureBackbone,
    SRGANGeneratorLoss,
    SRLossWeights,
    build_perceptual,
    discriminator_term,
    pixel_mse,
)

GRID_SAMPLES = 8


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
        lr_sizes: tuple[int, ...] = (),
        how: Degradation = CLEAN,
    ) -> None:
        self.generator = Generator(generator)
        self.lr_sizes, self.how = tuple(lr_sizes), how
        self.pretrain_epochs, self.epochs = pretrain_epochs, epochs
        self.weights = weights or SRLossWeights()
        self.second_phase = epochs > pretrain_epochs
        self.adversarial = self.second_phase and self.weights.adversarial > 0
        if self.weights.identity and not (self.second_phase and backbone and backbone.has_embedding):
            raise SrferError(
                "--identity-weight needs --perceptual ckpt:<face embedder> and epochs after --pretrain-epochs"
            )
        self.identity = backbone if self.weights.identity else None
        # a face embedder also judges the GAN phase: Fréchet distance of SR to HR embeddings
        judged = self.adversarial and backbone is not None and backbone.has_embedding
        self.judge = backbone if judged else None
        if self.identity is not None:  # pick `best` by identity, not by PSNR
            self.monitor, self.monitor_mode = "val_identity_distance_mean", "min"
        elif self.judge is not None:  # a GAN's PSNR falls by design: pick by realism instead
            self.monitor, self.monitor_mode = "val_frechet", "min"
        betas = (0.9, 0.999)
        self.opts = {"generator": torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)}
        self.nets: dict[str, torch.nn.Module] = {"generator": self.generator}
        if self.second_phase:
            self.gan_loss = SRGANGeneratorLoss(backbone, self.weights)
        if self.adversarial:  # the discriminator only exists when its term will be trained
            disc_cfg = discriminator or DiscriminatorConfig(channels=generator.channels)
            self.discriminator = Discriminator(disc_cfg)
            self.nets["discriminator"] = self.discriminator
            self.opts["discriminator"] = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        self._grid: torch.Tensor | None = None

    def networks(self) -> dict[str, torch.nn.Module]:
        return self.nets

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opts

    def restart_epochs(self) -> list[int]:
        return [0, self.pretrain_epochs] if 0 < self.pretrain_epochs < self.epochs else [0]

    def describe(self) -> dict[str, Any]:
        losses = {"pretrain": "pixel MSE", "pretrain_epochs": self.pretrain_epochs}
        if self.second_phase:
            losses["second_phase"] = {k: v for k, v in vars(self.weights).items() if v}
            losses["perceptual"] = type(self.gan_loss.backbone).__name__ if self.gan_loss.backbone else "none"
        return {"stage": "sr", "losses": losses, "metric_protocol": PROTOCOL, "lr_sizes": list(self.lr_sizes),
                "degradation": self.how.describe()}  # fmt: skip

    def _pair_at(self, hr01: Tensor, size: int, salt: int = 0) -> tuple[Tensor, Tensor]:
        """(LR of `size` px, degraded as the run says; HR resized to size × scale, 8-bit) from
        HR crops in [0, 1]; `salt`, the step, varies a realistic draw between steps."""
        target = size * self.generator.config.scale
        lr = (
            self.how(hr01.cpu(), size, content_seeds(hr01, salt)).to(hr01.device)
            if self.how.realistic_share
            else (quantize_8bit(bicubic_resize(hr01, size)))
        )
        return lr, quantize_8bit(bicubic_resize(hr01, target))

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        lr = batch["lr"].to(ctx.device, non_blocking=True)
        hr = batch["hr"].to(ctx.device, non_blocking=True)
        size = self.lr_sizes[ctx.step % len(self.lr_sizes)] if self.lr_sizes else lr.shape[-1]
        if size != lr.shape[-1]:  # deterministic in the step, so a resumed run draws the same
            lr, hr = (to_signed(x) for x in self._pair_at(to_unit(hr), size, ctx.step * 7919))
        lr = lr.contiguous(memory_format=torch.channels_last)
        if ctx.epoch < self.pretrain_epochs or not self.second_phase:
            return self._pixel_step(lr, hr, ctx)
        return self._second_phase_step(lr, hr, ctx)

    def _pixel_step(self, lr: torch.Tensor, hr: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        opt = self.opts["generator"]
        with ctx.autocast():
            loss = pixel_mse(ctx.synced(self.generator)(lr).float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"mse": float(loss.detach())}

    def _second_phase_step(self, lr: torch.Tensor, hr: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        g_opt = self.opts["generator"]
        self.gan_loss.to(ctx.device)  # the frozen perceptual backbone is not an engine network
        with ctx.autocast():
            sr = ctx.synced(self.generator)(lr)
        record, fake_logits = {}, None
        if self.adversarial:
            record["d_loss"] = self._discriminator_step(hr, sr.detach(), ctx)
            self.discriminator.requires_grad_(False)  # the generator's step trains the generator only
            with ctx.autocast():
                fake_logits = self.discriminator(sr)
            self.discriminator.requires_grad_(True)
        with ctx.autocast():
            g_loss, terms = self.gan_loss(sr.float(), hr, fake_logits)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        return {"g_loss": float(g_loss.detach()), **record, **terms}

    def _discriminator_step(self, hr: Tensor, fake: Tensor, ctx: StepContext) -> float:
        """One step on real → 1, fake → 0. The real and fake halves go through backward one
        at a time (the gradient of their sum), because DDP allows one backward per forward:
        the first accumulates locally, the second all-reduces the total."""
        d_opt, net = self.opts["discriminator"], ctx.synced(self.discriminator)
        d_opt.zero_grad(set_to_none=True)
        total = 0.0
        for images, real in ((hr, True), (fake, False)):
            with distributed.no_sync(net) if real else contextlib.nullcontext():
                with ctx.autocast():
                    loss = discriminator_term(net(images), real)
                loss.backward()
            total += float(loss.detach())
        d_opt.step()
        return total

    def validate(self, loader: DataLoader, ctx: StepContext) -> dict[str, float]:
        sums: dict[str, float] = {}
        seen, grid = 0, []
        embedded: dict[str, list[Tensor]] = {}
        for batch in loader:
            batch.pop("skipped", None)
            if not batch:
                continue
            lr, hr = batch["lr"].to(ctx.device), to_unit(batch["hr"].to(ctx.device))
            sr = super_resolve(self.generator, to_unit(lr), ctx.dtype)
            bic = bicubic_baseline(lr, hr.shape[-2:])
            scores = sr_vs_bicubic(sr, bic, hr)
            if self.identity is not None:
                scores |= self._identity_distances(sr, bic, hr)
            if self.judge is not None:
                for name, faces in (("hr", hr), ("sr", sr), ("bicubic", bic)):
                    embedded.setdefault(name, []).append(_embedding_of(self.judge, faces).float().cpu())
            for size in (s for s in self.lr_sizes if s != lr.shape[-1]):
                scores |= self._scores_at(hr, size, ctx)
            for key, values in scores.items():
                sums[key] = sums.get(key, 0.0) + float(values.sum())
            seen += len(hr)
            if len(grid) < GRID_SAMPLES:
                lr_big = torch.nn.functional.interpolate(to_unit(lr), size=hr.shape[-2:], mode="nearest")
                for i in range(min(len(hr), GRID_SAMPLES - len(grid))):
                    grid.append(torch.stack([lr_big[i], bic[i], sr[i], hr[i]]).cpu())
        self._grid = torch.cat(grid) if grid else None
        means = {f"val_{k.replace('_sr', '')}": v / max(1, seen) for k, v in sums.items()}
        means["val_psnr_gain"] = means["val_psnr"] - means["val_psnr_bicubic"]
        if self.identity is not None:  # what `best` minimises: over every training size
            keys = [k for k in means if k.startswith("val_identity_distance") and "bicubic" not in k]
            per_size = [means[k] for k in keys]
            means["val_identity_distance_mean"] = sum(per_size) / len(per_size)
        if embedded:
            real = torch.cat(embedded["hr"])
            for name, key in (("sr", "val_frechet"), ("bicubic", "val_frechet_bicubic")):
                means[key] = frechet_distance(real, torch.cat(embedded[name]))
        means["val_images"] = float(seen)
        return means

    def _scores_at(self, hr01: Tensor, size: int, ctx: StepContext) -> dict[str, Tensor]:
        """PSNR (and identity distances) of faces made `size` px, keys suffixed `_{size}px`."""
        lr01, target = self._pair_at(hr01, size)
        sr = super_resolve(self.generator, lr01, ctx.dtype)
        bic = bicubic_resize(lr01, target.shape[-2:])
        scores = {"psnr_sr": psnr_per_image(sr, target), "psnr_bicubic": psnr_per_image(bic, target)}
        if self.identity is not None:
            scores |= self._identity_distances(sr, bic, target)
        return {f"{k}_{size}px": v for k, v in scores.items()}

    @torch.no_grad()
    def _identity_distances(self, sr: Tensor, bic: Tensor, hr: Tensor) -> dict[str, Tensor]:
        """Per face ‖e(x) − e(HR)‖² for x = SR and bicubic (inputs in [0, 1])."""
        target = _embedding_of(self.identity, hr)

        def distance(x: Tensor) -> Tensor:
            return (_embedding_of(self.identity, x) - target).pow(2).sum(1)

        return {"identity_distance_sr": distance(sr), "identity_distance_bicubic": distance(bic)}

    def on_epoch_end(self, epoch: int, history: list[dict[str, Any]], out_dir: Path) -> None:
        if self._grid is not None:  # rows: LR (nearest) | bicubic | SR | HR
            grid = make_grid(self._grid, nrow=4, padding=2, pad_value=1.0)
            save_image_atomic(tensor_to_pil(grid), out_dir / "samples" / f"epoch-{epoch:04d}.png")
        history = [r for r in history if "val_psnr" in r]
        panels = [("val_psnr", "val_psnr_bicubic"), ("val_ssim", "val_ssim_bicubic")]
        if history and "val_identity_distance" in history[-1]:
            panels.append(("val_identity_distance", "val_identity_distance_bicubic"))
        if history and "val_frechet" in history[-1]:
            panels.append(("val_frechet", "val_frechet_bicubic"))
        if history:
            plot_training_curves(history, out_dir / "curves.png", panels)


@torch.no_grad()
def _embedding_of(backbone: FeatureBackbone, faces01: Tensor) -> Tensor:
    """A face-embedder backbone's embeddings of faces in [0, 1], on the faces' device."""
    backbone.to(faces01.device)
    return backbone.embedding(faces01 * 2 - 1)


def _generator_config(args: SRTrainArgs) -> GeneratorConfig:
    try:
        config = GeneratorConfig(args.channels, args.features, args.blocks, args.scale, args.bicubic_skip,
                                 args.arch, args.growth)  # fmt: skip
    except ValueError as exc:
        raise SrferError(f"bad generator option: {exc}") from None
    if args.hr_size % args.scale:
        raise SrferError(f"--hr-size {args.hr_size} is not divisible by --scale {args.scale}")
    return config


def _lr_sizes(args: SRTrainArgs) -> tuple[int, ...]:
    if not args.lr_sizes.strip():
        return ()
    return parse_lr_sizes(args.lr_sizes, 4, args.hr_size // args.scale, "--lr-sizes")  # ≤ hr-size / scale


def _content_layer(backbone: FeatureBackbone | None, args: SRTrainArgs) -> int:
    """`--content-layer`, checked against the backbone's maps before any training starts."""
    if backbone is None or not args.content_weight:
        return args.content_layer
    with torch.no_grad():
        maps = len(backbone(torch.zeros(1, args.channels, args.hr_size, args.hr_size)))
    if not -maps <= args.content_layer < maps:
        raise SrferError(
            f"--content-layer {args.content_layer}: the backbone has {maps} maps (0 … {maps - 1}, or -1)"
        )
    return args.content_layer


def _aligner(args: SRTrainArgs, device: torch.device) -> tuple[FaceAligner | None, dict[str, Any]]:
    """`--align-to`'s aligner at the HR size, and the framing to record (`input.alignment`:
    what the SR's faces look like, so users and `predict` can tell)."""
    if args.align_to is None:
        return None, {}
    aligner = embedder_aligner(load_embedder(args.align_to, device), args.hr_size)  # MTCNN on `device`
    if aligner is None:
        raise SrferError(
            f"--align-to {args.align_to}: that embedder takes centre crops (no template to align to)"
        )
    framing = {"input": {"alignment": aligner.template.to_json(), "aligned_like": str(args.align_to)}}
    return aligner, framing


def train_sr(args: SRTrainArgs) -> dict[str, Any]:
    """Build data, recipe and engine from `args` and train; returns the best record."""
    device = args.start()
    gen_cfg = _generator_config(args)
    lr_sizes = _lr_sizes(args)
    train_src = discover_faces(args.data, "train", seed=args.seed)
    val_src = discover_faces(args.data, "val", seed=args.seed)
    train_src.paths, val_src.paths = (evenly_spaced(src.paths, args.subset) for src in (train_src, val_src))
    second_phase = args.epochs > args.pretrain_epochs
    backbone = build_perceptual(args.perceptual, args.vgg_weights) if second_phase else None
    if args.val_limit:
        val_src.paths = val_src.paths[: args.val_limit]
    aligner, framing = _aligner(args, device)
    how = degradation(args.degradation)
    pair = dict(
        hr_size=args.hr_size, scale=args.scale, channels=args.channels, cache=args.cache, degradation=how
    )
    train_set = SRPairDataset(train_src, augment=True, aligner=aligner, **pair)
    val_set = SRPairDataset(val_src, augment=False, aligner=aligner, **pair)
    weights = SRLossWeights(
        content=args.content_weight,
        adversarial=args.adversarial_weight,
        pixel=args.pixel_weight,
        texture=args.texture_weight,
        identity=args.identity_weight,
        content_layer=_content_layer(backbone, args),
    )
    recipe = SRGANRecipe(gen_cfg, args.lr, args.pretrain_epochs, args.epochs, backbone, weights,
                         lr_sizes=lr_sizes, how=how)  # fmt: skip
    data_meta = {
        "train": train_src.description,
        "val": val_src.description,
        "train_images": len(train_set),
        "val_images": len(val_set),
        "hr_size": args.hr_size,
        "lr_size": args.hr_size // args.scale,
        "degradation": how.describe(),
    }
    if aligner is not None:
        data_meta["alignment"] = {"train": train_set.alignment, "val": val_set.alignment}
    run_meta = {"data": data_meta, "train_args": args.as_meta(), **framing}
    if recipe.identity is not None:  # the recogniser this SR was made for (predict matches on it)
        path = recipe.identity.path
        run_meta["identity_embedder"] = {"path": str(path), "sha256": sha256(path)}
    engine = Engine(recipe, train_set, val_set, args, collate_skipping_failures, run_meta)
    return engine.fit()
