"""The one training engine every stage uses.

A stage supplies a `Recipe` (its networks, optimizers, one training step, validation);
the engine owns everything else: device and AMP, seeding, the per-epoch sampler, a rich
progress bar, cosine learning rate, `metrics.jsonl`, atomic checkpoints (`last`, `best`,
every N epochs), exact `--resume`, Ctrl-C → checkpoint and clean exit, early stopping, and
data-parallel training when launched by torchrun (`srfer.train.distributed`).

Resume is exact, also mid-epoch: each epoch's sample order comes from (seed, epoch), each
sample's augmentation from its own seed (see `EpochSampler`), and the checkpoint holds
every RNG state and the number of batches already done in the interrupted epoch.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from srfer.core.checkpoint import flatten, load_checkpoint, save_checkpoint, unflatten
from srfer.core.console import err_console, info
from srfer.core.errors import SrferError, TrainingInterrupted
from srfer.core.imageio import make_folder
from srfer.core.runtime import amp_dtype, resolve_device, rng_state, seed_everything, set_rng_state
from srfer.train import distributed
from srfer.train.args import EngineConfig, RunArgs, check_run_folder
from srfer.train.distributed import RankBatches
from srfer.train.recipe import Recipe, SingleNetworkRecipe, StepContext, start_from
from srfer.train.schedule import MIN_LR_FACTOR, EpochSampler, auto_workers, cosine_factor

__all__ = [
    "Engine",
    "EngineConfig",
    "Recipe",
    "RunArgs",
    "SingleNetworkRecipe",
    "StepContext",
    "TrainingInterrupted",
]


@dataclass
class EpochState:
    """Counters that make a run resumable."""

    epoch: int = 0  # next epoch to run
    step: int = 0  # optimizer steps done
    batches_done: int = 0  # inside `epoch`, when interrupted mid-epoch
    best: float | None = None
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt():
    """Route SIGTERM to KeyboardInterrupt (main thread only); returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


