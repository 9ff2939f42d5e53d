"""The learned verification head: its features, the route its training faces take, the embedding
banks it learns from, and train-verify-head → eval-embed --head → verify end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import tiny_checkpoints
from typer.testing import CliRunner

from srfer.cli import app
from srfer.core.errors import SrferError
from srfer.core.weights import Weights
from srfer.data.degradations import bicubic_resize
from srfer.eval.bank import Probe, banks, probes
from srfer.infer.heads import IdentityRouteRestorer
from srfer.infer.load import load_embedder, load_feature_sr, load_generator
from srfer.infer.routing import ROUTING
from srfer.infer.run import inference_context
from srfer.models.verify_head import VerifyHead, VerifyHeadConfig, hats

runner = CliRunner()
CPU = torch.device("cpu")


def test_the_head_is_symmetric_and_sees_both_sizes() -> None:
    torch.manual_seed(0)
    head = VerifyHead(VerifyHeadConfig(dim=8, hidden=4, per_dim=True))
    f1, f2 = (torch.nn.functional.normalize(torch.randn(5, 8), dim=1) for _ in range(2))
    small, full = torch.full((5,), 16), torch.full((5,), 128)
    assert head.pair_features(f1, f2, small, full).shape == (5, head.config.features)
    assert torch.allclose(head(f1, f2, small, full), head(f2, f1, full, small))
    assert not torch.allclose(head(f1, f2, small, full), head(f1, f2, full, full))
    encoded = hats(torch.tensor([500, 128, 64, 32, 12, 4]), (128, 32, 16))
    assert encoded.tolist()[:2] == [[1.0, 0.0, 0.0]] * 2 and encoded.tolist()[-1] == [0.0, 0.0, 1.0]
    assert torch.allclose(encoded[2], torch.tensor([0.5, 0.5, 0.0])) and torch.allclose(
        encoded.sum(1), torch.ones(6)
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return tiny_checkpoints(tmp_path_factory.mktemp("tiny"))


def test_chips_are_restored_as_predict_routes_them(tiny: dict) -> None:
    """Sharp small chips through the ×4 (the ×8 under its size), soft ones and large ones bicubic."""
    generators = {
        Weights.SR: load_generator(tiny["sr"], CPU),
        Weights.SR_X8: load_generator(tiny["sr_x8"], CPU),
    }
    restore = IdentityRouteRestorer(generators)
    sharp = torch.rand(1, 3, 24, 24)  # noise: all detail
    soft = torch.full((1, 3, 24, 24), 0.5)  # flat: no detail
    assert restore.routes(torch.cat([sharp, soft])) == [Weights.SR, None]
    assert restore.routes(torch.rand(1, 3, 12, 12)) == [Weights.SR_X8]
    assert restore.routes(torch.rand(1, 3, 64, 64)) == [None]
    assert restore(torch.cat([sharp, soft])).shape == (2, 3, 128, 128)


def test_the_route_embeds_the_faces_it_sends_to_the_feature_sr_through_it(tiny: dict) -> None:
    embedder = load_embedder(tiny["embed_aligned"], CPU)
    feature_sr = load_feature_sr(embedder, tiny["feature_sr"], CPU)
    generators = {Weights.SR: load_generator(tiny["sr"], CPU)}
    route, pixels_only = IdentityRouteRestorer(generators, feature_sr), IdentityRouteRestorer(generators)
    small, large = (
        torch.rand(2, 3, 12, 12),
        torch.rand(1, 3, ROUTING.feature_sr_below, ROUTING.feature_sr_below),
    )
    assert route.routes(small) == [Weights.FEATURE_SR] * 2 and route.routes(large) == [Weights.SR]
    assert route.routes(torch.full((1, 3, 12, 12), 0.5)) == [None]  # a soft face: no SR
    # banks of sizes it cannot serve are made (and found) as without it; another rule, anew
    assert "feature-sr" in route.describe(12) and route.describe(large.shape[-1]) == pixels_only.describe(
        large.shape[-1]
    )
    moved = dataclasses.replace(ROUTING, feature_sr_below=12)
    assert IdentityRouteRestorer(generators, feature_sr, moved).describe(12) == pixels_only.describe(12)
    softer = dataclasses.replace(ROUTING, soft_detail_below=ROUTING.soft_detail_below + 1)
    assert IdentityRouteRestorer(generators, feature_sr, softer).describe(12) != route.describe(12)
    ctx, size = inference_context(CPU), embedder.contract["crop_size"]
    pixels = bicubic_resize(route(small), size)  # resized bicubically, no pixel SR
    assert torch.equal(pixels, bicubic_resize(bicubic_resize(small, 128), size))
    with torch.no_grad():
        through, plain = feature_sr(pixels), embedder(pixels)
        sr_faces = embedder(bicubic_resize(pixels_only(small), size))  # without it: the ×4
    assert torch.allclose(route.embed(embedder, small, size, ctx), through, atol=1e-5)
    assert torch.allclose(pixels_only.embed(embedder, small, size, ctx), sr_faces, atol=1e-5)
    assert not torch.allclose(through, plain, atol=1e-3)


def test_banks_are_reused_when_made_the_same_way(tiny: dict, tmp_path: Path) -> None:
    from srfer.infer.run import Restorer

    embedder = load_embedder(tiny["embed"], CPU)
    made: list[int] = []

    class Faces(torch.utils.data.Dataset):
        labels = torch.tensor([0, 0, 1, 1])

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict:
            return {
                "image": torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)),
                "label": i // 2,
            }

    def faces() -> Faces:
        made.append(1)
        return Faces()

    paths = [Path(f"{i}.png") for i in range(4)]
    ctx, wanted = inference_context(CPU), probes([16], ["clean"])
    first = banks(tmp_path, "val", embedder, paths, faces, wanted, Restorer(), ctx)
    again = banks(tmp_path, "val", embedder, paths, faces, wanted, Restorer(), ctx)
    assert made == [1] and all(torch.equal(first.embeddings[p], again.embeddings[p]) for p in wanted)
    assert set(first.embeddings) == {Probe(None), Probe(16, "clean")} and first.labels.tolist() == [
        0,
        0,
        1,
        1,
    ]
    (tmp_path / "val_16px_clean.safetensors").write_bytes(b"not a bank")  # damaged: made again
    banks(tmp_path, "val", embedder, paths[::-1], faces, wanted, Restorer(), ctx)  # other faces: made again
    assert made == [1, 1]


@pytest.mark.slow
def test_train_the_head_then_sweep_and_verify_with_it(ten_people: Path, tiny: dict, tmp_path: Path) -> None:
    out = tmp_path / "head"
    embed = str(tiny["embed"])
    train = ["train-verify-head", "--data", str(ten_people), "--out", str(out), "--embed-weights", embed,
             "--sizes", "16", "--degradation", "clean", "--pairs", "60", "--val-pairs", "20", "--epochs", "2",
             "--epoch-size", "256", "--batch-size", "64", "--device", "cpu", "--json"]  # fmt: skip
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"val_accuracy", "val_head_full|16px_clean", "val_tau_16px_clean|16px_clean"} <= set(history[-1])
    head = out / "best.safetensors"
    data = str(ten_people)
    sweep = ["eval-embed", "--data", data, "--weights", embed, "--sweep", "128,16", "--degradation",
             "clean", "--n-pairs", "20", "--banks", str(out / "banks"), "--device", "cpu"]  # fmt: skip
    result = runner.invoke(
        app, [*sweep, "--head", "learned", "--head-weights", str(head), "--enrol", "full", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["accuracy"]) == {"τ 0.5", "τ 10-fold", "head"} and report["head_weights"] == str(head)
    assert all(len(v) == 2 for v in report["tar_at_far_1e3"].values())
    assert "first face at full size" in report["notes"][0] and "sr-x8" in report["notes"][0]
    no_x8 = runner.invoke(app, [*sweep, "--head", "tau", "--x8-weights", "none", "--json"])
    assert no_x8.exit_code == 0, no_x8.output
    assert "sr-x8" not in json.loads(no_x8.stdout)["notes"][0]  # the route without the ×8, as asked
    (tmp_path / "other").mkdir()
    other = tiny_checkpoints(tmp_path / "other")
    foreign = runner.invoke(app, [*sweep[:4], str(other["embed_aligned"]), *sweep[5:], "--head", "learned",
                                  "--head-weights", str(head)])  # fmt: skip
    assert foreign.exit_code == 1 and "another embedder" in foreign.output
    no_sweep = runner.invoke(app, ["eval-embed", "--data", str(ten_people), "--head", "learned"])
    assert no_sweep.exit_code == 1 and "--sweep" in no_sweep.output

    import srfer
    from srfer.infer.options import PredictWeights

    large = sorted(ten_people.glob("person0/*.png"))[:2]  # 40 px: too large for the head to decide
    faces = [tmp_path / f"small{i}.png" for i in range(2)]
    for path, source in zip(faces, large, strict=True):
        Image.open(source).resize((20, 20)).save(path)
    given = {"weights": PredictWeights(embed_weights=tiny["embed"]), "device": "cpu", "detect": False}
    learned = srfer.verify(*faces, head="learned", head_weights=head, **given)
    assert learned.decided_by == "head" and 0 <= learned.probability <= 1
    assert learned.same == (learned.probability > 0.5)
    assert srfer.verify(large[0], faces[1], head="learned", head_weights=head, **given).decided_by == "head"
    assert srfer.verify(*large, head="learned", head_weights=head, **given).decided_by == "tau"
    by_tau = srfer.verify(*faces, head="learned", head_weights=head, threshold=0.5, **given)
    assert by_tau.decided_by == "tau" and by_tau.probability is None
    with pytest.raises(SrferError, match="--head 'maybe'"):
        srfer.verify(*faces, head="maybe", **given)
    cli = runner.invoke(app, ["verify", *map(str, faces), "--weights", str(tiny["embed"]), "--head-weights",
                              str(head), "--no-detect", "--device", "cpu", "--json"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["decided_by"] == "head"
