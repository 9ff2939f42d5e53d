"""Inputs in flight on threads and in worker processes (`srfer.accel.workers`), and process settings."""

from __future__ import annotations

import sys
import time

import pytest
import torch

from srfer.accel.workers import in_flight, lanes_for, map_in_workers
from srfer.core.process import keep_freed_memory


def slow_square(x: int) -> int:
    time.sleep(0.01 * (x % 3))  # later items often finish first
    assert not torch.is_grad_enabled()  # each lane runs under no_grad
    return x * x


def test_in_flight_answers_in_order_and_gives_the_threads_back() -> None:
    threads = torch.get_num_threads()
    assert list(in_flight(slow_square, range(12), lanes=3)) == [x * x for x in range(12)]
    assert torch.get_num_threads() == threads


def test_a_failure_in_a_lane_reaches_the_caller() -> None:
    def fail_on_five(x: int) -> int:
        if x == 5:
            raise ValueError("five")
        return x

    with pytest.raises(ValueError, match="five"):
        list(in_flight(fail_on_five, range(8), lanes=2))


def test_lanes_one_per_core_on_the_cpu_only() -> None:
    assert lanes_for(torch.device("cpu"), 1) == 1
    assert lanes_for(torch.device("cpu"), 100) == max(1, min(4, torch.get_num_threads()))
    assert lanes_for(torch.device("cuda"), 100) == 1


def never_ready() -> None:
    time.sleep(600)  # a worker that takes forever to start (terminated when the job ends)


def double(chunk: list[int]) -> list[int]:
    return [2 * x for x in chunk]


def test_the_caller_does_the_work_while_workers_start() -> None:
    """A job shorter than a worker's start-up never waits for it."""
    chunks = [[i, i + 1] for i in range(0, 10, 2)]
    done_here, results = [], []
    start = time.perf_counter()
    map_in_workers(double, chunks, 2, never_ready, (), lambda chunk, r: results.append(r),
                   lambda chunk: done_here.append(chunk) or double(chunk))  # fmt: skip
    assert results == [double(c) for c in chunks] and done_here == chunks
    assert time.perf_counter() - start < 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_on_glibc() -> None:
    assert keep_freed_memory() is True
