"""The engine's sampling and learning-rate schedule: exact-resume epoch orders and the cosine."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

MIN_LR_FACTOR = 0.01  # the cosine schedule's floor, as a fraction of the base lr


class EpochSampler(Sampler[tuple[int, int]]):
    """`size` (index, sample_seed) keys from seeded permutations of range(n) (or, with
    `weights`, seeded draws with replacement ∝ weights), minus the first `skip`.

    The per-sample seed makes augmentation independent of loader workers and of where a
    resumed epoch starts, which is what makes mid-epoch resume exact."""

    def __init__(self, n: int, size: int, seed: int, skip: int = 0, weights: torch.Tensor | None = None):
        self.n, self.size, self.seed, self.skip, self.weights = n, size, seed, skip, weights

    def _order(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        if self.weights is not None:
            return torch.multinomial(self.weights.double(), self.size, replacement=True, generator=gen)
        rounds = math.ceil(self.size / self.n)
        return torch.cat([torch.randperm(self.n, generator=gen) for _ in range(rounds)])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        for position in range(self.skip, self.size):
            yield int(order[position]), self.seed * 1_000_003 + position

    def __len__(self) -> int:
        return self.size - self.skip


def cosine_factor(step: int, restarts: list[int], total: int, floor: float) -> float:
    """Cosine from 1 to `floor` inside each segment [restart, next restart)."""
    starts = [s for s in restarts if s <= step] or [0]
    start = max(starts)
    later = [s for s in restarts if s > step]
    end = min(later) if later else total
    progress = (step - start) / max(1, end - start)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def auto_workers(requested: int) -> int:
    if requested >= 0:
        return requested
    return max(0, min(4, (os.cpu_count() or 1) - 1))
