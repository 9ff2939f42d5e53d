import pytest
import torch

from srfer.core.errors import SrferError
from srfer.data.samplers import PKBatchSampler
from srfer.eval.metrics import best_threshold, verification_report


def test_best_threshold_on_a_toy_set() -> None:
    distances = torch.tensor([0.1, 0.2, 0.3, 0.9, 1.0, 0.25])
    same = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)
    tau, acc = best_threshold(distances, same)
    assert acc == pytest.approx(5 / 6) and 0.2 < tau < 0.9  # one impostor (0.25) sits among genuines


def test_ten_fold_protocol_on_separable_pairs() -> None:
    gen = torch.Generator().manual_seed(0)
    same = torch.arange(200) % 2 == 0
    distances = torch.where(same, torch.rand(200, generator=gen) * 0.5, 1 + torch.rand(200, generator=gen))
    report = verification_report(distances, same)
    assert (
        report["accuracy"] == 1.0 and report["accuracy_std"] == 0.0 and len(report["fold_thresholds"]) == 10
    )
    assert report["roc_auc"] == 1.0 and report["eer"] == 0.0 and report["tar_at_far_0.001"] == 1.0
    assert 0.5 <= report["threshold"] <= 1.0


def test_ten_fold_accuracy_is_held_out() -> None:
    gen = torch.Generator().manual_seed(1)
    same = torch.rand(300, generator=gen) < 0.5
    distances = torch.rand(300, generator=gen)  # no signal: held-out accuracy near chance
    report = verification_report(distances, same)
    assert report["accuracy"] < 0.62 and 0.35 < report["roc_auc"] < 0.65


def test_pk_sampler_batches_hold_p_identities_times_k() -> None:
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 3 + [3] * 1 + [4] * 4)
    sampler = PKBatchSampler(labels, p=3, k=2, batches=20, seed=0)
    for batch in sampler:
        ids = [int(labels[i]) for i, _ in batch]
        assert len(batch) == 6 and len(set(ids)) == 3 and all(ids.count(x) == 2 for x in set(ids))
        assert 3 not in ids  # a one-image identity is never a P
    resumed = list(PKBatchSampler(labels, p=3, k=2, batches=20, seed=0, skip=5))
    assert resumed == list(sampler)[5:]
    with pytest.raises(SrferError, match="at least 5 identities"):
        PKBatchSampler(labels, p=5, k=2, batches=1, seed=0)
