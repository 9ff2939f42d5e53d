"""Verification of embedding pairs by τ or by the learned head (`srfer.models.verify_head`), on
embedding banks (`srfer.eval.bank`): the same pairs seen at any two probes, e.g. a full-size
enrolment against a 16 px probe."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srfer.eval.bank import Bank, Probe
from srfer.eval.metrics import verification_report
from srfer.infer.heads import verify_logits
from srfer.infer.load import Network


@dataclass(frozen=True)
class PairSetting:
    """Which probe each face of a pair is seen at: `first` (e.g. the enrolment) and `second`."""

    first: Probe
    second: Probe

    @property
    def name(self) -> str:
        return f"{self.first.name}|{self.second.name}"


def probe_px(probe: Probe, work_size: int) -> int:
    """The face size a probe stands for: its size, or the working size for full-size faces."""
    return probe.size if probe.size is not None else work_size


def pair_tensors(
    bank: Bank, pairs: list[tuple[int, int, bool]], setting: PairSetting, work_size: int
) -> dict[str, torch.Tensor]:
    """The pairs' embeddings, face sizes and labels at `setting` (a batch for the head)."""
    a = torch.tensor([p[0] for p in pairs])
    b = torch.tensor([p[1] for p in pairs])
    n = len(pairs)
    return {
        "a": bank.embeddings[setting.first][a], "b": bank.embeddings[setting.second][b],
        "px_a": torch.full((n,), probe_px(setting.first, work_size)),
        "px_b": torch.full((n,), probe_px(setting.second, work_size)),
        "same": torch.tensor([p[2] for p in pairs], dtype=torch.float32),
    }  # fmt: skip


def compare(
    bank: Bank, pairs: list[tuple[int, int, bool]], setting: PairSetting, tau: float,
    head: Network | None = None, work_size: int = 128,
) -> dict[str, dict]:  # fmt: skip
    """τ's and (with `head`) the head's verification of the pairs at `setting`: each the LFW
    protocol report (10-fold accuracy with the cut fitted on 9 folds, AUC, TAR@FAR) plus
    `fixed_accuracy`, the accuracy of the shipped decision (d ≤ τ; logit > 0) on all pairs."""
    batch = pair_tensors(bank, pairs, setting, work_size)
    same = batch["same"].bool()
    d = (batch["a"] - batch["b"]).square().sum(1)
    out = {
        "tau": {**verification_report(d, same), "fixed_accuracy": float(((d <= tau) == same).double().mean())}
    }
    if head is not None:
        logits = verify_logits(head, *(batch[k] for k in ("a", "b", "px_a", "px_b")))
        out["head"] = {**verification_report(-logits, same),
                       "fixed_accuracy": float(((logits > 0) == same).double().mean())}  # fmt: skip
    return out
