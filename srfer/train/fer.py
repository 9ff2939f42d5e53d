"""Stage 2a recipe: expression classifier (MCNN or a torchvision backbone), optionally
trained on degraded-then-restored faces (`--upscale`: bicubic or a frozen SR generator).

The low-resolution path runs inside the training step, on the training device, after
augmentation: caching SR outputs would freeze one augmentation per image, and on a GPU
the 12→48 generator costs about as much as the classifier itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from srfer.data.degradations import LowResPath
from srfer.data.fer import EMOTIONS, FerDataset, describe_balance, load_fer
from srfer.errors import SrferError
from srfer.inference import make_restorer, predict_probs
from srfer.losses import FocalLoss, inverse_frequency
from srfer.metrics import classification_report
from srfer.models.fer import FerConfig, build_fer
from srfer.plots import plot_training_curves
from srfer.train.args import FerTrainArgs
from srfer.train.engine import Engine, SingleNetworkRecipe, StepContext


class FerRecipe(SingleNetworkRecipe):
    kind = "fer-classifier"
    monitor = "val_accuracy"
    monitor_mode = "max"

    network_name = "classifier"

    def __init__(self, config: FerConfig, lr: float, loss: nn.Module, low_res: LowResPath | None = None):
        super().__init__(build_fer(config), lr)
        self.loss, self.low_res = loss, low_res

    def describe(self) -> dict[str, Any]:
        low_res = self.low_res.describe() if self.low_res else None
        return {"stage": "fer", "classes": list(EMOTIONS), "loss": repr(self.loss), "low_res": low_res}

    def _inputs(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["image"].to(ctx.device, non_blocking=True)
        if self.low_res is not None:
            x = self.low_res(x, ctx.step)
        return x, batch["label"].to(ctx.device, non_blocking=True)

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        x, y = self._inputs(batch, ctx)
        self.loss.to(ctx.device)
        with ctx.autocast():
            logits = ctx.synced(self.model)(x)
        loss = self.loss(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), "acc": float((logits.argmax(1) == y).float().mean())}

    def validate(self, loader: DataLoader, ctx: StepContext) -> dict[str, float]:
        probs, labels = predict_probs(self.model, loader, ctx, self.low_res)
        report = classification_report(probs, labels, EMOTIONS)
        val_loss = float(F.nll_loss(probs.clamp_min(1e-8).log(), labels))
        return {"val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"], "val_loss": val_loss}

    def on_epoch_end(self, epoch: int, history: list[dict[str, Any]], out_dir: Path) -> None:
        plot_training_curves(
            history, out_dir / "curves.png", [("val_accuracy", "train_acc"), ("val_loss", "")]
        )


def build_loss(args: FerTrainArgs, class_counts: list[int]) -> nn.Module:
    if args.loss == "ce":
        return nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    if args.loss == "focal":
        if args.alpha not in ("auto", "none"):
            raise SrferError(f"unknown --alpha {args.alpha!r}; use auto or none")
        return FocalLoss(args.gamma, inverse_frequency(class_counts) if args.alpha == "auto" else None)
    raise SrferError(f"unknown --loss {args.loss!r}; use ce or focal")


def build_low_res(args: FerTrainArgs, device: torch.device) -> LowResPath | None:
    if not args.upscale:
        return None
    if not 4 <= args.lr_size <= 48:
        raise SrferError(f"--lr-size {args.lr_size}: use a size between 4 and 48 px")
    return LowResPath(args.lr_size, make_restorer(args.upscaler, device, args.sr_weights), args.upscaler)


def check_imagenet_start(args: FerTrainArgs) -> bool:
    """Whether this run starts from ImageNet weights (`--pretrained`/`--backbone-weights`)."""
    if not (args.pretrained or args.backbone_weights):
        return False
    if args.arch == "mcnn":
        raise SrferError(
            "--pretrained / --backbone-weights are for the torchvision archs: mcnn has no ImageNet weights"
        )
    return args.loads_foreign_start("--pretrained / --backbone-weights")


def start_from_imagenet(model: nn.Module, args: FerTrainArgs) -> dict[str, Any]:
    """Fill a torchvision-arch classifier with ImageNet weights; returns what was done (run meta)."""
    import torchvision.models as tvm

    from srfer.weights import imagenet_state_dict

    enum = tvm.get_model_weights(args.arch).DEFAULT
    hint = "--backbone-weights PATH (that file, from a machine that is online) or leave out --pretrained"
    state = imagenet_state_dict(enum, args.backbone_weights, args.arch, hint)
    source = str(args.backbone_weights or enum.url)
    try:
        left = model.load_imagenet_state(state)  # type: ignore[operator]
    except ValueError as exc:
        raise SrferError(f"{source}: {exc}") from None
    return {"imagenet_weights": source, "initialised_not_loaded": left}


def train_fer(args: FerTrainArgs) -> dict[str, Any]:
    device = args.start()
    try:
        config = FerConfig(arch=args.arch, width=args.width)
    except ValueError as exc:
        raise SrferError(str(exc)) from None
    imagenet = check_imagenet_start(args)
    low_res = build_low_res(args, device)
    train_samples = load_fer(args.data, "train", args.ferplus, args.subset)
    val_samples = load_fer(args.data, "val", args.ferplus, args.subset)
    loss = build_loss(args, train_samples.class_counts())
    recipe = FerRecipe(config, args.lr, loss, low_res)
    pretrained = start_from_imagenet(recipe.model, args) if imagenet else None
    weights = None
    if args.balanced:  # class-balanced sampling: each draw ∝ 1 / (its class's count)
        counts = torch.tensor(train_samples.class_counts(), dtype=torch.float64)
        weights = 1.0 / counts.clamp(min=1)[train_samples.labels]
    run_meta = {
        "data": {"train": train_samples.description, "val": val_samples.description,
                 "train_images": len(train_samples), "val_images": len(val_samples),
                 "train_balance": describe_balance(train_samples)},
        "train_args": args.as_meta(), "pretrained": pretrained,
    }  # fmt: skip
    train_set, val_set = FerDataset(train_samples, augment=True), FerDataset(val_samples)
    engine = Engine(recipe, train_set, val_set, args, run_meta=run_meta, sample_weights=weights)
    return engine.fit()
