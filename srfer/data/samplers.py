"""Batch samplers that the shared engine can use in place of its per-sample sampler."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from srfer.core.errors import SrferError


class PKBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of P identities × K images each, so every batch holds positives (FaceNet).

    Only identities with at least 2 images are drawn as the P; with fewer than K images an
    identity's images repeat. Keys are (index, sample_seed), like the engine's sampler, and
    the first `skip` batches are skipped on resume."""

    def __init__(self, labels: torch.Tensor, p: int, k: int, batches: int, seed: int, skip: int = 0) -> None:
        self.labels, self.p, self.k, self.batches, self.seed, self.skip = labels, p, k, batches, seed, skip
        ids, counts = labels.unique(return_counts=True)
        self.identities = ids[counts >= 2]
        if len(self.identities) < p:
            raise SrferError(
                f"P×K sampling needs at least {p} identities with 2+ images, got {len(self.identities)}"
            )
        self.members = {int(i): (labels == i).nonzero().squeeze(1) for i in self.identities}

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        gen = torch.Generator().manual_seed(self.seed)
        for b in range(self.batches):
            chosen = self.identities[torch.randperm(len(self.identities), generator=gen)[: self.p]]
            batch = []
            for identity in chosen.tolist():
                members = self.members[identity]
                if len(members) >= self.k:
                    picks = members[torch.randperm(len(members), generator=gen)[: self.k]]
                else:
                    picks = members[torch.randint(len(members), (self.k,), generator=gen)]
                batch.extend(int(i) for i in picks)
            if b >= self.skip:
                yield [(i, self.seed * 1_000_003 + b * len(batch) + j) for j, i in enumerate(batch)]

    def __len__(self) -> int:
        return self.batches - self.skip
