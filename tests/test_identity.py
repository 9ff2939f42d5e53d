"""Identity stage end to end on tiny synthetic identities: train, verify, enroll, identify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import identity_folders
from typer.testing import CliRunner

from srfer.cli import app
from srfer.core.checkpoint import save_checkpoint
from srfer.core.errors import SrferError
from srfer.data.identity import discover_identities, generate_pairs, read_lfw_pairs
from srfer.models import Generator, GeneratorConfig

runner = CliRunner()
TINY = "--size 32 --dim 16 --p 3 --k 2 --epochs 1 --workers 0 --device cpu".split()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    """8 identities × 3 images (one identity has a single image)."""
    return identity_folders(tmp_path_factory.mktemp("people"), 8, single_last=True)


@pytest.fixture(scope="module")
def trained(people: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("embed") / "run"
    result = run("train-embed", "--data", str(people), "--out", str(out), *TINY, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["monitor"] == "val_accuracy"
    return out / "best.safetensors"


def test_facenet_weights_and_init_are_refused_together(people: Path, trained: Path, tmp_path: Path) -> None:
    result = run("train-embed", "--data", str(people), "--out", str(tmp_path / "r"), *TINY,
                 "--backbone-weights", str(tmp_path / "vggface2.pt"), "--init", str(trained))  # fmt: skip
    assert result.exit_code == 1 and "both choose the starting weights" in result.output
    assert "Traceback" not in result.output


def test_identity_splits_are_disjoint(people: Path) -> None:
    train, val = discover_identities(people, "train"), discover_identities(people, "val")
    assert not set(train.names) & set(val.names) and len(train.names) + len(val.names) == 8
    everyone = discover_identities(people, "all")
    assert everyone.singletons == 1 and "one image" in everyone.notes[0]


def test_pairs_generated_and_read(people: Path, tmp_path: Path) -> None:
    source = discover_identities(people, "all")
    pairs = generate_pairs(source.labels, 20, seed=0)
    assert sum(p[2] for p in pairs) == 10 and len(set(pairs)) == 20
    few = generate_pairs([0, 0, 1], 100)  # only 1 genuine pair exists: 1 + 1, not a hang
    assert sorted(p[2] for p in few) == [False, True]
    assert all((source.labels[a] == source.labels[b]) == same for a, b, same in pairs)
    (tmp_path / "pairs.txt").write_text("1 2\nperson0 1 2\nperson1 1 person2 3\n")
    assert [p[2] for p in read_lfw_pairs(tmp_path / "pairs.txt", source)] == [True, False]
    (tmp_path / "bad.txt").write_text("1 1\nperson0 1 9\n")
    with pytest.raises(SrferError, match="line 2"):
        read_lfw_pairs(tmp_path / "bad.txt", source)


def test_bad_identity_data(tmp_path: Path) -> None:
    (tmp_path / "ids" / "empty_person").mkdir(parents=True)
    with pytest.raises(SrferError, match="without images"):
        discover_identities(tmp_path / "ids")
    with pytest.raises(SrferError, match="not found"):
        discover_identities(tmp_path / "missing")


@pytest.mark.slow
def test_eval_embed_json_and_sweep(people: Path, trained: Path, tmp_path: Path) -> None:
    result = run("eval-embed", "--data", str(people), "--weights", str(trained), "--n-pairs", "40", "--json",
                 "--save-dir", str(tmp_path), "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pairs"] == 40 and 0 <= report["accuracy"] <= 1 and len(report["fold_thresholds"]) == 10
    assert {"roc_auc", "eer", "tar_at_far_0.001", "tar_at_far_0.01"} <= set(report)
    gen = Generator(GeneratorConfig(features=4, blocks=1))
    sr = save_checkpoint(tmp_path / "sr.safetensors", "sr-generator", gen.config.to_dict(),
                         {f"model.{k}": v for k, v in gen.state_dict().items()})  # fmt: skip
    sweep_args = ["eval-embed", "--data", str(people), "--weights", str(trained), "--sr-weights", str(sr),
                  "--sweep", "32,16,8", "--n-pairs", "40", "--save-dir", str(tmp_path)]  # fmt: skip
    x8 = Generator(GeneratorConfig(features=4, blocks=1, scale=8))
    x8 = save_checkpoint(tmp_path / "x8.safetensors", "sr-generator", x8.config.to_dict(),
                         {f"model.{k}": v for k, v in x8.state_dict().items()})  # fmt: skip
    sweep = run(*sweep_args, "--identity-sr-weights", str(sr), "--x8-weights", str(x8), "--json")
    assert sweep.exit_code == 0, sweep.output
    report = json.loads(sweep.stdout)
    table = report["accuracy"]
    columns = {"bicubic", "sr", "identity_sr", "x8_sr"}
    assert set(table) == columns | {f"{c} (realistic)" for c in columns}
    assert all(len(v) == 3 for v in table.values())
    assert report["x8_sr_weights"] == str(x8)
    assert "no feature_sr column: the shipped feature SR was trained in another embedder" in report["notes"]
    assert (tmp_path / "sweep.png").is_file()
    missing = run(*sweep_args, "--identity-sr-weights", str(tmp_path / "none.safetensors"))
    assert missing.exit_code != 0 and "not found" in missing.output


def test_gallery_round_trip(people: Path, trained: Path, tmp_path: Path) -> None:
    gallery = str(tmp_path / "g.sqlite")
    w = ["--weights", str(trained), "--device", "cpu"]
    for person in ("person0", "person1"):
        result = run("enroll", person, str(people / person / f"{person}_0001.png"), "--gallery", gallery, *w)
        assert result.exit_code == 0, result.output
    probe = str(people / "person0" / "person0_0001.png")
    found = run("identify", probe, "--gallery", gallery, "--json", "--threshold", "1.0", *w)
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["identity"] == "person0"  # its own enrolled image: distance 0
    unknown = run("identify", probe, "--gallery", gallery, "--json", "--threshold", "-1", *w)
    assert json.loads(unknown.stdout)["identity"] == "unknown"
    listed = run("gallery", "list", "--gallery", gallery, "--json")
    assert json.loads(listed.stdout)["identities"] == {"person0": 1, "person1": 1}
    assert run("gallery", "remove", "person1", "--gallery", gallery).exit_code == 0
    missing = run("gallery", "remove", "person1", "--gallery", gallery)
    assert missing.exit_code == 1 and "no identity named" in missing.output


def test_gallery_refuses_another_model(people: Path, trained: Path, tmp_path: Path) -> None:
    gallery = str(tmp_path / "g.sqlite")
    image = str(people / "person0" / "person0_0001.png")
    assert run("enroll", "a", image, "--gallery", gallery, "--weights", str(trained)).exit_code == 0
    other = tmp_path / "other.safetensors"
    other.write_bytes(trained.read_bytes())
    ckpt_bytes = bytearray(other.read_bytes())
    ckpt_bytes[-1] ^= 1  # same model, different file → a different model id
    other.write_bytes(bytes(ckpt_bytes))
    refused = run("enroll", "b", image, "--gallery", gallery, "--weights", str(other))
    assert refused.exit_code == 1 and "'s embeddings, not" in refused.output
    assert "enrol the people again" in refused.output


def test_gallery_of_a_shipped_model_names_its_file(tmp_path: Path) -> None:
    from srfer.core.weights import Weights
    from srfer.faces.galleries import open_gallery

    dlib = Weights.EMBED_DLIB.entry
    with open_gallery(tmp_path / "g.sqlite", create=True) as gallery:
        gallery.add("a", torch.ones(1, 128), ["a.png"], dlib.sha256)
        with pytest.raises(SrferError, match=f"--embed-weights {dlib.file}"):
            gallery.check_model(Weights.EMBED.entry.sha256)


def test_identify_bad_inputs(people: Path, trained: Path, tmp_path: Path) -> None:
    missing = run("identify", str(people / "person0"), "--gallery", str(tmp_path / "none.sqlite"))
    assert missing.exit_code == 1 and "gallery not found" in missing.output
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    gallery = str(tmp_path / "g.sqlite")
    enrolled = run("enroll", "x", str(tmp_path / "broken.png"), str(people / "person2"), "--gallery", gallery,
                   "--weights", str(trained))  # fmt: skip
    assert enrolled.exit_code == 0 and "skipped" in enrolled.stderr and "3 embedding" in enrolled.stdout
    nothing = run(
        "enroll", "y", str(tmp_path / "broken.png"), "--gallery", gallery, "--weights", str(trained)
    )
    assert nothing.exit_code == 1 and "no usable face" in nothing.output
    Image.new("RGB", (8, 8)).save(tmp_path / "small.png")  # tiny crops are scaled up, not refused
    assert run("identify", str(tmp_path / "small.png"), "--gallery", gallery, "--weights", str(trained),
               "--threshold", "4").exit_code == 0  # fmt: skip


def test_embeddings_are_unit_norm(trained: Path) -> None:
    from srfer.infer.load import load_embedder

    model = load_embedder(trained, torch.device("cpu"))
    assert torch.allclose(model(torch.rand(3, 3, 32, 32)).norm(dim=1), torch.ones(3), atol=1e-5)


def test_embedder_checkpoint_serves_as_perceptual_backbone(trained: Path) -> None:
    from srfer.train.losses import build_perceptual

    backbone = build_perceptual(f"ckpt:{trained}")
    maps = backbone(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert len(maps) == 4 and all(not p.requires_grad for p in backbone.parameters())


def test_export_stores_the_threshold_identify_uses(trained: Path, tmp_path: Path) -> None:
    from srfer.infer.load import embedder_threshold, load_embedder

    target = tmp_path / "embed.safetensors"
    assert run("export", str(trained), str(target), "--threshold", "0.75").exit_code == 0
    assert embedder_threshold(load_embedder(target, torch.device("cpu"))) == 0.75
    again = tmp_path / "again.safetensors"
    assert run("export", str(target), str(again)).exit_code == 0  # a stored τ survives re-export
    assert embedder_threshold(load_embedder(again, torch.device("cpu"))) == 0.75


def test_export_threshold_is_for_embedders_only(tmp_path: Path) -> None:
    gen = Generator(GeneratorConfig(features=4, blocks=1))
    sr = save_checkpoint(tmp_path / "sr.safetensors", "sr-generator", gen.config.to_dict(),
                         {f"model.{k}": v for k, v in gen.state_dict().items()})  # fmt: skip
    result = run("export", str(sr), str(tmp_path / "x.safetensors"), "--threshold", "1")
    assert result.exit_code == 1 and "face embedders" in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_identity_subset_keeps_whole_identities(people: Path) -> None:
    full = discover_identities(people, "all")
    subset = discover_identities(people, "all", subset=9)
    # 22 images of 8 people (2 per person on average): about 9 images is 4 whole people
    assert len(subset.names) == 4 and "subset of 4 identities" in subset.description
    counts = {n: full.labels.count(full.names.index(n)) for n in subset.names}
    assert len(subset.paths) == sum(counts.values())  # every image of each kept identity


@pytest.mark.slow
def test_fine_tuning_a_pretrained_recogniser_keeps_its_framing(people: Path, tmp_path: Path) -> None:
    """train-embed --init an aligning (dlib-resnet29) embedder: data aligned as its contract
    says, mixed sizes, distillation towards the frozen start; the result carries the contract."""
    from srfer.faces.align import DLIB_TEMPLATE
    from srfer.infer.load import embedder_aligner, load_embedder
    from srfer.models.embedder import Embedder, EmbedderConfig

    start = Embedder(EmbedderConfig(backbone="dlib-resnet29"))
    contract = {"crop_size": 32, "alignment": DLIB_TEMPLATE.to_json()}
    init = save_checkpoint(tmp_path / "dlib.safetensors", "face-embedder", start.config.to_dict(),
                           {f"model.{k}": v for k, v in start.state_dict().items()},
                           {"threshold": 0.5, "input": contract})  # fmt: skip
    out = tmp_path / "ft"
    args = ["train-embed", "--data", str(people), "--out", str(out), "--backbone", "dlib-resnet29",
            "--init", str(init), "--upscale", "--upscaler", "bicubic", "--lr-size", "16,32",
            "--distill-weight", "1", "--size", "32", "--p", "3", "--k", "2", "--epochs", "1",
            "--epoch-size", "6", "--workers", "0", "--device", "cpu", "--json"]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.output
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"val_accuracy_16px", "val_accuracy_32px"} <= set(history[-1])
    tuned = load_embedder(out / "best.safetensors", torch.device("cpu"))
    assert embedder_aligner(tuned).template.name == DLIB_TEMPLATE.name
    shipped = tmp_path / "shipped.safetensors"  # export keeps the input contract
    assert run("export", str(out / "best.safetensors"), str(shipped), "--threshold", "0.3").exit_code == 0
    assert embedder_aligner(load_embedder(shipped, torch.device("cpu"))).size == 32
    no_init = run(*[a for a in args if a not in (str(init), "--init")][:-1], "--out", str(tmp_path / "x"))
    assert no_init.exit_code == 1 and "--distill-weight needs --init" in no_init.output


def test_eval_embed_aligns_faces_for_an_aligning_embedder(people: Path, tmp_path: Path) -> None:
    """An embedder whose contract names a template sees aligned faces; the ones MTCNN finds
    no landmarks in (these 40 px drawings) are aligned by the fallback and counted."""
    from synthetic import tiny_checkpoints

    weights = tiny_checkpoints(tmp_path)["embed_aligned"]
    result = run("eval-embed", "--data", str(people), "--weights", str(weights), "--n-pairs", "40", "--json",
                 "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["alignment"]["fallback_centre_crop"] == report["images"] == 22
    assert report["input"] == "64px input" and "without landmarks" in result.stderr
