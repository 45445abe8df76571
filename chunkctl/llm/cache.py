"""The completion cache: one SQLite file beside the store (``<store>.llm-cache.sqlite``).

SQLite rather than DuckDB so the cache never contends with the store's single writer, and so any
number of threads and processes can write it at once (WAL mode; a writer waits up to 60 s for the
lock). Keys are sha256 of (backend, model id, canonical request); the API key is not part of a
request, so it is never in a key or a row.

What is written: completions, and replies that stayed invalid for their JSON schema after the repair
retry — those are the model's answer to that request as much as a valid one is, and asking again
gets another sample (llama.cpp's batched numerics differ from run to run), so a re-run would neither
be free nor give the same chunks. Transport failures (timeouts, HTTP errors) are never written.
``chunkctl llm cache clear`` forgets both.

Many machines (``--engine ray``): SQLite's locking does not hold over a network file system, so
there each task writes its own part file and reads the shared cache read-only (``read_from``,
opened immutable: no locks); ``merge_caches`` folds the parts into the shared file after the job.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import json

from chunkctl.llm.types import Completion, SchemaError

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL,
    completion TEXT NOT NULL
)
"""


def cache_path_for(db: str | Path) -> Path:
    p = Path(db)
    return p.with_name(p.stem + ".llm-cache.sqlite")


class CompletionCache:
    def __init__(self, path: str | Path, read_from: tuple[str, ...] = ()):
        self.path = Path(path)
        self.read_from = tuple(str(p) for p in read_from if Path(p).exists())  # looked in after ``path``
        self._local = threading.local()
        self._conn().execute(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None, uri=True)  # uri: read_from opens immutable
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            for i, other in enumerate(self.read_from):
                con.execute(f"ATTACH DATABASE ? AS shared{i}", (Path(other).resolve().as_uri() + "?immutable=1",))
            self._local.con = con
        return con

    def get(self, key: str) -> Completion | SchemaError | None:
        """The stored completion, the stored invalid-reply verdict, or None."""
        con = self._conn()
        row = con.execute("SELECT completion FROM completions WHERE key = ?", (key,)).fetchone()
        for i in range(len(self.read_from)):
            if row is not None:
                break
            row = con.execute(f"SELECT completion FROM shared{i}.completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row[0].startswith('{"schema_error":'):
            return SchemaError(json.loads(row[0])["schema_error"] + " (cached)")
        return Completion.from_json(row[0])

    def put(self, key: str, backend: str, model: str, kind: str, comp: Completion) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, backend, model, kind, comp.prompt_tokens, comp.completion_tokens, time.time(),
             comp.to_json()))

    def put_invalid(self, key: str, backend: str, model: str, kind: str, error: SchemaError) -> None:
        """Remember that this request's reply stayed invalid (see the module's docstring)."""
        self._conn().execute(
            "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, 0, 0, ?, ?)",
            (key, backend, model, kind, time.time(), json.dumps({"schema_error": str(error)})))

    def stats(self) -> dict:
        rows = self._conn().execute(
            "SELECT backend, model, kind, count(*), sum(prompt_tokens), sum(completion_tokens), "
            "count(*) FILTER (WHERE completion LIKE '{\"schema_error\":%') "
            "FROM completions GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
        return {
            "path": str(self.path),
            "bytes": sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")),
            "entries": sum(r[3] for r in rows),
            "invalid": sum(r[6] for r in rows),
            "groups": [{"backend": b, "model": m, "kind": k, "entries": n, "prompt_tokens": pt,
                        "completion_tokens": ct, "invalid": bad} for b, m, k, n, pt, ct, bad in rows],
        }

    def clear(self, model: str | None = None) -> int:
        con = self._conn()
        cur = (con.execute("DELETE FROM completions WHERE model = ?", (model,)) if model
               else con.execute("DELETE FROM completions"))
        n = cur.rowcount
        con.execute("VACUUM")
        return n

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def merge_caches(target: str | Path, parts: list[Path]) -> int:
    """Fold part files (one per Ray task) into ``target``, then delete them; returns the entries added."""
    cache = CompletionCache(target)
    con = cache._conn()
    before = con.execute("SELECT count(*) FROM completions").fetchone()[0]
    for part in parts:
        con.execute("ATTACH DATABASE ? AS part", (str(part),))
        try:
            con.execute("INSERT OR IGNORE INTO completions SELECT * FROM part.completions")
        finally:
            con.execute("DETACH DATABASE part")
    added = con.execute("SELECT count(*) FROM completions").fetchone()[0] - before
    cache.close()
    for part in parts:
        for f in part.parent.glob(part.name + "*"):  # with its -wal and -shm files
            f.unlink()
    return added
