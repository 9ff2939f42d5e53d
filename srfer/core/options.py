"""Options declared once: a dataclass field carries its default, help text and bounds, and the
CLI is generated from the dataclass (`srfer.cli.common.options_of`). A recipe reads the same
dataclass, so a default is written in one place and a CLI name that matches no field cannot
exist (the dataclass constructor refuses unknown names)."""

from __future__ import annotations

import dataclasses
from typing import Any

REQUIRED: Any = dataclasses.MISSING


def option(
    default: Any = REQUIRED,
    help: str = "",
    *,
    flags: tuple[str, ...] = (),
    min: float | None = None,
    max: float | None = None,
    choices: str | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field that is also a command-line option.

    `flags`: explicit option names (default: --field-name, and --x/--no-x for booleans);
    `choices`: "module:REGISTRY" whose names the help lists; `cli=False`: not an option."""
    meta = {"help": help, "flags": flags, "min": min, "max": max, "choices": choices, "cli": cli}
    return dataclasses.field(default=default, metadata=meta)
