"""Where diagnostics go: stderr via rich, so stdout stays clean for tables and --json."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True, highlight=False)


def labelled(label: str, message: object, style: str = "yellow") -> None:
    """'label: message' on stderr. The message is printed as it is: a path or a data
    description with [brackets] must not be read as rich markup."""
    err_console.print(f"[{style}]{label}:[/{style}] {escape(str(message))}", soft_wrap=True)


def warn(message: str) -> None:
    labelled("warning", message)


def info(message: str) -> None:
    err_console.print(message, soft_wrap=True)
