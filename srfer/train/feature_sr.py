"""Recipe: feature-level SR (`srfer.models.feature_sr`) inside the frozen face recogniser.

Each training face (an aligned chip at full size) is degraded to one of `--lr-size` (clean,
realistic or mixed) and resized back bicubically; the recogniser's trunk runs to the branch point
on both, and the generator learns to turn the small face's maps into the full-size face's: the
L2 between them (relative to the target maps' energy) plus, through the frozen rest of the trunk,
the squared L2 between the embedding they lead to and the full-size face's embedding (the
recogniser's own notion of "the same"). Validation: verification of unseen people's pairs with
one face at full size and the other at each probe size, clean and realistic; it monitors their
mean accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from srfer.core.errors import SrferError
from srfer.core.plots import plot_training_curves
from srfer.core.runtime import resolve_device
from srfer.data.degradations import LowResPath, degradation
from srfer.data.identity import FaceIdentityDataset, discover_identities, generate_pairs
from srfer.eval.metrics import verification_report
from srfer.infer.load import embedder_aligner, load_embedder
from srfer.infer.run import Restorer, embed_all, pair_distances
from srfer.models.feature_sr import FeatureSR, FeatureSRConfig, FeatureSREmbedder, branch_channels
from srfer.train.args import FeatureSRTrainArgs, parse_lr_sizes
from srfer.train.engine import Engine, SingleNetworkRecipe, StepContext

VAL_PAIRS = 3000
VAL_DEGRADATIONS = ("clean", "realistic")


class FeatureSRRecipe(SingleNetworkRecipe):
    kind = "feature-sr"
    monitor = "val_accuracy"
    monitor_mode = "max"
    network_name = "model"

    def __init__(
        self, config: FeatureSRConfig, embedder: torch.nn.Module, lr: float, low_res: LowResPath,
        val_pairs: list[tuple[int, int, bool]], map_weight: float, embed_weight: float,
    ) -> None:  # fmt: skip
        fsr = FeatureSR(config)
        super().__init__(fsr, lr)
        embedder.eval().requires_grad_(False)
        self.whole = FeatureSREmbedder(embedder, fsr)  # shares `fsr`: validation sees the trained one
        self.embedder, self.low_res, self.val_pairs = embedder, low_res, val_pairs
        self.map_weight, self.embed_weight = map_weight, embed_weight

    def describe(self) -> dict[str, Any]:
        return {"stage": "feature-sr", "low_res": self.low_res.describe(), "map_weight": self.map_weight,
                "embed_weight": self.embed_weight, "val_pairs": len(self.val_pairs)}  # fmt: skip

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        full = batch["image"].to(ctx.device, non_blocking=True)
        small = self.low_res(full, ctx.step)
        prefix, rest = self.whole.prefix, self.whole.rest
        with torch.no_grad(), ctx.autocast():
            target_maps = prefix(full).float()
            target = rest(target_maps).float()
            maps = prefix(small)
        with ctx.autocast():
            restored = ctx.synced(self.model)(maps).float()
            embedding = rest(restored).float()
        map_loss = (restored - target_maps).square().mean() / target_maps.square().mean().clamp_min(1e-8)
        embed_loss = (embedding - target).square().sum(1).mean()
        loss = self.map_weight * map_loss + self.embed_weight * embed_loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {
            "loss": float(loss.detach()),
            "maps": float(map_loss.detach()),
            "embedding": float(embed_loss.detach()),
        }

    def validate(self, loader: DataLoader, ctx: StepContext) -> dict[str, float]:
        full = embed_all(self.embedder, loader, ctx)
        out: dict[str, float] = {}
        for name in VAL_DEGRADATIONS:
            for size in self.low_res.lr_sizes:
                path = LowResPath(size, Restorer(), "bicubic", degradation(name))
                small = embed_all(self.whole, loader, ctx, path)
                distances, same = pair_distances(torch.cat([full, small]), self._mixed_pairs(len(full)))
                out[f"val_accuracy_{size}px_{name}"] = verification_report(distances, same)["accuracy"]
        return {"val_accuracy": sum(out.values()) / len(out), **out}

    def _mixed_pairs(self, n: int) -> list[tuple[int, int, bool]]:
        """The pairs with their first face at full size (rows 0..n-1) and the second small (n..2n-1)."""
        return [(a, n + b, same) for a, b, same in self.val_pairs]

    def on_epoch_end(self, epoch: int, history: list[dict[str, Any]], out_dir: Path) -> None:
        plot_training_curves(history, out_dir / "curves.png", [("val_accuracy", ""), ("train_loss", "")])


def train_feature_sr(args: FeatureSRTrainArgs) -> dict[str, Any]:
    args.start()
    sizes = parse_lr_sizes(args.lr_size, 8, 127)
    how = degradation(args.degradation)
    embedder = load_embedder(args.embed_weights, resolve_device(args.device), deploy=False)
    try:
        channels = branch_channels(embedder.network, args.branch)
        config = FeatureSRConfig(branch=args.branch, channels=channels, width=args.width, blocks=args.blocks)
    except ValueError as exc:
        raise SrferError(f"{embedder.source}: {exc}") from None
    size = embedder.contract["crop_size"]
    aligner = embedder_aligner(embedder)
    train_src = discover_identities(args.data, "train", seed=args.seed, subset=args.subset)
    val_src = discover_identities(args.data, "val", seed=args.seed, subset=args.subset)
    train_set = FaceIdentityDataset(train_src, size, aligner=aligner)
    val_set = FaceIdentityDataset(val_src, size, aligner=aligner)
    val_pairs = generate_pairs(val_set.labels.tolist(), VAL_PAIRS, seed=args.seed)
    low_res = LowResPath(sizes, Restorer(), "bicubic", how)
    recipe = FeatureSRRecipe(config, embedder.network, args.lr, low_res, val_pairs, args.map_weight,
                             args.embed_weight)  # fmt: skip
    run_meta = {
        "data": {"train": train_src.description, "val": val_src.description, "train_images": len(train_set),
                 "val_images": len(val_set), "val_pairs": len(val_pairs)},
        "identity_embedder": {"path": str(embedder.source), "sha256": embedder.model_id},
        "train_args": args.as_meta(),
    }  # fmt: skip
    return Engine(recipe, train_set, val_set, args, run_meta=run_meta).fit()
