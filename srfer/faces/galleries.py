"""Which gallery store a name means: a `postgresql://` URL is PostgreSQL, anything else a SQLite file."""

from __future__ import annotations

from pathlib import Path

from srfer.faces.gallery import Gallery, SqliteGallery

POSTGRES = ("postgresql://", "postgres://")


def open_gallery(spec: str | Path, create: bool = False) -> Gallery:
    """A SQLite file, or PostgreSQL for a `postgresql://…` URL. `create`: a missing SQLite
    file is made and srfer's tables are added to a new store (only when enrolling)."""
    if str(spec).startswith(POSTGRES):
        from srfer.faces.gallery_pg import PostgresGallery

        return PostgresGallery(str(spec), create=create)
    return SqliteGallery(Path(spec), create=create)
