"""Stage 2a recipe: expression classifier (MCNN or a torchvision backbone), optionally
trained on degraded-then-restored faces (`--upscale`: bicubic or a frozen SR generator).

The low-resolution path runs inside the training step, on the training device, after
augmentation: caching SR outputs would freeze one augmentation per image, and on a GPU
the 12→48 generator costs about as much as the classifier itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from srfer.core.errors import SrferError
from srfer.core.plots import plot_training_curves
from srfer.data.degradations import LowResPath, degradation
from srfer.data.fer import FerDataset, FerSamples, class_names, describe_balance, load_fer
from srfer.eval.metrics import classification_report
from srfer.infer.run import make_restorer, predict_probs
from srfer.models import dlib_resnet
from srfer.models.fer import FerConfig, build_fer
from srfer.train.args import FerTrainArgs, parse_lr_sizes
from srfer.train.distill import distillation_targets, teacher_probabilities
from srfer.train.engine import Engine, SingleNetworkRecipe, StepContext
from srfer.train.losses import FocalLoss, inverse_frequency


class FerRecipe(SingleNetworkRecipe):
    kind = "fer-classifier"
    monitor = "val_accuracy"
    monitor_mode = "max"

    network_name = "classifier"

    def __init__(
        self,
        config: FerConfig,
        lr: float,
        loss: nn.Module,
        low_res: LowResPath | None = None,
        trunk_lr: float = 1.0,
        mixup: float = 0.0,
        seed: int = 0,
        targets: str = "labels",
    ):
        model = build_fer(config)
        groups = (
            parameter_groups(model, lr, trunk_lr)
            if trunk_lr != 1.0 and hasattr(model, "pretrained_parameters")
            else None
        )
        super().__init__(model, lr, groups)
        self.loss, self.low_res, self.mixup, self.seed = loss, low_res, mixup, seed
        self.classes, self.targets = class_names(config.num_classes), targets
        self.soft_targets = targets != "labels"  # a distribution per face (FER+ votes, distillation)

    def describe(self) -> dict[str, Any]:
        low_res = self.low_res.describe() if self.low_res else None
        return {"stage": "fer", "classes": list(self.classes), "targets": self.targets,
                "loss": repr(self.loss), "low_res": low_res}  # fmt: skip

    def _inputs(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["image"].to(ctx.device, non_blocking=True)
        if self.low_res is not None:
            x = self.low_res(x, ctx.step)
        target = batch["votes"] if self.soft_targets else batch["label"]
        return x, target.to(ctx.device, non_blocking=True)

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        x, y = self._inputs(batch, ctx)
        self.loss.to(ctx.device)
        mix = self._mix(ctx.step, len(y)) if self.mixup > 0 else None
        if mix is not None:
            share, partner = mix
            x = share * x + (1 - share) * x[partner]
        with ctx.autocast():
            logits = ctx.synced(self.model)(x).float()
        loss = self.loss(logits, y)
        if mix is not None:  # mixup's loss: the same mix of the two faces' losses
            loss = share * loss + (1 - share) * self.loss(logits, y[partner])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        label = y.argmax(1) if self.soft_targets else y
        return {"loss": float(loss.detach()), "acc": float((logits.argmax(1) == label).float().mean())}

    def _mix(self, step: int, n: int) -> tuple[float, torch.Tensor]:
        """mixup (Zhang et al., ICLR 2018): share λ ~ Beta(α, α) and a partner for each face,
        drawn from (seed, step) so a resumed run mixes exactly as an uninterrupted one."""
        rng = np.random.default_rng((self.seed, step))
        return float(rng.beta(self.mixup, self.mixup)), torch.from_numpy(rng.permutation(n))

    def validate(self, loader: DataLoader, ctx: StepContext) -> dict[str, float]:
        """Scores at each training size (`--lr-size 12,16`: their mean is `val_accuracy`)."""
        sizes = self.low_res.lr_sizes if self.low_res is not None else (None,)
        per_size = {}
        for i, size in enumerate(sizes):  # step i draws size i (LowResPath cycles by step)
            probs, labels = predict_probs(self.model, loader, ctx, self.low_res, step=i)
            report = classification_report(probs, labels, self.classes)
            val_loss = float(F.nll_loss(probs.clamp_min(1e-8).log(), labels))
            per_size[size] = {"val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"],
                              "val_loss": val_loss}  # fmt: skip
        out = {k: sum(r[k] for r in per_size.values()) / len(per_size) for k in per_size[sizes[0]]}
        if len(sizes) > 1:
            out.update({f"val_accuracy_{size}px": r["val_accuracy"] for size, r in per_size.items()})
        return out

    def on_epoch_end(self, epoch: int, history: list[dict[str, Any]], out_dir: Path) -> None:
        plot_training_curves(
            history, out_dir / "curves.png", [("val_accuracy", "train_acc"), ("val_loss", "")]
        )


def check_targets(args: FerTrainArgs) -> None:
    """`--targets`, before any data is read."""
    if args.targets not in ("majority", "votes"):
        raise SrferError(f"unknown --targets {args.targets!r}; use majority or votes")
    if args.targets == "votes" and args.loss != "ce":
        raise SrferError("--targets votes trains with cross-entropy to the vote distribution: use --loss ce")
    if args.distill_from is not None and (args.targets == "votes" or args.loss != "ce"):
        raise SrferError(
            "--distill-from trains with cross-entropy to label + teacher targets: use --loss ce and "
            "--targets majority"
        )


def target_name(args: FerTrainArgs, samples: FerSamples) -> str:
    """What the classifier learns from: labels, FER+ votes, or (`--distill-from`) labels mixed
    with teachers' answers (`distill`)."""
    if args.distill_from is not None:
        return "labels + teacher distillation"
    if args.targets == "votes" and samples.votes is None:
        raise SrferError(f"--targets votes needs FER+ vote counts; {samples.description} has labels only")
    return "vote distribution" if args.targets == "votes" else "labels"


