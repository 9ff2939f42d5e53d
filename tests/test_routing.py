"""`predict`'s routing policy: one face's route from its size and what is loaded, decided in one
place (`srfer.infer.routing.Routing`), with its values read by the CLI's help."""

from __future__ import annotations

import dataclasses

import pytest

from srfer.core.weights import Weights
from srfer.infer.routing import ROUTING, Available, PerHead, Routing

EVERYTHING = Available(x8=True, tiny_expression=True, identity_sr=False, aligned_embedder=True)
HR, TINY, BOTH = (Weights.FER,), (Weights.FER_UPSCALE,), (Weights.FER, Weights.FER_UPSCALE)
ROUTES = Routing(sr_below=64, x8_below=PerHead(expression=29, identity=14), tiny_up_to=22)


@pytest.mark.parametrize(
    ("px", "expression_sr", "model", "identity_sr"),
    [
        (10, Weights.SR_X8, TINY, Weights.SR_X8),
        (13, Weights.SR_X8, TINY, Weights.SR_X8),
        (14, Weights.SR_X8, TINY, Weights.SR),  # the embedder's ×8 ends at 14 px
        (22, Weights.SR_X8, TINY, Weights.SR),  # the tiny path alone ends at 22 px, inclusive
        (23, Weights.SR_X8, BOTH, Weights.SR),  # then both classifiers answer a sharp face
        (29, Weights.SR, BOTH, Weights.SR),  # the expression head's ×8 ends at 29 px
        (40, Weights.SR, BOTH, Weights.SR),
        (41, Weights.SR, HR, Weights.SR),
        (63, Weights.SR, HR, Weights.SR),
        (64, None, HR, None),  # no SR from 64 px
    ],
)
def test_a_face_is_routed_by_its_size(px: int, expression_sr, model, identity_sr) -> None:
    route = ROUTES.route(px, "auto", EVERYTHING)
    assert (route.expression_sr, route.expression_models, route.identity_sr) == (
        expression_sr,
        model,
        identity_sr,
    )
    assert route.sr is (expression_sr is not None)


def test_what_is_not_loaded_is_not_routed_to() -> None:
    bare = Available(x8=False, tiny_expression=False, aligned_embedder=True)
    for px in (10, 30):
        route = ROUTES.route(px, "auto", bare)
        assert (route.expression_sr, route.expression_models, route.identity_sr) == (
            Weights.SR,
            HR,
            Weights.SR,
        )


def test_the_identity_aware_sr_serves_the_embedder_at_every_size() -> None:
    have = dataclasses.replace(EVERYTHING, identity_sr=True)
    for px in (10, 20, 40):
        assert ROUTES.route(px, "auto", have).identity_sr is Weights.SR_IDENTITY
    assert ROUTES.route(80, "auto", have).identity_sr is None


def test_a_centre_crop_embedder_sees_the_expression_heads_face() -> None:
    have = dataclasses.replace(EVERYTHING, aligned_embedder=False)
    for px in (10, 20, 40):
        route = ROUTES.route(px, "auto", have)
        assert route.identity_sr is route.expression_sr


def test_sr_modes() -> None:
    assert ROUTES.route(200, "always", EVERYTHING).expression_sr is Weights.SR
    never = ROUTES.route(10, "never", EVERYTHING)
    assert never.sr is False and never.expression_sr is None and never.identity_sr is None


def test_the_help_prints_the_routing_values() -> None:
    from srfer.infer.options import PredictOptions

    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(PredictOptions)}
    assert f"{ROUTING.sr_below} px" in helps["sr"] and f"{ROUTING.x8_below.expression} px" in helps["sr"]
    assert (
        f"{ROUTING.x8_below.identity} px" in helps["sr"]
        and f"≤ {ROUTING.tiny_up_to} px" in helps["tiny_expression"]
        and f"≤ {ROUTING.soft_up_to} px" in helps["tiny_expression"]
        and f"≤ {ROUTING.both_up_to} px" in helps["tiny_expression"]
    )


def test_routing_travels_to_worker_processes() -> None:
    import pickle

    assert pickle.loads(pickle.dumps(ROUTING)) == ROUTING


@pytest.mark.parametrize(
    ("px", "detail", "models"),
    [
        (23, None, BOTH),  # not measured: routed by size
        (23, ROUTING.soft_detail_below - 1, TINY),  # soft: the path trained on degraded faces
        (23, ROUTING.soft_detail_below + 1, BOTH),  # sharp: both classifiers, averaged
        (ROUTING.soft_up_to, 0.0, TINY),
        (ROUTING.both_up_to, 99.0, BOTH),
        (max(ROUTING.soft_up_to, ROUTING.both_up_to) + 1, 0.0, HR),  # larger faces: the HR classifier
    ],
)
def test_a_soft_face_takes_the_tiny_face_path(px: int, detail: float | None, models) -> None:
    assert ROUTING.route(px, "auto", EVERYTHING, detail).expression_models == models


def test_the_json_names_who_answered() -> None:
    assert ROUTING.route(30, "auto", EVERYTHING, 99.0).expression_model == "fer+fer-upscale"
    assert ROUTING.route(12, "auto", EVERYTHING).expression_model == "fer-upscale"
    assert ROUTING.route(80, "auto", EVERYTHING).expression_model == "fer"


