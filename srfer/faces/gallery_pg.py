"""The gallery in PostgreSQL (psycopg 3), so that any number of `srfer serve` replicas share it.

Tables `srfer_gallery_meta` and `srfer_embeddings` (srfer's own names: a database may hold other
tables too). An enrolment is one transaction: all of a person's embeddings or none. Every change
bumps a version row in the same transaction, so each replica re-reads its cached matrix exactly
when another one changed the gallery. A database that is down or goes away raises
`ServiceUnavailable`; the next call connects again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from srfer.core.errors import ServiceUnavailable, SrferError
from srfer.faces.gallery import Gallery, embedding_rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS srfer_gallery_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS srfer_embeddings (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    embedding BYTEA NOT NULL,
    source TEXT NOT NULL,
    model_id TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS srfer_embeddings_name ON srfer_embeddings (name);
INSERT INTO srfer_gallery_meta VALUES ('version', '0') ON CONFLICT (key) DO NOTHING;
"""
BUMP = """INSERT INTO srfer_gallery_meta VALUES ('version', '1')
ON CONFLICT (key) DO UPDATE SET value = (srfer_gallery_meta.value::bigint + 1)::text"""
CONNECT_TIMEOUT_S = 5


def redacted(url: str) -> str:
    """The URL without its password (messages and logs name the gallery by it)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresGallery(Gallery):
    """A gallery in a PostgreSQL database named by a `postgresql://` URL."""

    def __init__(self, url: str, create: bool = False) -> None:
        super().__init__()
        import psycopg

        self._psycopg, self.url, self.location = psycopg, url, redacted(url)
        self._create, self._conn, self._conn_lock = create, None, threading.Lock()
        self._connection()  # a wrong URL or a database that is down fails now, in one line

    # ----------------------------------------------------------------------- connection
    def _connection(self):
        with self._conn_lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                try:
                    self._conn = self._psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S)
                except self._psycopg.OperationalError as exc:
                    raise ServiceUnavailable(f"{self.location}: the gallery database is unavailable "
                                             f"({_first_line(exc)})") from None  # fmt: skip
                except self._psycopg.ProgrammingError as exc:  # a malformed URL
                    raise SrferError(f"{self.location}: not a PostgreSQL URL ({_first_line(exc)})") from None
                self._prepare()
            return self._conn

    def _prepare(self) -> None:
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute("SELECT to_regclass('srfer_embeddings') IS NOT NULL")
            exists = cur.fetchone()[0]
            if not exists and not self._create:
                raise SrferError(
                    f"{self.location}: no srfer gallery in this database (srfer enroll makes one)"
                )
            if not exists:
                cur.execute(SCHEMA)

    @contextmanager
    def _cursor(self, write: bool = False) -> Iterator:
        """A cursor in a transaction; a lost connection is `ServiceUnavailable`, once."""
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
                if write:
                    cur.execute(BUMP)
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
            raise ServiceUnavailable(f"{self.location}: the gallery database is unavailable "
                                     f"({_first_line(exc)})") from None  # fmt: skip

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()

    # ----------------------------------------------------------------------------- store
    @property
    def model_id(self) -> str | None:
        with self._cursor() as cur:
            cur.execute("SELECT value FROM srfer_gallery_meta WHERE key = 'model_id'")
            row = cur.fetchone()
        return row[0] if row else None

    def add(self, name: str, embeddings: torch.Tensor, sources: list[str], model_id: str) -> int:
        self.check_model(model_id)
        with self._cursor(write=True) as cur:
            cur.execute("INSERT INTO srfer_gallery_meta VALUES ('model_id', %s) ON CONFLICT DO NOTHING",
                        (model_id,))  # fmt: skip
            cur.executemany(
                "INSERT INTO srfer_embeddings (name, embedding, source, model_id, created) "
                "VALUES (%s, %s, %s, %s, %s)",
                embedding_rows(name, embeddings, sources, model_id),
            )
        return len(sources)

    def remove(self, name: str) -> int:
        with self._cursor(write=True) as cur:
            cur.execute("DELETE FROM srfer_embeddings WHERE name = %s", (name,))
            removed = cur.rowcount
            if not removed:
                raise SrferError(f"{self.location}: no identity named {name!r}")
        return removed

    def identities(self) -> list[tuple[str, int]]:
        with self._cursor() as cur:
            cur.execute("SELECT name, COUNT(*) FROM srfer_embeddings GROUP BY name ORDER BY name")
            return [(name, int(count)) for name, count in cur.fetchall()]

    def _version_now(self) -> object:
        with self._cursor() as cur:
            cur.execute("SELECT value FROM srfer_gallery_meta WHERE key = 'version'")
            row = cur.fetchone()
        return row[0] if row else None

    def _rows(self) -> list[tuple[str, bytes]]:
        with self._cursor() as cur:
            cur.execute("SELECT name, embedding FROM srfer_embeddings ORDER BY id")
            return [(name, bytes(blob)) for name, blob in cur.fetchall()]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