def distill(args: FerTrainArgs, samples: FerSamples, device: torch.device) -> dict[str, Any] | None:
    """`--distill-from`: the label + teacher targets into `samples.votes` (the soft-target path);
    returns what to record about the teachers. Called once the engine is prepared (run folder
    checked, --init loaded), so the teachers' long pass never precedes a cheap failure."""
    if args.distill_from is None:
        return None
    weight, temperature = args.distill_weight, args.distill_temperature
    teachers, flip = args.distill_from, args.distill_flip
    teacher, meta = teacher_probabilities(teachers, samples, device, flip, Path(args.out))
    samples.votes = distillation_targets(teacher, samples.labels, weight, temperature)
    return meta | {"weight": weight, "temperature": temperature}


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
    sizes = parse_lr_sizes(args.lr_size, 4, 48)
    restore = make_restorer(args.upscaler, device, args.sr_weights)
    return LowResPath(sizes, restore, args.upscaler, degradation(args.degradation))


def parameter_groups(model: nn.Module, lr: float, trunk_lr: float) -> list[dict[str, Any]]:
    """Discriminative fine-tuning: the pretrained trunk at `trunk_lr` × lr, the new head at lr."""
    trunk = model.pretrained_parameters()  # type: ignore[operator]
    in_trunk = {id(p) for p in trunk}
    rest = [p for p in model.parameters() if id(p) not in in_trunk and p.requires_grad]
    return [{"params": trunk, "lr": lr * trunk_lr}, {"params": rest, "lr": lr}]


def check_pretrained_start(args: FerTrainArgs) -> bool:
    """Whether this run starts from pretrained weights (`--pretrained`/`--backbone-weights`)."""
    if not (args.pretrained or args.backbone_weights):
        return False
    if args.arch == "mcnn":
        raise SrferError(
            "--pretrained / --backbone-weights are for the torchvision archs and dlib-resnet29: "
            "mcnn has no pretrained weights"
        )
    if args.arch == "faceapi-expression":
        raise SrferError(
            "faceapi-expression starts from a whole converted network: `srfer convert-face-api TARBALL "
            "FILE --model expression`, then --init FILE (not --pretrained / --backbone-weights)"
        )
    return args.loads_foreign_start("--pretrained / --backbone-weights")


def start_from_pretrained(model: nn.Module, args: FerTrainArgs) -> dict[str, Any]:
    if args.arch == "dlib-resnet29":
        return start_from_dlib_trunk(model, args)
    return start_from_imagenet(model, args)


def start_from_dlib_trunk(model: nn.Module, args: FerTrainArgs) -> dict[str, Any]:
    """Fill the dlib trunk from a face-embedder file (default: dlib's own recogniser) or from
    another dlib-resnet29 expression classifier's trunk (e.g. FER2013 → FER+: the head, whose
    classes may differ, starts new)."""
    from srfer.core.weights import Weights
    from srfer.infer.load import load_network

    source = load_network(args.backbone_weights, tuple(TRUNK_SOURCES), role=Weights.EMBED_DLIB)
    if source.kind == "fer-classifier" and source.config.arch != "dlib-resnet29":
        raise SrferError(f"{source.source}: a {source.config.arch} classifier has no dlib trunk to copy")
    prefix, meta_key = TRUNK_SOURCES[source.kind]
    try:
        copied = model.load_face_recogniser(source.network.state_dict(), prefix)  # type: ignore[operator]
    except ValueError as exc:
        raise SrferError(f"{source.source}: {exc}") from None
    return {meta_key: str(source.source), "tensors_copied": copied}


