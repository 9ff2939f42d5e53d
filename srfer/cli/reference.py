"""docs/cli.md, written from the Typer app itself (`tools/cli_docs.py`; a test keeps the file in
step), so the reference cannot drift from the commands."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperOption

from srfer.cli.common import app

HEADER = """# Command reference

Every `srfer` command and option, generated from the CLI itself (`python tools/cli_docs.py`;
a test keeps this file in step). `srfer COMMAND --help` prints the same in the terminal;
`docs/guide.md` explains what the commands do in more words.
"""


def markdown() -> str:
    root = typer.main.get_command(app)
    sections = [HEADER, _command("srfer", root, top=True)]
    sections += [_command(f"srfer {name}", cmd) for name, cmd in _commands(root)]
    return "\n".join(sections)


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        out.append((f"{prefix}{name}", cmd))
        out += _commands(cmd, f"{prefix}{name} ")
    return out


def _command(title: str, cmd: Any, top: bool = False) -> str:
    doc = " ".join((cmd.help or "").split())
    params = [p for p in cmd.params if p.name != "help"]
    arguments = [p for p in params if isinstance(p, TyperArgument)]
    usage = " ".join(
        [title, "[OPTIONS]" if len(params) > len(arguments) else "", *(_argument(a) for a in arguments)]
    )
    lines = [f"{'#' if top else '##'} `{title}`", "", doc, "", f"    {' '.join(usage.split())}", ""]
    rows = [_row(p) for p in params if isinstance(p, TyperOption)]
    if rows:
        lines += ["| option | default | |", "| --- | --- | --- |", *rows, ""]
    return "\n".join(lines)


def _argument(arg: TyperArgument) -> str:
    name = (arg.name or "").upper()
    return f"{name}..." if arg.nargs == -1 else name


def _row(opt: TyperOption) -> str:
    flags = " / ".join(f"`{f}`" for f in [*opt.opts, *opt.secondary_opts])
    default = "" if opt.required else _default(opt)
    help_text = " ".join((opt.help or "").replace("\\[", "[").split()).replace("|", "\\|")
    return f"| {flags} | {'required' if opt.required else default} | {help_text} |"


def _default(opt: TyperOption) -> str:
    value = opt.default
    if value is None or value in ((), "") or callable(value):
        return ""
    if isinstance(value, bool):
        on = opt.opts[0] if value else (opt.secondary_opts or ["off"])[0]
        return f"`{on}`" if opt.is_flag and opt.secondary_opts else ("on" if value else "")
    return f"`{value}`"
