"""Independent inputs (photos, face crops) spread over worker processes on the CPU.

Why processes: `predict` and `upscale` spend their CPU time in long chains of small
operations (MTCNN's pyramid of tiny convolutions, a resize per candidate box, NMS; one face
through the SR generator) that torch's intra-op threads parallelise poorly, while the
inputs are independent. W processes with cores / W threads each keep every core busy, and
the answers are those of one process.

Workers are spawned, not forked (torch's thread pools are not fork-safe): each imports
torch and builds its models once (`init`), a few seconds. Results come back in input order.

Measured on this project's 2-core CPU (README, "CPU speed"): torch's two intra-op threads
already run MTCNN 1.45× faster than one, so two workers gained only 4 % on 200 photos and
lost below about 100; hence one process is the default. More cores are where it can pay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

import torch

from srfer.errors import SrferError


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
