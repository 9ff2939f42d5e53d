"""Data-parallel training under `torchrun`: one process per GPU (or CPU rank), gradients
averaged by `torch.nn.parallel.DistributedDataParallel`.

Launch any `srfer train-*` command through torchrun and the engine runs distributed; there
is no switch:

    torchrun --nproc_per_node 4 -m srfer train-sr --data … --out runs/sr --batch-size 64

What changes with the world size W, and what does not:
- `--batch-size` (and P×K) stays the *global* batch: each rank takes 1/W of every batch of
  the one seeded sample stream (`shard`). The same command therefore trains on the same
  batches whatever W is, and `--resume` continues that stream exactly also when W changes.
  torch's `DistributedSampler` is not used for this reason: it deals rank r the indices
  r, r+W, … of a per-epoch permutation, a stream that depends on W.
- Rank 0 alone shows progress, logs, validates (on the whole validation set, as a single
  process would) and writes checkpoints; the others receive its validation record.
- Training logs are averaged over ranks (`reduce_sums`).
- BatchNorm becomes SyncBatchNorm on CUDA (statistics over the global batch). On CPU
  (the gloo backend) torch has no SyncBatchNorm: each rank normalises with its own shard's
  statistics and DDP keeps the running statistics of rank 0.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from srfer.core.errors import SrferError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_world = World()


def world() -> World:
    return _world


def from_environment() -> World:
    """The world torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (a single process without them)."""
    try:
        return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))  # fmt: skip
    except ValueError:
        raise SrferError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (as torchrun sets them)") from None


def init(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (once; a no-op for one process) and return
    this rank's device: `cuda:LOCAL_RANK` on GPUs (NCCL), the CPU otherwise (gloo)."""
    global _world
    env = from_environment()
    if not env.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=env.rank, world_size=env.size, device_id=_device_id(device))
        atexit.register(_leave)
    _world = env
    return device


def _device_id(device: torch.device) -> torch.device | None:
    return device if device.type == "cuda" else None


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """`device` as this rank uses it (`cuda` → `cuda:LOCAL_RANK` when distributed)."""
    if _world.distributed and device.type == "cuda":
        return torch.device("cuda", _world.local_rank)
    return device


def check_batch(batch_size: int, what: str = "--batch-size") -> None:
    """A global batch must split evenly over the ranks."""
    if batch_size % _world.size:
        raise SrferError(f"{what} {batch_size} does not split over {_world.size} processes; use a multiple")


def shard(batch: list, world_: World | None = None) -> list:
    """This rank's contiguous 1/W of a global batch (P×K batches stay whole identities when
    P is a multiple of W)."""
    w = world_ or _world
    n = len(batch) // w.size
    return batch[w.rank * n : (w.rank + 1) * n]


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """`net` as the training step should call it: its DDP wrapper when distributed (with
    SyncBatchNorm on CUDA), else itself. The wrapper shares `net`'s parameters, so the
    recipe's own module keeps holding (and saving) the trained weights."""
    if not _world.distributed or not any(p.requires_grad for p in net.parameters()):
        return net
    if device.type == "cuda":  # in place below the root, reusing the Parameter objects the optimizer holds
        nn.SyncBatchNorm.convert_sync_batchnorm(net)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


class RankBatches(Sampler[list]):
    """This rank's shard of every batch a (global) batch sampler yields."""

    def __init__(self, batches: Sampler) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list]:
        for batch in self.batches:
            yield shard(list(batch))

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]


def reduce_sums(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Element-wise sums of `values` over all ranks (same keys on every rank)."""
    if not _world.distributed or not values:
        return values
    keys = sorted(values)
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=backend_device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def from_main(obj):
    """Rank 0's `obj` on every rank (e.g. the validation record)."""
    if not _world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _world.distributed:
        dist.barrier()


def no_sync(module: nn.Module):
    """Accumulate this backward's gradients locally (DDP's `no_sync`); the next synced
    backward all-reduces the sum."""
    if isinstance(module, nn.parallel.DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()