class Engine:
    def __init__(
        self,
        recipe: Recipe,
        train_set: Dataset,
        val_set: Dataset | None,
        config: EngineConfig,
        collate_fn=None,
        run_meta: dict[str, Any] | None = None,
        sample_weights: torch.Tensor | None = None,
        batch_sampler: Callable[[int, int], Sampler] | None = None,
    ) -> None:
        self.recipe, self.train_set, self.val_set, self.cfg = recipe, train_set, val_set, config
        self.sample_weights = sample_weights  # e.g. a class-balanced sampler
        # (epoch_seed, batches to skip) → a sampler of whole batches, e.g. P×K identities
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn
        self.run_meta = run_meta or {}
        self.device = distributed.rank_device(resolve_device(config.device))
        self.world = distributed.world()
        distributed.check_batch(config.batch_size)
        self.ctx = StepContext(self.device, amp_dtype(self.device, config.amp, training=True))
        self.out_dir = Path(config.out)
        self.state = EpochState()
        self._prepared = False
        self.epoch_size = config.epoch_size or len(train_set)  # type: ignore[arg-type]
        self.steps_per_epoch = max(1, self.epoch_size // config.batch_size)
        self.epoch_size = self.steps_per_epoch * config.batch_size  # whole batches only
        self.workers = auto_workers(config.workers)
        # again after RunArgs.start() seeded the networks' init: the training stream then does
        # not depend on how many draws building the recipe took (and bare Engine users get it)
        seed_everything(config.seed)
        for net in recipe.networks().values():
            # channels_last: oneDNN/cuDNN's fast layout for conv nets (weights saved contiguous)
            net.to(self.device, memory_format=torch.channels_last)
            self.ctx.wrappers[id(net)] = distributed.wrap(net, self.device)
        total = self.steps_per_epoch * config.epochs
        restarts = [e * self.steps_per_epoch for e in recipe.restart_epochs()]
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s, r=restarts, t=total: cosine_factor(s, r, t, MIN_LR_FACTOR)
            )
            for name, opt in recipe.optimizers().items()
        }

    # ---------------------------------------------------------------- checkpoints
    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.safetensors"

    def save(self, path: Path, metrics: dict[str, float] | None = None) -> Path:
        nets = self.recipe.networks()
        names = list(nets)
        tensors: dict[str, torch.Tensor] = {}
        for i, name in enumerate(names):
            prefix = "model" if i == 0 else f"net.{name}"
            tensors.update({f"{prefix}.{k}": v for k, v in nets[name].state_dict().items()})
        train_state = {
            "optimizers": {n: o.state_dict() for n, o in self.recipe.optimizers().items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "rng": rng_state(),
        }
        skeleton = flatten(train_state, "train", tensors)
        primary = nets[names[0]]
        meta = {
            "engine": asdict(self.state),
            "train_state": skeleton,
            "networks": {
                n: {"kind": getattr(nets[n], "kind", n), "config": nets[n].config.to_dict()}
                for n in names[1:]
            },
            "args": self._engine_args(),
            "recipe": self.recipe.describe(),
            "metrics": metrics or {},
            **self.run_meta,
        }
        return save_checkpoint(path, self.recipe.kind, primary.config.to_dict(), tensors, meta)

    def _engine_args(self) -> dict[str, Any]:
        """The engine's own settings (a stage's full arguments are its `train_args`)."""
        values = {f.name: getattr(self.cfg, f.name) for f in fields(EngineConfig)}
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}

    def load(self, path: Path) -> None:
        ckpt = load_checkpoint(path, expect_kind=self.recipe.kind)
        if "train_state" not in ckpt.meta:
            raise SrferError(f"{path}: holds weights only, no training state to resume from")
        nets = self.recipe.networks()
        try:
            for i, (name, net) in enumerate(nets.items()):
                net.load_state_dict(ckpt.section("model" if i == 0 else f"net.{name}"))
        except RuntimeError as exc:
            raise SrferError(f"{path}: does not match this run's networks ({str(exc)[:160]})") from None
        state = unflatten(ckpt.meta["train_state"], ckpt.tensors)
        for name, opt in self.recipe.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        set_rng_state(state["rng"])
        self.state = EpochState(**ckpt.meta["engine"])

    # ---------------------------------------------------------------- loop
    def _loader(self, dataset: Dataset, seed: int, batches: Sampler | None = None):
        """Training: `batches` (this rank's shards); validation: in order, `batch_size` at a time."""
        sizing: dict[str, Any] = {"batch_size": self.cfg.batch_size}
        if batches is not None:
            sizing = {"batch_sampler": batches}
        return DataLoader(
            dataset,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            collate_fn=self.collate_fn,
            generator=torch.Generator().manual_seed(seed),  # worker seeds per epoch
            **sizing,
        )

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=not self.world.is_main,
        )

    def _global_batches(self, epoch_seed: int) -> Sampler:
        """The epoch's batches (all ranks' samples), from the resume point on."""
        if self.batch_sampler is not None:
            return self.batch_sampler(epoch_seed, self.state.batches_done)
        skip = self.state.batches_done * self.cfg.batch_size
        sampler = EpochSampler(len(self.train_set), self.epoch_size, epoch_seed, skip, self.sample_weights)
        return BatchSampler(sampler, self.cfg.batch_size, drop_last=True)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        epoch_seed = self.cfg.seed * 100_003 + epoch
        loader = self._loader(self.train_set, epoch_seed, RankBatches(self._global_batches(epoch_seed)))
        for net in self.recipe.networks().values():
            net.train()
        sums: dict[str, float] = {}
        count, images, skipped, start = 0, 0, 0, time.perf_counter()
        with self._progress() as progress:
            task = progress.add_task(f"epoch {epoch + 1}/{self.cfg.epochs}", total=len(loader), stats="")
            for batch in loader:
                skipped += len(batch.pop("skipped", []))
                if not batch:
                    continue
                self.ctx.epoch, self.ctx.step = epoch, self.state.step
                logs = self.recipe.train_step(batch, self.ctx)
                with warnings.catch_warnings():  # an idle optimizer (e.g. the discriminator
                    warnings.simplefilter("ignore", UserWarning)  # in pre-training) still follows
                    for sched in self.schedulers.values():  # the schedule, by design
                        sched.step()
                self.state.step += 1
                self.state.batches_done += 1
                images += len(next(iter(batch.values())))
                count += 1
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                rate = images * self.world.size / (time.perf_counter() - start)
                first = next(iter(logs))
                stats = f"{first} {logs[first]:.4f} · {rate:.1f} img/s"
                progress.update(task, advance=1, stats=stats)
                logged = self.world.is_main and not err_console.is_terminal
                if logged and count % max(1, len(loader) // 10) == 0:
                    info(f"epoch {epoch + 1} · step {count}/{len(loader)} · {stats}")  # for log files
        seconds = time.perf_counter() - start
        totals = distributed.reduce_sums(
            {**sums, "_count": count, "_images": images, "_skipped": skipped}, self.device
        )  # every rank's share of the epoch
        count, images, skipped = (int(totals.pop(k)) for k in ("_count", "_images", "_skipped"))
        if skipped:
            self._say(f"[yellow]warning:[/yellow] skipped {skipped} unusable image(s) this epoch")
        means = {f"train_{k}": v / max(1, count) for k, v in totals.items()}
        return {**means, "train_images_per_s": images / max(seconds, 1e-9), "epoch_seconds": seconds}

    def _say(self, text: str) -> None:
        """`info` from rank 0 only (every rank runs the same loop)."""
        if self.world.is_main:
            info(text)

    def _write_epoch(self, epoch: int, record: dict[str, Any], improved: bool) -> None:
        """Rank 0's end of an epoch: checkpoints first, then the metrics line and artefacts (so
        no metrics or plots ever describe an epoch whose checkpoint failed to write), then the
        summary line."""
        self.save(self.last_path, record)
        if improved:
            self.save(self.out_dir / "best.safetensors", record)
        if self.cfg.save_every and epoch % self.cfg.save_every == 0:
            self.save(self.out_dir / f"epoch-{epoch:04d}.safetensors", record)
        self._log(record)
        self.recipe.on_epoch_end(epoch, self.state.history, self.out_dir)
        shown = " · ".join(
            f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float) and not k.startswith("lr")
        )
        info(f"epoch {epoch}/{self.cfg.epochs} · {shown}{' · best' if improved else ''}")

    def _improved(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.state.best is None:
            return True
        return value > self.state.best if self.recipe.monitor_mode == "max" else value < self.state.best

    def _validate(self, loader: DataLoader | None) -> dict[str, float]:
        """Rank 0 validates on the whole set, as one process would; every rank gets its record."""
        for net in self.recipe.networks().values():
            net.eval()
        record = {}
        if loader is not None and self.world.is_main:
            with torch.no_grad():
                record = self.recipe.validate(loader, self.ctx)
        return distributed.from_main(record)

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def fit(self) -> dict[str, Any]:
        """Train to `epochs` (or early stop); returns the best record.

        SIGTERM (a scheduler's pre-emption, `kill`) is handled like Ctrl-C: state is saved."""
        previous = _sigterm_as_interrupt()
        try:
            return self._fit()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def prepare(self) -> None:
        """The run's cheap start: the run folder checked, `--init` loaded. `fit` does it; a
        caller with long work between building the engine and fitting (distillation's teacher
        pass) calls it first, so that a wrong --out or --init fails in seconds. Idempotent."""
        if self._prepared:
            return
        check_run_folder(self.out_dir, self.cfg.resume)
        if self.cfg.init is not None and not self.cfg.resume:  # a resumed run restores its own weights
            start_from(next(iter(self.recipe.networks().values())), self.cfg.init, self.recipe.kind)
        self._prepared = True

    def _fit(self) -> dict[str, Any]:
        self.prepare()
        make_folder(self.out_dir)
        if self.cfg.resume:
            self.load(self.last_path)
            where = f"epoch {self.state.epoch + 1}, step {self.state.step}"
            self._say(f"resumed from {self.last_path} at {where}")
        processes = f" · {self.world.size} processes (DDP)" if self.world.distributed else ""
        self._say(
            f"device {self.device} · amp {self.ctx.dtype or 'off'} · {len(self.train_set)} training images · "
            f"{self.steps_per_epoch} steps/epoch · {self.workers} loader workers{processes}"
        )
        val_loader = self._loader(self.val_set, self.cfg.seed) if self.val_set is not None else None
        while self.state.epoch < self.cfg.epochs:
            epoch = self.state.epoch
            stalled = epoch - self.state.best_epoch
            if self.cfg.patience and self.state.history and stalled >= self.cfg.patience:
                self._say(f"early stop: no {self.recipe.monitor} improvement for {self.cfg.patience} epochs")
                break  # checked before each epoch, so a resumed early-stopped run stays stopped
            try:
                record = self._train_epoch(epoch)
                record.update(self._validate(val_loader))
            except KeyboardInterrupt:  # resuming skips the batches done (all, if validating)
                path = self.save(self.last_path) if self.world.is_main else self.last_path
                raise TrainingInterrupted(path) from None
            lrs = {f"lr_{n}": o.param_groups[0]["lr"] for n, o in self.recipe.optimizers().items()}
            record = {"epoch": epoch + 1, "step": self.state.step, **record, **lrs}
            value = record.get(self.recipe.monitor)
            improved = self._improved(value)
            if improved:
                self.state.best, self.state.best_epoch = value, epoch + 1
            self.state.epoch, self.state.batches_done = epoch + 1, 0
            self.state.history.append(record)
            if self.world.is_main:
                self._write_epoch(epoch + 1, record, improved)
        distributed.barrier()  # the last checkpoint is on disk before any rank returns
        return {
            "best": self.state.best,
            "best_epoch": self.state.best_epoch,
            "monitor": self.recipe.monitor,
            "epochs_run": self.state.epoch,
        }
