"""Stage 2b recipe: triplet-loss face embedder (FaceNet) with online mining over P×K
batches; validation = LFW-protocol verification on unseen people (identity-disjoint).

Fine-tuning a pretrained recogniser for small faces (`--init` the converted dlib network,
`--upscale --lr-size 16,24,32,128`): the faces are framed as the `--init` file's input
contract says (aligned onto its template), and `--distill-weight` adds a term that pulls
each degraded face's embedding towards the frozen starting network's embedding of the same
face at full size, so that what it knew at full size holds. With several sizes, validation
reports each and monitors their mean."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from srfer.core.errors import SrferError
from srfer.core.plots import plot_training_curves
from srfer.core.weights import Weights
from srfer.data.degradations import LowResPath, degradation
from srfer.data.identity import FaceIdentityDataset, discover_identities, generate_pairs
from srfer.data.samplers import PKBatchSampler
from srfer.eval.metrics import verification_report
from srfer.infer.load import embedder_aligner, load_embedder
from srfer.infer.run import embed_all, make_restorer, pair_distances
from srfer.models.embedder import Embedder, EmbedderConfig, load_facenet_weights
from srfer.train import distributed
from srfer.train.args import EmbedTrainArgs, parse_lr_sizes
from srfer.train.engine import Engine, SingleNetworkRecipe, StepContext
from srfer.train.losses import TripletLoss

VAL_PAIRS = 3000


class EmbedRecipe(SingleNetworkRecipe):
    kind = "face-embedder"
    monitor = "val_accuracy"
    monitor_mode = "max"

    network_name = "embedder"

    def __init__(
        self, config: EmbedderConfig, lr: float, loss: TripletLoss, val_pairs: list[tuple[int, int, bool]],
        low_res: LowResPath | None = None, teacher: torch.nn.Module | None = None,
        distill_weight: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__(Embedder(config), lr)
        self.loss, self.low_res, self.val_pairs = loss, low_res, val_pairs
        self.teacher, self.distill_weight = teacher, distill_weight
        if teacher is not None:
            teacher.eval().requires_grad_(False)

    def describe(self) -> dict[str, Any]:
        low_res = self.low_res.describe() if self.low_res else None
        return {"stage": "embed", "margin": self.loss.margin, "mining": self.loss.mining, "low_res": low_res,
                "distance": "squared L2", "val_pairs": len(self.val_pairs),
                "distill_weight": self.distill_weight if self.teacher is not None else 0.0}  # fmt: skip

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        full = batch["image"].to(ctx.device, non_blocking=True)
        x = self.low_res(full, ctx.step) if self.low_res is not None else full
        with ctx.autocast():
            embeddings = ctx.synced(self.model)(x)
        loss, stats = self.loss(embeddings, batch["label"].to(ctx.device))
        if self.teacher is not None and self.distill_weight > 0:
            with torch.no_grad(), ctx.autocast():
                target = self.teacher.to(ctx.device)(full).float()
            distill = (embeddings.float() - target).pow(2).sum(1).mean()
            loss = loss + self.distill_weight * distill
            stats["distill"] = float(distill.detach())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), **stats}

    def validate(self, loader: DataLoader, ctx: StepContext) -> dict[str, float]:
        sizes = self.low_res.lr_sizes if self.low_res is not None else (None,)
        reports = {}
        for i, size in enumerate(sizes):  # step i draws size i (LowResPath cycles by step)
            embeddings = embed_all(self.model, loader, ctx, self.low_res if size else None, step=i)
            reports[size] = verification_report(*pair_distances(embeddings, self.val_pairs))
        first = reports[sizes[0]]
        out = {"val_accuracy": sum(r["accuracy"] for r in reports.values()) / len(reports),
               "val_accuracy_std": first["accuracy_std"], "val_auc": first["roc_auc"],
               "val_eer": first["eer"], "val_threshold": first["threshold"]}  # fmt: skip
        if len(sizes) > 1:
            out.update({f"val_accuracy_{size}px": r["accuracy"] for size, r in reports.items()})
        return out

    def on_epoch_end(self, epoch: int, history: list[dict[str, Any]], out_dir: Path) -> None:
        plot_training_curves(history, out_dir / "curves.png", [("val_accuracy", ""), ("train_loss", "")])


def train_embed(args: EmbedTrainArgs) -> dict[str, Any]:
    device = args.start()
    # checked before any data is read: --init beside --pretrained/--backbone-weights is refused
    facenet = bool(args.pretrained or args.backbone_weights) and args.loads_foreign_start(
        "--pretrained / --backbone-weights"
    )
    loss = TripletLoss(args.margin, args.mining)
    try:
        input_size = 160 if args.backbone == "inception-resnet-v1" else args.input_size or args.size
        config = EmbedderConfig(backbone=args.backbone, dim=args.dim, input_size=input_size)
    except ValueError as exc:
        raise SrferError(str(exc)) from None
    low_res = None
    if args.upscale:
        restore = make_restorer(args.upscaler, device, args.sr_weights, role=Weights.SR)
        low_res = LowResPath(
            parse_lr_sizes(args.lr_size, 8, 128), restore, args.upscaler, degradation(args.degradation)
        )
    starting = load_embedder(args.init, torch.device("cpu"), deploy=False) if args.init is not None else None
    contract = starting.meta.get("input") if starting is not None else None  # framing the start expects
    if args.distill_weight and starting is None:
        raise SrferError("--distill-weight needs --init (the network to distil from)")
    train_src = discover_identities(args.data, "train", seed=args.seed, subset=args.subset)
    val_src = discover_identities(args.data, "val", seed=args.seed, subset=args.subset)
    aligner = embedder_aligner(starting, args.size) if starting is not None else None
    train_set = FaceIdentityDataset(train_src, args.size, augment=True, aligner=aligner)
    val_set = FaceIdentityDataset(val_src, args.size, aligner=aligner)
    val_pairs = generate_pairs(val_set.labels.tolist(), VAL_PAIRS, seed=args.seed)
    teacher = starting.network if starting is not None and args.distill_weight else None
    recipe = EmbedRecipe(config, args.lr, loss, val_pairs, low_res, teacher, args.distill_weight)
    if facenet:
        load_facenet_weights(recipe.model, args.pretrained or "vggface2", args.backbone_weights)
    distributed.check_batch(args.p, "--p")  # under torchrun each rank takes whole identities
    batch = args.p * args.k  # the engine's batch; epochs default to one pass over the images
    args = dataclasses.replace(args, batch_size=batch, epoch_size=args.epoch_size or len(train_set))
    labels = train_set.labels

    def pk_batches(epoch_seed: int, skip: int) -> PKBatchSampler:
        steps = max(1, args.epoch_size // batch)
        return PKBatchSampler(labels, args.p, args.k, steps, epoch_seed, skip)

    pk_batches(0, 0)  # fail early when there are too few identities for P
    notes = train_src.notes + (
        [f"{len(train_set.skipped)} unusable images skipped"] if train_set.skipped else []
    )
    run_meta = {
        "data": {"train": train_src.description, "val": val_src.description, "train_images": len(train_set),
                 "train_identities": len(train_src.names), "val_images": len(val_set),
                 "val_identities": len(val_src.names), "val_pairs": len(val_pairs), "notes": notes},
        "train_args": args.as_meta(),
        **({"input": contract} if contract else {}),  # a fine-tuned network is fed as its start was
    }  # fmt: skip
    engine = Engine(recipe, train_set, val_set, args, run_meta=run_meta, batch_sampler=pk_batches)
    return engine.fit()
