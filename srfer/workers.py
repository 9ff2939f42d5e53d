"""Independent inputs (photos, face crops) spread over worker processes on the CPU.

Why processes: `predict` and `upscale` spend their CPU time in long chains of small
operations (MTCNN's pyramid of tiny convolutions, a resize per candidate box, NMS; one face
through the SR generator) that torch's intra-op threads parallelise poorly, while the
inputs are independent. W processes with cores / W threads each keep every core busy, and
the answers are those of one process.

Workers are spawned, not forked (torch's thread pools are not fork-safe): each imports
torch and builds its models once (`init`), which costs about two seconds, so a job uses
them only when it has enough inputs (`auto_workers`). Results come back in input order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

import torch

from srfer.errors import SrferError

MIN_INPUTS_PER_WORKER = 6  # below this a worker's start costs more than it saves (measured: README)


def auto_workers(n_inputs: int, device: torch.device, per_worker: int = MIN_INPUTS_PER_WORKER) -> int:
    """Processes for `n_inputs`: one per core on the CPU when each gets `per_worker` inputs or
    more, fewer otherwise; one on a GPU (the device is the parallel part there)."""
    if device.type != "cpu":
        return 1
    return max(1, min(os.cpu_count() or 1, n_inputs // per_worker))


def _start(init: Callable[..., None], args: tuple, threads: int) -> None:
    torch.set_num_threads(threads)
    init(*args)


def map_in_workers(
    work: Callable[[Any], Any], chunks: Sequence[Any], workers: int, init: Callable[..., None],
    init_args: tuple, on_result: Callable[[Any, Any], None],
) -> None:  # fmt: skip
    """`on_result(chunk, work(chunk))` for every chunk, in order; `work` runs in `workers`
    spawned processes, each set up once by `init(*init_args)` with cores / workers threads.
    `work` and `init` must be module-level functions (they are pickled by name)."""
    threads = max(1, torch.get_num_threads() // workers)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start,
                               initargs=(init, init_args, threads))  # fmt: skip
    try:
        futures = [pool.submit(work, chunk) for chunk in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            on_result(chunk, future.result())
    except BrokenProcessPool:
        raise SrferError("a worker process died (out of memory?); try --workers 1") from None
    finally:
        pool.shutdown(cancel_futures=True)


def chunked(items: Sequence[Any], workers: int, most: int, per_worker: int = 4) -> list[Sequence[Any]]:
    """`items` in order, cut into chunks of at most `most`, about `per_worker` per worker
    (small chunks balance inputs of very different cost)."""
    size = max(1, min(most, -(-len(items) // (workers * per_worker))))
    return [items[i : i + size] for i in range(0, len(items), size)]
