"""Inference in a bounded pool: `threads` requests run at once, `queue` more may wait, and the
rest are refused at once (`Overloaded`: 503 with Retry-After) instead of piling up."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from srfer.core.errors import ServiceUnavailable

T = TypeVar("T")


class Overloaded(ServiceUnavailable):
    """Every thread busy and the queue full."""


class InferencePool:
    def __init__(self, threads: int, queue: int) -> None:
        self.threads, self.capacity = threads, threads + queue
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="srfer-infer")
        self._admitted = 0
        self._lock = threading.Lock()
        # the process is the server's: its cores are shared out between the inference threads
        torch.set_num_threads(max(1, torch.get_num_threads() // threads))

    @property
    def depth(self) -> int:
        """Requests running or waiting."""
        return self._admitted

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            if self._admitted >= self.capacity:
                raise Overloaded(f"busy: {self.threads} running and {self.capacity - self.threads} waiting")
            self._admitted += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, lambda: _no_grad(work, *args, **kwargs))
        finally:
            with self._lock:
                self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _no_grad(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with torch.no_grad():
        return work(*args, **kwargs)
