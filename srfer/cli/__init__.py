"""`srfer` command line: parsing and printing only; the work lives in the library.

One module per command family (SR, expression, identity, predict, admin); `common` holds
the app, the shared options and the one-line error policy. Importing a family registers
its commands on `app`."""

from __future__ import annotations

from srfer.cli.common import app

# Importing a family registers its commands; --help lists them in this (stage) order.
# isort: off
from srfer.cli import sr, expression, identity, predict, serve, admin  # noqa: F401, E402
# isort: on

__all__ = ["app"]
