"""The README's examples run as written and print what they say they print: its shell quick
start (each `srfer` line, in a copy of the example images) and its Python quick start (each
`print` prints its trailing comment)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srfer.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
pytestmark = pytest.mark.slow  # the shipped networks


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.fixture
def in_a_copy(tmp_path: Path, monkeypatch) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_stays_short() -> None:
    assert len(README.splitlines()) <= 200


def test_the_shell_quick_start_runs(in_a_copy: Path) -> None:
    quick_start = next(b for b in blocks("bash") if "srfer predict" in b)
    commands = [line.split("#")[0].strip() for line in quick_start.splitlines() if line.startswith("srfer ")]
    assert len(commands) >= 5
    for command in commands:
        words = shlex.split(command.split(">")[0])[1:]  # `> faces.jsonl` is the shell's, not srfer's
        result = CliRunner().invoke(app, words)
        assert result.exit_code == 0, (command, result.output)
    assert (in_a_copy / "enhanced" / "astronaut_small.png").is_file() and (in_a_copy / "out").is_dir()


def test_the_python_quick_start_prints_what_it_says(in_a_copy: Path) -> None:
    (code,) = blocks("python")
    expected = [
        line.split("#")[-1].strip() for line in code.splitlines() if line.lstrip().startswith("print(")
    ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().splitlines() == expected
    assert (in_a_copy / "staff.sqlite").is_file()
