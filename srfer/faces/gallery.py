"""A face gallery: enrolled identity embeddings, and 1:N search by nearest neighbour (seed:
precompute the database's embeddings offline, then answer queries).

Every embedding records the model it came from; a gallery holds one model's embeddings only,
because distances between different models' embeddings mean nothing. Two stores: one SQLite
file (embedded, the default) and PostgreSQL (`postgresql://…`, `srfer.faces.gallery_pg`), which
any number of `srfer serve` replicas share. Both answer queries from a matrix of every
embedding, read once and read again only when the store says it changed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srfer.core.errors import SrferError, writing
from srfer.core.weights import entry_with_sha256

SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    embedding BLOB NOT NULL,
    source TEXT NOT NULL,
    model_id TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_name ON embeddings (name);
"""
TABLES = {"gallery_meta", "embeddings"}


@dataclass
class Match:
    name: str  # the nearest identity, or "unknown" beyond the threshold
    nearest: str | None
    distance: float | None
    threshold: float


class Gallery(ABC):
    """What every gallery store does: enrol, remove, list, and identify against a cached matrix."""

    location: str  # how messages name it (a password in a URL is never shown)

    def __init__(self) -> None:
        self._matrix: tuple[list[str], torch.Tensor] | None = None
        self._version: object = None
        self._lock = threading.Lock()

    # --------------------------------------------------------------------- a store's own
    @property
    @abstractmethod
    def model_id(self) -> str | None: ...

    @abstractmethod
    def identities(self) -> list[tuple[str, int]]: ...

    @abstractmethod
    def add(self, name: str, embeddings: torch.Tensor, sources: list[str], model_id: str) -> int:
        """Adds one person's embeddings, all or nothing; returns how many."""

    @abstractmethod
    def remove(self, name: str) -> int: ...

    @abstractmethod
    def _version_now(self) -> object:
        """A value that changes whenever anyone changes the embeddings."""

    @abstractmethod
    def _rows(self) -> list[tuple[str, bytes]]:
        """(name, float32 embedding bytes) of every enrolled embedding."""

    @abstractmethod
    def close(self) -> None: ...

    # ------------------------------------------------------------------------- shared
    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_model(self, model_id: str) -> None:
        if self.model_id is None or self.model_id == model_id:
            return
        shipped = entry_with_sha256(self.model_id)
        held = f"{shipped.file}'s" if shipped else f"model {self.model_id[:12]}…'s"
        use = f"--embed-weights {shipped.file}" if shipped else "that model"
        raise SrferError(
            f"{self.location} holds {held} embeddings, not {model_id[:12]}…'s: answer with {use}, "
            "or enrol the people again into a new gallery"
        )

    def matrix(self) -> tuple[list[str], torch.Tensor]:
        """All names and embeddings, read once and kept until the gallery changes (here, or
        through another connection or replica)."""
        version = self._version_now()
        with self._lock:
            if self._matrix is None or version != self._version:
                rows = self._rows()
                embeddings = (
                    np.stack([np.frombuffer(r[1], np.float32) for r in rows]) if rows else np.empty((0, 0))
                )
                self._matrix = [r[0] for r in rows], torch.from_numpy(embeddings.astype(np.float32))
                self._version = version
            return self._matrix

    def identify(self, embeddings: torch.Tensor, model_id: str, threshold: float) -> list[Match]:
        """Nearest enrolled embedding per query (squared L2); 'unknown' when d > τ."""
        self.check_model(model_id)
        names, gallery = self.matrix()
        if not names:
            raise SrferError(f"{self.location}: the gallery is empty (srfer enroll adds people)")
        dist = torch.cdist(embeddings.float().cpu(), gallery).pow(2)
        best_d, best_i = dist.min(1)
        return [
            Match(names[i] if d <= threshold else "unknown", names[i], float(d), threshold)
            for d, i in zip(best_d.tolist(), best_i.tolist(), strict=True)
        ]


def embedding_rows(name: str, embeddings: torch.Tensor, sources: list[str], model_id: str) -> list[tuple]:
    """(name, float32 bytes, source, model id, time) per embedding, as both stores keep them."""
    now = time.time()
    return [(name, e.float().cpu().numpy().tobytes(), s, model_id, now)
            for e, s in zip(embeddings, sources, strict=True)]  # fmt: skip


class SqliteGallery(Gallery):
    """A gallery in one SQLite file."""

    def __init__(self, path: Path, create: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.location = str(self.path)
        if not create and not self.path.is_file():
            raise SrferError(f"{self.path}: gallery not found (srfer enroll creates one)")
        if create:
            with writing(self.path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # check_same_thread off: `predict` identifies faces from several threads; sqlite
            # itself serialises the calls (threadsafety 3, the default build)
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            self._open(create)
        except sqlite3.OperationalError as exc:  # cannot open or write: the file system's word
            self.db.close()
            raise SrferError(f"{self.path}: cannot open or write the gallery ({exc})") from None
        except sqlite3.DatabaseError as exc:  # opened, but not a database
            self.db.close()
            raise SrferError(f"{self.path}: not a srfer gallery ({exc})") from None
        except SrferError:
            self.db.close()
            raise

    def _open(self, create: bool) -> None:
        """Another program's SQLite file is refused untouched: srfer's tables are only ever
        added to a database that has no tables yet (a new file), and only when enrolling."""
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables >= TABLES:
            return
        if tables:
            found = ", ".join(sorted(tables - {"sqlite_sequence"})) or "none of srfer's"
            raise SrferError(
                f"{self.path}: an SQLite database, but not a srfer gallery (its tables: {found}); "
                "name a new file, or one `srfer enroll` made"
            )
        if not create:
            raise SrferError(f"{self.path}: an empty database, not a srfer gallery (srfer enroll makes one)")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @property
    def model_id(self) -> str | None:
        row = self.db.execute("SELECT value FROM gallery_meta WHERE key = 'model_id'").fetchone()
        return row[0] if row else None

    def add(self, name: str, embeddings: torch.Tensor, sources: list[str], model_id: str) -> int:
        self.check_model(model_id)
        with self._writing(), self.db:
            self.db.execute("INSERT OR IGNORE INTO gallery_meta VALUES ('model_id', ?)", (model_id,))
            self.db.executemany(
                "INSERT INTO embeddings (name, embedding, source, model_id, created) VALUES (?, ?, ?, ?, ?)",
                embedding_rows(name, embeddings, sources, model_id),
            )
        self._matrix = None
        return len(sources)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:  # read-only file, full disk, locked too long
            raise SrferError(f"{self.path}: cannot write the gallery ({exc})") from None

    def remove(self, name: str) -> int:
        with self._writing(), self.db:
            removed = self.db.execute("DELETE FROM embeddings WHERE name = ?", (name,)).rowcount
        self._matrix = None
        if not removed:
            raise SrferError(f"{self.path}: no identity named {name!r}")
        return removed

    def identities(self) -> list[tuple[str, int]]:
        return self.db.execute("SELECT name, COUNT(*) FROM embeddings GROUP BY name ORDER BY name").fetchall()

    def _version_now(self) -> object:
        # sqlite's data_version moves when another connection commits; this one's own writes
        # reset the matrix themselves
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def _rows(self) -> list[tuple[str, bytes]]:
        return self.db.execute("SELECT name, embedding FROM embeddings ORDER BY id").fetchall()
