"""Triplet loss and miners against hand-computed and brute-force references."""

import pytest
import torch

from srfer.core.errors import SrferError
from srfer.train.losses import TripletLoss, mine_all, mine_batch_hard, mine_semi_hard, squared_distances


def test_triplet_loss_hand_computed() -> None:
    # 1-D embeddings: a = 0, p = 1 (same person), n = 1.5 → d(a,p)=1, d(a,n)=2.25
    emb = torch.tensor([[0.0], [1.0], [1.5]])
    labels = torch.tensor([0, 0, 1])
    loss, _ = TripletLoss(margin=2.0, mining="all")(emb, labels)
    # valid triplets: (0,1,2): 1 - 2.25 + 2 = 0.75 ; (1,0,2): 1 - 0.25 + 2 = 2.75 → mean 1.75
    assert float(loss) == pytest.approx(1.75)
    loss_small_margin, _ = TripletLoss(margin=0.2, mining="all")(emb, labels)
    # (0,1,2): 1 - 2.25 + .2 < 0 (inactive); (1,0,2): 1 - .25 + .2 = .95 → mean over active = .95
    assert float(loss_small_margin) == pytest.approx(0.95)


def brute_force(dist: torch.Tensor, labels: list[int], rule: str) -> set[tuple[int, ...]]:
    n = len(labels)
    out = set()
    for a in range(n):
        positives = [p for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [x for x in range(n) if labels[x] != labels[a]]
        if not positives or not negatives:
            continue
        if rule == "batch-hard":
            p = max(positives, key=lambda j: dist[a, j])
            out.add((a, p, min(negatives, key=lambda j: dist[a, j])))
            continue
        for p in positives:
            if rule == "all":
                out.update((a, p, x) for x in negatives)
                continue
            farther = [x for x in negatives if dist[a, x] > dist[a, p]]
            pick = (
                min(farther, key=lambda j: dist[a, j])
                if farther
                else max(negatives, key=lambda j: dist[a, j])
            )
            out.add((a, p, pick))
    return out


@pytest.mark.parametrize(("rule", "miner"), [("all", mine_all), ("batch-hard", mine_batch_hard),
                                             ("semi-hard", mine_semi_hard)])  # fmt: skip
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_miners_match_brute_force(rule: str, miner, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])  # 3 is a singleton: negative only
    emb = torch.nn.functional.normalize(torch.randn(len(labels), 4, generator=gen), dim=1)
    dist = squared_distances(emb)
    mined = {tuple(t) for t in miner(dist, labels, 0.2).tolist()}
    assert mined == brute_force(dist, labels.tolist(), rule)
    assert all(labels[a] != 3 for a, _, _ in mined)  # a singleton never anchors


def test_squared_distances() -> None:
    x = torch.randn(5, 3)
    ref = torch.tensor([[float(((x[i] - x[j]) ** 2).sum()) for j in range(5)] for i in range(5)])
    assert torch.allclose(squared_distances(x), ref, atol=1e-5)


def test_loss_is_differentiable_and_zero_without_triplets() -> None:
    emb = torch.randn(6, 8, requires_grad=True)
    loss, stats = TripletLoss(mining="semi-hard")(
        torch.nn.functional.normalize(emb), torch.tensor([0, 0, 1, 1, 2, 2])
    )
    loss.backward()
    assert emb.grad is not None and stats["triplets"] == 6
    alone, stats = TripletLoss()(torch.randn(3, 8), torch.tensor([0, 1, 2]))
    assert float(alone) == 0 and stats["triplets"] == 0
    with pytest.raises(SrferError, match="unknown --mining"):
        TripletLoss(mining="random")


def test_semi_hard_prefers_negatives_inside_the_margin() -> None:
    # a=0, p at distance 1; negatives at d=1.1 (semi-hard), 0.5 (hard), 3 (easy)
    dist = torch.tensor(
        [[0, 1, 1.1, 0.5, 3], [1, 0, 9, 9, 9], [1.1, 9, 0, 9, 9], [0.5, 9, 9, 0, 9], [3, 9, 9, 9, 0]]
    )
    labels = torch.tensor([0, 0, 1, 2, 3])
    picks = {tuple(t) for t in mine_semi_hard(dist, labels, 0.2).tolist()}
    assert (0, 1, 2) in picks