# checkpoint kind → (where its state dict keeps the dlib trunk, what the run's meta calls the start)
TRUNK_SOURCES = {
    "face-embedder": ("backbone.", "face_recogniser"),
    "fer-classifier": ("trunk.", "expression_trunk"),
}


def start_from_imagenet(model: nn.Module, args: FerTrainArgs) -> dict[str, Any]:
    """Fill a torchvision-arch classifier with ImageNet weights; returns what was done (run meta)."""
    import torchvision.models as tvm

    from srfer.core.weights import imagenet_state_dict

    enum = tvm.get_model_weights(args.arch).DEFAULT
    hint = "--backbone-weights PATH (that file, from a machine that is online) or leave out --pretrained"
    state = imagenet_state_dict(enum, args.backbone_weights, args.arch, hint)
    source = str(args.backbone_weights or enum.url)
    try:
        left = model.load_imagenet_state(state)  # type: ignore[operator]
    except ValueError as exc:
        raise SrferError(f"{source}: {exc}") from None
    return {"imagenet_weights": source, "initialised_not_loaded": left}


def shared_recogniser(args: FerTrainArgs) -> tuple[dlib_resnet.DlibResNet29, dict[str, Any]] | None:
    """`--shared-stages`: the face recogniser whose stem and first stages the classifier shares
    (none when resuming: the checkpoint has them), loaded before any data is read."""
    if not args.shared_stages or args.resume:
        return None
    from srfer.core.weights import Weights
    from srfer.infer.load import load_network

    source = load_network(args.share_trunk_with, "face-embedder", role=Weights.EMBED)
    backbone = getattr(source.network, "backbone", None)
    if not isinstance(backbone, dlib_resnet.DlibResNet29):
        raise SrferError(f"{source.source}: --share-trunk-with needs a dlib-resnet29 face embedder")
    return backbone, {"face_recogniser": str(source.source), "stages": args.shared_stages}


def share_trunk(
    model: nn.Module, recogniser: tuple[dlib_resnet.DlibResNet29, dict[str, Any]]
) -> dict[str, Any]:
    """Copy the shared stages into `model` (after `--pretrained`/`--init`, which fill the rest
    of the trunk); returns what the run records."""
    backbone, meta = recogniser
    return meta | {"tensors_copied": model.share_trunk_(backbone)}  # type: ignore[operator]


def train_fer(args: FerTrainArgs) -> dict[str, Any]:
    device = args.start()
    try:  # an unknown --arch (or sharing stages it has not) fails before any data is read
        FerConfig(arch=args.arch, shared_stages=args.shared_stages)
    except ValueError as exc:
        raise SrferError(str(exc)) from None
    check_targets(args)
    pretrained_start = check_pretrained_start(args)
    recogniser = shared_recogniser(args)
    low_res = build_low_res(args, device)
    train_samples = load_fer(args.data, "train", args.ferplus, args.subset)
    val_samples = load_fer(args.data, "val", args.ferplus, args.subset)
    targets = target_name(args, train_samples)
    loss = build_loss(args, train_samples.class_counts())
    trunk_size = dlib_resnet.INPUT_SIZE if args.shared_stages else args.trunk_size
    config = FerConfig(arch=args.arch, width=args.width, trunk_size=trunk_size,
                       num_classes=len(train_samples.classes), shared_stages=args.shared_stages)  # fmt: skip
    recipe = FerRecipe(config, args.lr, loss, low_res, args.trunk_lr, args.mixup, args.seed, targets)
    pretrained = start_from_pretrained(recipe.model, args) if pretrained_start else None
    shared = share_trunk(recipe.model, recogniser) if recogniser is not None else None
    weights = None
    if args.balanced:  # class-balanced sampling: each draw ∝ 1 / (its class's count)
        counts = torch.tensor(train_samples.class_counts(), dtype=torch.float64)
        weights = 1.0 / counts.clamp(min=1)[train_samples.labels]
    run_meta = {
        "data": {"train": train_samples.description, "val": val_samples.description,
                 "train_images": len(train_samples), "val_images": len(val_samples),
                 "train_balance": describe_balance(train_samples)},
        "train_args": args.as_meta(), "pretrained": pretrained, "shared_trunk": shared,
    }  # fmt: skip
    train_set = FerDataset(train_samples, augment=True, random_erasing=args.random_erasing)
    val_set = FerDataset(val_samples)
    engine = Engine(recipe, train_set, val_set, args, run_meta=run_meta, sample_weights=weights)
    engine.prepare()  # a wrong --out or --init fails before the teachers' long pass
    engine.run_meta["distillation"] = distill(args, train_samples, device)  # the datasets read targets lazily
    return engine.fit()