def test_a_soft_face_reaches_the_embedder_without_sr() -> None:
    for px in (10, 20, 40):
        assert ROUTING.route(px, "auto", EVERYTHING, 0.0).identity_sr is None
        assert ROUTING.route(px, "auto", EVERYTHING, 99.0).identity_sr is not None
    with_identity_sr = dataclasses.replace(EVERYTHING, identity_sr=True)
    assert ROUTING.route(20, "auto", with_identity_sr, 0.0).identity_sr is None


def test_the_feature_sr_takes_the_embedders_small_sharp_faces() -> None:
    have = dataclasses.replace(EVERYTHING, feature_sr=True)
    below = ROUTING.feature_sr_below

    def identity(px: int, detail: float) -> Weights | None:
        return ROUTING.route(px, "auto", have, detail).identity_sr

    for px in (10, 13, below - 1):  # the ×8's faces too; soft ones stay without SR
        assert identity(px, 99.0) is Weights.FEATURE_SR and identity(px, 0.0) is None
    assert identity(below, 99.0) is Weights.SR and identity(below, 0.0) is None  # as without it
    assert ROUTING.route(below - 1, "never", have).identity_sr is None  # no SR: none at all
    with_identity_sr = dataclasses.replace(have, identity_sr=True)
    assert ROUTING.route(below - 1, "auto", with_identity_sr, 99.0).identity_sr is Weights.FEATURE_SR
    assert (
        ROUTING.route(below - 1, "auto", have, 99.0).expression_sr is Weights.SR_X8
    )  # expression: unchanged


def test_detail_is_measured_only_where_it_decides() -> None:
    def wanted(have: Available, mode: str = "auto") -> list[int]:
        return [px for px in range(8, 80) if ROUTING.needs_detail(px, mode, have)]

    no_embedder = dataclasses.replace(EVERYTHING, aligned_embedder=False)
    assert wanted(no_embedder) == list(range(ROUTING.tiny_up_to + 1, ROUTING.soft_up_to + 1))
    assert wanted(EVERYTHING) == list(range(8, ROUTING.sr_below))  # the embedder's SR depends on it
    assert wanted(dataclasses.replace(no_embedder, tiny_expression=False)) == []
    assert wanted(EVERYTHING, "never") == []


def test_the_routing_page_states_todays_values() -> None:
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "routing.md"
    rows = {
        cells[1].strip(): cells[-2].strip()
        for cells in (line.split("|") for line in page.read_text().splitlines() if line.startswith("| `"))
    }
    x8 = ROUTING.x8_below
    assert rows["`work_size`"] == f"{ROUTING.work_size} px"
    assert rows["`sr_below`"].startswith(f"{ROUTING.sr_below} px")
    assert rows["`x8_below.expression`"] == f"{x8.expression} px"
    assert rows["`x8_below.identity`"] == f"{x8.identity} px"
    assert rows["`tiny_up_to`"] == f"{ROUTING.tiny_up_to} px"
    soft = f"{ROUTING.soft_up_to} px, {ROUTING.soft_detail_below:g}"
    assert rows["`soft_up_to`, `soft_detail_below`"] == soft
    assert rows["`head_below`"] == f"{ROUTING.head_below} px"
    assert rows["`both_up_to`"] == f"{ROUTING.both_up_to} px"
    assert rows["`tiny_input_up_to`"] == f"{ROUTING.tiny_input_up_to} px"
    assert rows["`feature_sr_below`"] == f"{ROUTING.feature_sr_below} px"


def test_the_readme_states_todays_routing_values() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    stated = [
        f"super-resolved (faces under {ROUTING.sr_below} px)",
        f"the ×8 (faces under {ROUTING.x8_below.expression} px)",
        f"tiny-face path: faces ≤ {ROUTING.tiny_up_to} px, soft faces ≤ {ROUTING.soft_up_to} px",
        f"both, averaged: sharp faces of {ROUTING.tiny_up_to + 1}–{ROUTING.both_up_to} px",
        f"`feature-sr` (sharp faces under {ROUTING.feature_sr_below} px:",
    ]
    assert [s for s in stated if s not in readme] == []


def test_the_tiny_face_path_takes_larger_faces_resized_down_and_one_batch_per_size() -> None:
    """`TinyFaceExpression`: crops up to `tiny_input_up_to` px at their own pixels, larger ones
    resized down to it; crops of one size go through the SR together, answers in crop order."""
    import torch

    from srfer.infer.heads import TinyFaceExpression

    seen: list[tuple[int, ...]] = []

    def restore(batch: torch.Tensor) -> torch.Tensor:  # a ×4 "SR" that remembers its batches
        seen.append(tuple(batch.shape))
        return batch.repeat_interleave(4, -1).repeat_interleave(4, -2)

    class Classifier:  # answers each face's mean brightness, so the order can be checked
        contract, device = {"input_size": 48}, torch.device("cpu")

        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1)

    cap = ROUTING.tiny_input_up_to
    crops = [torch.full((3, s, s), v) for s, v in ((16, 0.1), (cap + 8, 0.5), (16, 0.9))]
    probs = TinyFaceExpression(Classifier(), restore, cap)(crops)
    assert sorted(seen) == [(1, 1, cap, cap), (2, 1, 16, 16)]
    assert probs[:, 0].argsort().tolist() == [0, 1, 2]  # the darkest face first, as given
