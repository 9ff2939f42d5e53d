"""Tiny synthetic faces and models, so tests never need ../shared/data or a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import identity_folders, synthetic_face

from srfer.data.fer import EMOTIONS
from srfer.models import GeneratorConfig

torch.set_num_threads(2)


@pytest.fixture
def face_folder(tmp_path: Path) -> Path:
    """24 synthetic 40×48 faces in a plain (nested) folder."""
    root = tmp_path / "faces"
    for i in range(24):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        synthetic_face((40, 48), i).save(sub / f"face_{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def fer_root(tmp_path_factory) -> Path:
    """FER2013 folders, 3 train and 2 val images per emotion; each class a distinct
    brightness so it is learnable."""
    root = tmp_path_factory.mktemp("fer")
    for split, n in (("train", 3), ("val", 2)):
        for label, name in enumerate(EMOTIONS):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                value = 20 + 30 * label + i
                Image.fromarray(np.full((48, 48), value, np.uint8), "L").save(
                    root / split / name / f"{i}.png"
                )
    return root


@pytest.fixture(scope="session")
def ten_people(tmp_path_factory) -> Path:
    """10 identity folders × 3 synthetic 40 px faces (LFW layout)."""
    return identity_folders(tmp_path_factory.mktemp("ten_people"), 10)


@pytest.fixture
def tiny_gen() -> GeneratorConfig:
    return GeneratorConfig(channels=3, features=8, blocks=1, scale=4)
