"""Independent inputs (photos, face crops) spread over threads of this process or over worker
processes, on the CPU.

Why: `predict` and `upscale` spend their CPU time in chains of small operations (MTCNN's
pyramid of small convolutions, a resize per candidate window, NMS, one face through the SR
generator) that torch's intra-op threads share out poorly, while the inputs are independent.
L inputs in flight with cores / L intra-op threads each keep every core busy, and the answers
are those of one input at a time (docs/performance.md has the measurements).

Threads (`in_flight`, the default over several inputs): L Python threads in this process
sharing its models (torch releases the GIL inside its operations); nothing to start.

Processes (`map_in_workers`, `--workers`): the calling process is one of the W. It works on
chunks with its own models from the first moment, while the W − 1 spawned ones (not forked:
torch's thread pools are not fork-safe) import torch and build their models (a few seconds);
a spawned one is only given chunks once it says it is ready, at most two at a time, so a small
job never waits for a slow start, and a job that ends first leaves them behind (they are
terminated). Results come back in input order.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context
from typing import Any

import torch

from srfer.core.errors import SrferError
from srfer.core.process import keep_freed_memory

MAX_LANES = 4  # inputs in flight in one process (unmeasured beyond 2 cores: kept modest)
QUEUED_PER_WORKER = 2  # chunks handed to a ready spawned worker at a time (one running, one waiting)


def lanes_for(device: torch.device, items: int) -> int:
    """How many inputs one process keeps in flight: one per core on the CPU (at most
    MAX_LANES), one on an accelerator (it batches instead)."""
    return 1 if device.type != "cpu" else max(1, min(MAX_LANES, torch.get_num_threads(), items))


def in_flight(work: Callable[[Any], Any], items: Sequence[Any], lanes: int) -> Iterator[Any]:
    """`work(item)` for every item, yielded in order, `lanes` at a time on threads of this
    process, each with cores / lanes intra-op threads while it runs. `work` must be safe to
    call from several threads (inference under no_grad is)."""
    if lanes <= 1:
        yield from map(work, items)
        return
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, caller_threads // lanes))
    pool = ThreadPoolExecutor(lanes, thread_name_prefix="srfer-lane")
    try:
        futures = [pool.submit(_no_grad, work, item) for item in items]
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(cancel_futures=True)
        torch.set_num_threads(caller_threads)


def _no_grad(work: Callable[[Any], Any], item: Any) -> Any:
    with torch.no_grad():  # grad mode is per thread
        return work(item)


def _serve(work, init, init_args: tuple, threads: int, tasks, results) -> None:
    """A spawned worker: set up once, say so, then run chunks until told to stop."""
    torch.set_num_threads(threads)
    keep_freed_memory()  # as the CLI process does
    try:
        init(*init_args)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, which raises it
        results.put(("failed", None, exc))
        return
    results.put(("ready", None, None))
    while (task := tasks.get()) is not None:
        index, chunk = task
        try:
            results.put(("done", index, work(chunk)))
        except BaseException as exc:  # noqa: BLE001 - as above
            results.put(("failed", index, exc))


def map_in_workers(
    work: Callable[[Any], Any], chunks: Sequence[Any], workers: int, init: Callable[..., None],
    init_args: tuple, on_result: Callable[[Any, Any], None], local: Callable[[Any], Any],
) -> None:  # fmt: skip
    """`on_result(chunk, result)` for every chunk, in order. `local(chunk)` runs a chunk in this
    process; `work(chunk)` in one of `workers` − 1 spawned processes, each set up once by
    `init(*init_args)`. Every process (this one too, for the duration) gets cores / workers
    threads. `work` and `init` must be module-level functions (they are pickled by name)."""
    threads = max(1, torch.get_num_threads() // workers)
    context = get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    spawned = [
        context.Process(target=_serve, args=(work, init, init_args, threads, tasks, results), daemon=True)
        for _ in range(min(workers - 1, len(chunks) - 1))
    ]
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for process in spawned:
            process.start()
        _schedule(chunks, local, on_result, tasks, results, spawned)
    finally:
        torch.set_num_threads(caller_threads)
        tasks.cancel_join_thread()  # chunks nobody took are dropped, not waited for
        for process in (p for p in spawned if p.pid is not None):  # started ones
            process.terminate()
            process.join()


def _schedule(chunks, local, on_result, tasks, results, spawned) -> None:
    """Hand chunks to ready workers, run the rest here, and report results in input order."""
    finished: dict[int, Any] = {}
    given = reported = queued = ready = 0

    def receive(block: bool) -> bool:
        """Take one message from the workers; False when none came."""
        nonlocal ready, queued
        try:
            status, index, payload = results.get(block=block, timeout=1 if block else None)
        except queue.Empty:
            return False
        if status == "failed":
            raise payload if isinstance(payload, SrferError) else SrferError(f"a worker failed: {payload}")
        if status == "ready":
            ready += 1
        else:
            finished[index], queued = payload, queued - 1
        return True

    while reported < len(chunks):
        while receive(block=False):
            pass
        while reported in finished:
            on_result(chunks[reported], finished.pop(reported))
            reported += 1
        while given < len(chunks) and queued < QUEUED_PER_WORKER * ready:
            tasks.put((given, chunks[given]))
            given, queued = given + 1, queued + 1
        if given < len(chunks):  # this process's share
            finished[given] = local(chunks[given])
            given += 1
        elif reported < len(chunks) and reported not in finished and not receive(block=True):
            _check_alive(spawned, queued)


def _check_alive(spawned, queued: int) -> None:
    if queued and not all(process.is_alive() for process in spawned):
        raise SrferError("a worker process died (out of memory?); try --workers 1")


def chunked(items: Sequence[Any], workers: int, most: int, per_worker: int = 4) -> list[Sequence[Any]]:
    """`items` in order, cut into chunks of at most `most`, about `per_worker` per worker
    (small chunks balance inputs of very different cost)."""
    size = max(1, min(most, -(-len(items) // (workers * per_worker))))
    return [items[i : i + size] for i in range(0, len(items), size)]
