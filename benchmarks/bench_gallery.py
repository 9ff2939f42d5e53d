"""Identification latency against large galleries: 10,000 and 100,000 identities in SQLite and,
with `--postgres URL`, in PostgreSQL. A query is nearest-neighbour over a matrix of every
embedding, cached in the process and re-read only when the store changed: reported are the
first query (the read), the steady state (median of 200 single-face queries, which includes
the store's change check) and the re-read after another connection enrolled one person.

    python benchmarks/bench_gallery.py [--postgres postgresql://…]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from srfer.faces.galleries import open_gallery
from srfer.faces.gallery import Gallery, embedding_rows

DIM, MODEL = 128, "bench-model"


def fill(store: Gallery, people: int) -> None:
    """`people` identities of one random unit embedding each, in bulk (the benchmark's own insert)."""
    vectors = torch.nn.functional.normalize(torch.randn(people, DIM), dim=1)
    rows = [row for i in range(people) for row in embedding_rows(f"p{i}", vectors[i : i + 1], ["x"], MODEL)]
    if hasattr(store, "db"):  # SQLite
        with store.db:
            store.db.execute("INSERT OR IGNORE INTO gallery_meta VALUES ('model_id', ?)", (MODEL,))
            store.db.executemany("INSERT INTO embeddings (name, embedding, source, model_id, created) "
                                 "VALUES (?, ?, ?, ?, ?)", rows)  # fmt: skip
        return
    with store._cursor(write=True) as cur:  # PostgreSQL
        cur.execute("DELETE FROM srfer_embeddings")
        cur.execute("INSERT INTO srfer_gallery_meta VALUES ('model_id', %s) ON CONFLICT DO NOTHING", (MODEL,))
        with cur.copy(
            "COPY srfer_embeddings (name, embedding, source, model_id, created) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)


def measure(spec: str, people: int) -> dict:
    with open_gallery(spec, create=True) as store, open_gallery(spec) as other:
        fill(store, people)
        query = torch.nn.functional.normalize(torch.randn(1, DIM), dim=1)
        start = time.perf_counter()
        store.identify(query, MODEL, 0.5)
        first = time.perf_counter() - start
        times = []
        for _ in range(200):
            start = time.perf_counter()
            store.identify(query, MODEL, 0.5)
            times.append(time.perf_counter() - start)
        other.add("newcomer", query, ["y"], MODEL)
        start = time.perf_counter()
        assert store.identify(query, MODEL, 0.5)[0].name == "newcomer"  # the change is seen
        reread = time.perf_counter() - start
    return {"identities": people, "first_query_ms": round(first * 1000, 1),
            "query_ms_median": round(statistics.median(times) * 1000, 2),
            "reread_after_change_ms": round(reread * 1000, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", help="A PostgreSQL URL whose srfer tables may be overwritten.")
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    for people in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({"store": "sqlite", **measure(str(Path(tmp) / "g.sqlite"), people)}), flush=True)
        if args.postgres:
            print(json.dumps({"store": "postgresql", **measure(args.postgres, people)}), flush=True)


if __name__ == "__main__":
    main()
