"""`srfer pipeline train --profile smoke` on a tiny synthetic data root: every stage in order,
resumable, ending with the evaluation numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import synthetic_face
from typer.testing import CliRunner

from srfer.cli import app
from srfer.data.fer import EMOTIONS

runner = CliRunner()


def make_data_root(root: Path) -> Path:
    """celeba/ (12 people × 3 images: 9 train, 3 val) and fer2013/ (train|val/<emotion>/)."""
    celeba = root / "celeba"
    (celeba / "img_align_celeba").mkdir(parents=True)
    ids, parts = [], []
    for person in range(12):
        for i in range(3):
            name = f"{person * 3 + i + 1:06d}.jpg"
            synthetic_face((178, 218), person * 10 + i).save(celeba / "img_align_celeba" / name)
            ids.append(f"{name} {person + 1}")
            parts.append(f"{name} {0 if person < 9 else 1}")
    (celeba / "identity_CelebA.txt").write_text("\n".join(ids) + "\n")
    (celeba / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    for split in ("train", "val"):
        for label, emotion in enumerate(EMOTIONS):
            (root / "fer2013" / split / emotion).mkdir(parents=True)
            for i in range(2):
                pixels = np.full((48, 48), 20 + 30 * label + i, np.uint8)
                Image.fromarray(pixels, "L").save(root / "fer2013" / split / emotion / f"{i}.png")
    return root


@pytest.mark.slow
def test_smoke_pipeline_trains_every_stage_then_resumes(tmp_path: Path) -> None:
    root, runs = make_data_root(tmp_path / "data"), tmp_path / "runs"
    args = ["pipeline", "train", "--data-root", str(root), "--runs", str(runs), "--profile", "smoke",
            "--device", "cpu", "--json"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert list(report["stages"]) == ["sr_celeba_x4", "sr_fer2013_x4", "fer_mcnn_upscale", "embed_celeba",
                                      "sr_celeba_x4_identity"]  # fmt: skip
    assert all((runs / name / "best.safetensors").is_file() for name in report["stages"])
    assert 0 <= report["evaluation"]["fer_accuracy_12px_sr"] <= 1
    assert 0 <= report["evaluation"]["verification_accuracy_32px_identity_sr"] <= 1
    again = runner.invoke(app, [*args, "--no-evaluate"])  # finished stages resume and return at once
    assert again.exit_code == 0, again.output
    assert (
        "resuming" in again.stderr and json.loads(again.stdout)["stages"]["embed_celeba"]["epochs_run"] == 1
    )


def test_missing_data_root_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pipeline", "train", "--data-root", str(tmp_path), "--profile", "smoke"])
    assert result.exit_code == 1 and "celeba" in result.stderr and "Traceback" not in result.output
