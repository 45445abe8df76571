"""The completion cache: one SQLite file beside the store (``<store>.llm-cache.sqlite``).

SQLite rather than DuckDB so the cache never contends with the store's single writer, and so any
number of threads and processes can write it at once (WAL mode; a writer waits up to 60 s for the
lock). Keys are sha256 of (backend, model id, canonical request); the API key is not part of a
request, so it is never in a key or a row. Only successful completions are written.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from chunkctl.llm.types import Completion

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
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        self._conn().execute(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def get(self, key: str) -> Completion | None:
        row = self._conn().execute("SELECT completion FROM completions WHERE key = ?", (key,)).fetchone()
        return None if row is None else Completion.from_json(row[0])

    def put(self, key: str, backend: str, model: str, kind: str, comp: Completion) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, backend, model, kind, comp.prompt_tokens, comp.completion_tokens, time.time(),
             comp.to_json()))

    def stats(self) -> dict:
        rows = self._conn().execute(
            "SELECT backend, model, kind, count(*), sum(prompt_tokens), sum(completion_tokens) "
            "FROM completions GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
        return {
            "path": str(self.path),
            "bytes": sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")),
            "entries": sum(r[3] for r in rows),
            "groups": [{"backend": b, "model": m, "kind": k, "entries": n, "prompt_tokens": pt,
                        "completion_tokens": ct} for b, m, k, n, pt, ct in rows],
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
