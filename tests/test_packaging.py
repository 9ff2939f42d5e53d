"""A non-editable install carries the code and the shipped weights (srfer.default_weights)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_every_module_and_the_default_weights(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    names = set(zipfile.ZipFile(next(tmp_path.glob("srfer-*.whl"))).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "srfer").rglob("*.py")}
    assert modules <= names, f"missing from the wheel (pyproject packages list?): {sorted(modules - names)}"
    shipped = {f"srfer/default_weights/{p.name}" for p in (ROOT / "weights").iterdir() if p.is_file()}
    assert "srfer/default_weights/manifest.json" in shipped and shipped <= names
