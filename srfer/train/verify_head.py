"""Recipe: the learned verification head (`srfer.models.verify_head`) on a frozen embedder.

Every face of the training and validation identities is embedded once per probe (full size, and
each of `--sizes` under each `--degradation`, restored as `predict` routes it for the embedder),
into embedding banks (`srfer.eval.bank`) that later runs and `eval-embed --head` reuse. The head
learns from pairs of those rows, each pair seen at every two probes (a full-size enrolment
against a 16 px probe, two 24 px faces, …), with binary cross-entropy. Validation: eval-embed's
pairs of unseen people at full size, a full-size face against each probe, and both faces at each
probe; it monitors the mean accuracy of the head's own decision (logit > 0) over those."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from srfer.core.plots import plot_training_curves
from srfer.core.runtime import resolve_device
from srfer.data import split_key
from srfer.data.identity import generate_pairs
from srfer.eval.bank import Bank, Probe, identity_banks, probes
from srfer.eval.options import degradations_of
from srfer.eval.pair_head import PairSetting, compare, probe_px
from srfer.eval.sweeps import route_restorer
from srfer.infer.load import embedder_threshold, load_embedder
from srfer.models.verify_head import VerifyHead, VerifyHeadConfig
from srfer.train.args import VerifyHeadTrainArgs, parse_lr_sizes
from srfer.train.engine import Engine, SingleNetworkRecipe, StepContext


class PairSet(Dataset):
    """Pairs of bank rows, each at every two probes: item i is pair i // P², probes (i % P²)
    divmod P of P probes."""

    def __init__(
        self, bank: Bank, pairs: list[tuple[int, int, bool]], seen: list[Probe], work_size: int
    ) -> None:
        self.bank, self.pairs, self.seen = bank, pairs, seen
        self.px = [probe_px(p, work_size) for p in seen]

    def __len__(self) -> int:
        return len(self.pairs) * len(self.seen) ** 2

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        pair, combo = divmod(split_key(key)[0], len(self.seen) ** 2)
        first, second = divmod(combo, len(self.seen))
        a, b, same = self.pairs[pair]
        return {
            "a": self.bank.embeddings[self.seen[first]][a], "b": self.bank.embeddings[self.seen[second]][b],
            "px_a": torch.tensor(self.px[first]), "px_b": torch.tensor(self.px[second]),
            "same": torch.tensor(float(same)),
        }  # fmt: skip

    def features(self, limit: int = 65536, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """A seeded sample of items as one batch (a, b, px_a, px_b): for the head's standardisation."""
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:limit]
        items = [self[int(i)] for i in pick]
        return tuple(torch.stack([item[k] for item in items]) for k in ("a", "b", "px_a", "px_b"))


def val_settings(seen: list[Probe]) -> list[PairSetting]:
    """Full size against full size, against each probe, and both faces at each probe."""
    full, small = seen[0], seen[1:]
    return (
        [PairSetting(full, full)] + [PairSetting(full, p) for p in small] + [PairSetting(p, p) for p in small]
    )


