"""Options are declared once (srfer.train.args) and the CLI is generated from them; backbones
are registered once (srfer.models) and `--arch`/`--backbone` are generated from that."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from srfer.cli import app
from srfer.models.embedder import EMBEDDER_BACKBONES, Embedder, EmbedderConfig
from srfer.models.fer import FER_BACKBONES, MCNN, FerConfig, build_fer
from srfer.models.registry import Registry
from srfer.train.args import EmbedTrainArgs, FerTrainArgs, SRTrainArgs

COMMANDS = {"train-sr": SRTrainArgs, "train-fer": FerTrainArgs, "train-embed": EmbedTrainArgs}


def click_command(name: str):
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def cli_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_training_commands_are_their_dataclass(name: str) -> None:
    """Each field is one option with the field's default and help; nothing else but --json."""
    params = {p.name: p for p in click_command(name).params}
    fields = cli_fields(COMMANDS[name])
    assert set(params) == set(fields) | {"as_json"}
    for field_name, field in fields.items():
        param = params[field_name]
        assert field.metadata["help"], f"{name} --{field_name} has no help"
        if field.default is dataclasses.MISSING:
            assert param.required, field_name
        else:
            default = param.default
            expected = str(field.default) if isinstance(field.default, Path) else field.default
            assert (str(default) if isinstance(default, Path) else default) == expected, field_name


def test_stage_defaults_live_in_one_place() -> None:
    assert FerTrainArgs.__dataclass_fields__["epochs"].default == 300
    assert "300" in CliRunner().invoke(app, ["train-fer", "--help"], env={"COLUMNS": "200"}).output
    assert "batch_size" not in {p.name for p in click_command("train-embed").params}  # P × K instead


def test_a_name_that_matches_no_field_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'epochz'"):
        FerTrainArgs(data=tmp_path, out=tmp_path, epochz=3)


def test_arch_and_backbone_help_come_from_the_registries() -> None:
    out = CliRunner().invoke(app, ["train-fer", "--help"], env={"COLUMNS": "400"}).output
    assert all(name in out for name in FER_BACKBONES.names())
    out = CliRunner().invoke(app, ["train-embed", "--help"], env={"COLUMNS": "400"}).output
    assert all(name in out for name in EMBEDDER_BACKBONES.names())


def test_adding_a_backbone_is_one_registered_function(monkeypatch) -> None:
    monkeypatch.setattr(FER_BACKBONES, "_entries", dict(FER_BACKBONES._entries))

    @FER_BACKBONES.register("mcnn-narrow", "test only")
    def narrow(config: FerConfig):
        return MCNN(dataclasses.replace(config, width=4, fused=8))

    model = build_fer(FerConfig(arch="mcnn-narrow"))
    assert isinstance(model, MCNN) and model.config.width == 4
    with pytest.raises(ValueError, match="registered twice"):
        FER_BACKBONES.register("mcnn-narrow", "again")(narrow)


def test_registry_errors_name_the_choices() -> None:
    registry = Registry("widget")
    registry.register("a", "the first")(lambda: 1)
    with pytest.raises(ValueError, match="unknown widget 'b'; use one of a"):
        registry.build("b")
    assert registry.build("a") == 1 and registry.describe() == "a: the first"


def test_embedder_backbone_facts_come_from_its_entry() -> None:
    config = EmbedderConfig(backbone="inception-resnet-v1", dim=128, input_size=64)
    assert (config.dim, config.input_size) == (512, 75)
    assert Embedder(EmbedderConfig(dim=16, widths=(4, 8, 8, 8), input_size=32)).config.dim == 16


def test_building_the_cli_imports_no_torch() -> None:
    """`srfer --help` and light commands start in a fraction of a second: the registries (and
    torch) are imported only when a training command's help or run needs them."""
    code = (
        "import sys, typer; from srfer.cli import app; typer.main.get_command(app); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
