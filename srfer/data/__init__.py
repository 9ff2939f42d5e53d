"""Datasets, degradations and samplers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def evenly_spaced(items: list, n: int) -> list:
    """`n` items spread over the whole list (all of them when n is 0 or ≥ its length): a
    subset that still covers every class of a sorted-by-class list."""
    if n <= 0 or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def split_key(key: int | tuple[int, int]) -> tuple[int, int | None]:
    """Dataset keys are an index, or (index, sample_seed) from the engine's samplers."""
    return key if isinstance(key, tuple) else (key, None)


@contextmanager
def sample_rng(sample_seed: int | None) -> Iterator[None]:
    """Draw augmentation from the sample's own seed when it has one, leaving the global RNG
    untouched: the same sample is augmented the same way whichever worker loads it, which
    makes resumed epochs exact."""
    with torch.random.fork_rng(devices=[], enabled=sample_seed is not None):
        if sample_seed is not None:
            torch.manual_seed(sample_seed)
        yield