class VerifyHeadRecipe(SingleNetworkRecipe):
    kind = "verify-head"
    monitor = "val_accuracy"
    monitor_mode = "max"
    network_name = "model"

    def __init__(
        self, config: VerifyHeadConfig, lr: float, weight_decay: float, val_bank: Bank,
        val_pairs: list[tuple[int, int, bool]], settings: list[PairSetting], tau: float, work_size: int,
    ) -> None:  # fmt: skip
        head = VerifyHead(config)
        super().__init__(head, lr, [{"params": head.parameters(), "weight_decay": weight_decay}])
        self.val_bank, self.val_pairs, self.settings = val_bank, val_pairs, settings
        self.tau, self.work_size = tau, work_size

    def describe(self) -> dict[str, Any]:
        return {"stage": "verify-head", "loss": "binary cross-entropy", "tau": self.tau,
                "val_settings": [s.name for s in self.settings]}  # fmt: skip

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        inputs = [batch[k].to(ctx.device) for k in ("a", "b", "px_a", "px_b")]
        logits = ctx.synced(self.model)(*inputs)
        loss = F.binary_cross_entropy_with_logits(logits, batch["same"].to(ctx.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        accuracy = ((logits.detach() > 0).float().cpu() == batch["same"]).float().mean()
        return {"loss": float(loss.detach()), "accuracy": float(accuracy)}

    def validate(self, loader: DataLoader, ctx: StepContext) -> dict[str, float]:
        out: dict[str, float] = {}
        heads, taus = [], []
        for s in self.settings:
            report = compare(self.val_bank, self.val_pairs, s, self.tau, self.model, self.work_size)
            heads.append(report["head"]["fixed_accuracy"])
            taus.append(report["tau"]["fixed_accuracy"])
            out[f"val_head_{s.name}"], out[f"val_tau_{s.name}"] = heads[-1], taus[-1]
        return {"val_accuracy": sum(heads) / len(heads), "val_tau_accuracy": sum(taus) / len(taus), **out}

    def on_epoch_end(self, epoch: int, history: list[dict[str, Any]], out_dir: Path) -> None:
        plot_training_curves(history, out_dir / "curves.png", [("val_accuracy", ""), ("train_loss", "")])


def train_verify_head(args: VerifyHeadTrainArgs) -> dict[str, Any]:
    args.start()
    sizes = parse_lr_sizes(args.sizes, 8, 127, "--sizes")
    # an unknown preset fails here, before any face is embedded
    seen = probes(sizes, [how.name for how in degradations_of(args.degradation, sweep=True)])
    embedder = load_embedder(args.embed_weights, resolve_device(args.device))
    work_size = embedder.contract["crop_size"]
    folder = Path(args.banks or Path(args.out) / "banks")
    restorer = route_restorer(embedder)
    train_bank = identity_banks(embedder, args.data, "train", seen, restorer, folder, args.seed, args.subset)
    val_bank = identity_banks(embedder, args.data, "val", seen, restorer, folder, args.seed, args.subset)
    train_pairs = generate_pairs(train_bank.labels.tolist(), args.pairs, seed=args.seed)
    val_pairs = generate_pairs(val_bank.labels.tolist(), args.val_pairs, seed=args.seed)
    dim = train_bank.embeddings[seen[0]].shape[1]
    config = VerifyHeadConfig(dim=dim, hidden=args.hidden, per_dim=args.per_dim, chi2=args.chi2,
                              sizes=args.face_sizes, knots=(work_size, *sizes))  # fmt: skip
    tau = embedder_threshold(embedder)
    recipe = VerifyHeadRecipe(
        config, args.lr, args.weight_decay, val_bank, val_pairs, val_settings(seen), tau, work_size
    )
    train_set = PairSet(train_bank, train_pairs, seen, work_size)
    if not args.resume:  # a resumed run restores its standardisation with the weights
        recipe.model.fit_standardisation(recipe.model.pair_features(*train_set.features(seed=args.seed)))
    run_meta = {
        "data": {"train": str(args.data), "train_faces": len(train_bank.labels),
                 "train_pairs": len(train_pairs), "val_faces": len(val_bank.labels),
                 "val_pairs": len(val_pairs),
                 "probes": [p.name for p in seen], "restored": "as predict routes faces for the embedder",
                 "route": restorer.describe()},
        "identity_embedder": {"path": str(embedder.source), "sha256": embedder.model_id, "tau": tau},
        "train_args": args.as_meta(),
    }  # fmt: skip
    # the recipe validates on its own banks; the engine validates only when given a validation set
    placeholder = PairSet(val_bank, val_pairs[:1], seen[:1], work_size)
    engine = Engine(recipe, train_set, placeholder, args, run_meta=run_meta)
    return engine.fit()
