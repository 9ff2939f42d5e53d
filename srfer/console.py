"""Where diagnostics go: stderr via rich, so stdout stays clean for tables and --json."""

from __future__ import annotations

from rich.console import Console

err_console = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


def info(message: str) -> None:
    err_console.print(message, soft_wrap=True)
