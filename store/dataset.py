"""The store as a folder of Parquet shards: what ``chunkctl ingest --engine ray --out DIR`` writes,
what ``chunkctl load`` imports and what ``--db DIR`` searches in place.

    DIR/<table>/<run>_<part>.parquet   rows of the store's tables, in exactly its schemas (each shard is
                                       COPY'd from an in-memory Store); one file per task and table
    DIR/manifest/<run>.parquet         per (document, strategy): path, sha256, n_chunks, enrichment;
                                       a tombstone row (deleted) for each document a --prune run removed
    DIR/runs/<run>.parquet             the run's row, written last: it commits the run

Shards of a run without its ``runs`` file (a killed job) are never read, and the next run deletes
them, so a killed run leaves the dataset as it was. A shard's name is derived from its task's
inputs, so a task that Ray retries rewrites the same files (atomically, by rename): no duplicates.

What is live: for each document, the manifest row of its latest run says its sha256 (or that it
was deleted); for each (document, strategy), the latest run that chunked that version wrote its
chunks, memories and vectors. The views below select exactly those rows, so a dataset reads as one
store. One writer at a time, as with the DuckDB file.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Sequence

import duckdb

from chunkctl.store.db import MEMORY_LIMIT, Store, _sql_str
from chunkctl.store.schema import MIGRATIONS

MANIFEST_COLUMNS = ("run_id VARCHAR, doc_id VARCHAR, path VARCHAR, sha256 VARCHAR, strategy_id VARCHAR, "
                    "n_chunks INTEGER, enrichment VARCHAR, deleted BOOLEAN")
SHARD_TABLES = ("documents", "chunks", "document_strategies", "memories", "embeddings", "memory_embeddings",
                "rejects", "strategies", "embedding_models")
_RUN_OF = r"regexp_extract({}, '([^/\\]+)_[0-9a-f]+\.parquet$', 1)"  # a shard's run, from its file name
_RUN_FILE = re.compile(r"(.+?)(_[0-9a-f]+)?\.parquet$")  # <run>_<part>.parquet or <run>.parquet


def is_dataset(path: str | Path) -> bool:
    """A folder that ingest --engine ray wrote (or an empty one, which it may start)."""
    p = Path(path)
    return p.is_dir() and (not any(p.iterdir()) or (p / "runs").is_dir() or (p / "chunks").is_dir())


def new_run_id() -> str:
    """Sortable by time, so "the latest run" is the greatest id."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def part_name(keys: Iterable[str]) -> str:
    """A task's shard name, from its inputs: a retried task writes the same files again."""
    return hashlib.blake2b("\0".join(sorted(keys)).encode(), digest_size=8).hexdigest()


def write_shards(con: duckdb.DuckDBPyConnection, out: Path, run_id: str, part: str | None,
                 selects: dict[str, str]) -> list[Path]:
    """Each ``{table: SELECT ...}`` with rows as ``out/<table>/<run>_<part>.parquet`` (``<run>.parquet``
    without a part: the run's own files), written to a temporary name, then renamed: a reader never
    sees half a file."""
    written = []
    for table, sql in selects.items():
        if not con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]:
            continue
        target = out / table / (f"{run_id}_{part}.parquet" if part else f"{run_id}.parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        con.execute(f"COPY ({sql}) TO '{_sql_str(str(tmp))}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, target)
        written.append(target)
    return written


def prime_records(store: Store, records: Iterable[tuple[str, str, str | None, dict[str, str | None]]],
                  keep: Callable[[str | None], bool]) -> None:
    """The manifest's records of documents, so an ``ingest`` on this store skips what is done: a stub
    document row (no text, no time) per (doc_id, path, sha256, {strategy: enrichment}) that has a
    stored version, and its completion records whose enrichment ``keep`` accepts."""
    with store.transaction():
        for doc_id, path, sha, done in records:
            if sha is None:
                continue
            store.con.execute("INSERT INTO documents VALUES (?, ?, ?, NULL, NULL, NULL, NULL, NULL)", [doc_id, path, sha])
            for sid, enrichment in done.items():
                if keep(enrichment):
                    store.con.execute("INSERT INTO document_strategies VALUES (?, ?, ?, 0, NULL, ?)",
                                      [doc_id, sid, sha, enrichment])


def write_task_shards(store: Store, out: Path, run_id: str, part: str) -> list[Path]:
    """A parse task's rows (its in-memory store, primed by ``prime_records``) as shards: the
    documents and completion records it wrote (not the stubs), chunks, memories, vectors, models,
    rejects (stamped with the run) and strategies."""
    store.con.execute("UPDATE rejects SET run_id = ?", [run_id])
    return write_shards(store.con, out, run_id, part, {
        "documents": "SELECT * FROM documents WHERE ingested_at IS NOT NULL",
        "document_strategies": "SELECT * FROM document_strategies WHERE chunked_at IS NOT NULL",
        **{t: f"SELECT * FROM {t}" for t in ("chunks", "memories", "embeddings", "embedding_models", "rejects",
                                              "strategies")}})


def write_vector_shards(store: Store, out: Path, run_id: str, part: str) -> list[Path]:
    """An embedding actor's vectors (chunks' and memory entries') and models as shards."""
    return write_shards(store.con, out, run_id, part,
                        {t: f"SELECT * FROM {t}" for t in ("embeddings", "memory_embeddings", "embedding_models")})


def write_commit(store: Store, out: Path, run_id: str, paths: dict[str, str], tombstones: Sequence[tuple[str, str]],
                 reject_part: str) -> None:
    """The driver's files of a run, the run's row last (the commit): the walk's rejects (already
    put in ``store``), the manifest (the run's completion records from its ``document_strategies``
    shards, with each document's path from ``paths``, and a tombstone per (doc_id, path) deleted)
    and ``runs`` (started and finished in ``store``)."""
    import pyarrow as pa

    con = store.con
    write_shards(con, out, run_id, reject_part, {"rejects": "SELECT * FROM rejects"})
    con.register("_paths", pa.table({"doc_id": list(paths), "path": list(paths.values())}))
    done = sorted(str(p) for p in (out / "document_strategies").glob(f"{run_id}_*.parquet"))
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in done)
    parts = [f"SELECT '{run_id}' AS run_id, d.doc_id, p.path, d.sha256, d.strategy_id, d.n_chunks, d.enrichment, "
             f"false AS deleted FROM read_parquet([{listed}]) d JOIN _paths p USING (doc_id)"] if done else []
    con.register("_gone", pa.table({"doc_id": [d for d, _ in tombstones], "path": [p for _, p in tombstones]}))
    parts.append(f"SELECT '{run_id}' AS run_id, doc_id, path, NULL::VARCHAR AS sha256, NULL::VARCHAR AS strategy_id, "
                 "NULL::INTEGER AS n_chunks, NULL::VARCHAR AS enrichment, true AS deleted FROM _gone")
    write_shards(con, out, run_id, None, {"manifest": " UNION ALL ".join(parts)})
    write_shards(con, out, run_id, None, {"runs": "SELECT * FROM runs"})


def committed_runs(out: Path) -> list[str]:
    return sorted(p.name[: -len(".parquet")] for p in (out / "runs").glob("*.parquet"))


def remove_uncommitted(out: Path) -> int:
    """Delete the shards of runs that never committed (killed jobs) and temporary files."""
    done = set(committed_runs(out))
    removed = 0
    for table in (*SHARD_TABLES, "manifest"):
        for f in (out / table).glob("*"):
            m = _RUN_FILE.match(f.name)
            if f.name.endswith(".tmp") or (m and m.group(1) not in done):
                f.unlink()
                removed += 1
    return removed


def _files(out: Path, table: str, runs: set[str]) -> list[str]:
    return sorted(str(f) for f in (out / table).glob("*.parquet") if _RUN_FILE.match(f.name).group(1) in runs)


def _read(files: Sequence[str]) -> str:
    listed = ", ".join(f"'{_sql_str(f)}'" for f in files)
    return f"read_parquet([{listed}], filename = true, union_by_name = true)"


def attach_dataset(con: duckdb.DuckDBPyConnection, out: str | Path, prefix: str = "") -> None:
    """Temporary views ``<prefix><table>`` on ``con`` that read the dataset's live rows as the
    store's tables (a snapshot: the files of the runs committed now). The store's empty tables,
    built by its migrations in an attached in-memory database, give every view its exact types."""
    out = Path(out)
    runs = set(committed_runs(out))
    base = f"_{prefix}store_schema"
    if not con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [base]).fetchone()[0]:
        con.execute(f"ATTACH ':memory:' AS {base}")
        here = con.execute("SELECT current_database()").fetchone()[0]
        con.execute(f"USE {base}")
        try:
            for _, sql in MIGRATIONS:
                con.execute(sql)
        finally:
            con.execute(f"USE {here}")

    def view(name: str, sql: str) -> None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {prefix}{name} AS {sql}")

    def table(name: str, body: str | None) -> None:
        """The store's (empty) table, with the shards' rows when there are any."""
        empty = f"SELECT * FROM {base}.main.{name}"
        view(name, empty if body is None else f"{empty} UNION ALL BY NAME {body}")

    files = {t: _files(out, t, runs) for t in (*SHARD_TABLES, "manifest", "runs")}
    src = {t: _read(f) if f else None for t, f in files.items()}
    manifest = (f"SELECT * EXCLUDE (filename) FROM {src['manifest']}" if src["manifest"] else
                "SELECT " + ", ".join(f"NULL::{typ} AS {col}" for col, typ in
                                      (c.split() for c in MANIFEST_COLUMNS.split(", "))) + " WHERE false")
    # the live (document, strategy) parts and the run that wrote each; materialised once per snapshot
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {prefix}live AS
        WITH m AS ({manifest}),
        latest AS (SELECT doc_id, sha256, deleted FROM m
                   QUALIFY row_number() OVER (PARTITION BY doc_id ORDER BY run_id DESC, deleted DESC) = 1)
        SELECT m.doc_id, m.strategy_id, m.run_id, m.sha256, m.path FROM m JOIN latest l USING (doc_id)
        WHERE NOT l.deleted AND NOT m.deleted AND m.sha256 = l.sha256
        QUALIFY row_number() OVER (PARTITION BY m.doc_id, m.strategy_id ORDER BY m.run_id DESC) = 1""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}tombstones AS WITH m AS ({manifest}) SELECT doc_id, path "
                "FROM m QUALIFY row_number() OVER (PARTITION BY doc_id ORDER BY run_id DESC, deleted DESC) = 1 "
                "AND deleted")
    live = f"{prefix}live"

    def per_part(name: str) -> str | None:  # rows of a live (document, strategy) from the run that wrote it
        return None if src[name] is None else (
            f"SELECT t.* EXCLUDE (filename) FROM {src[name]} t JOIN {live} l ON t.doc_id = l.doc_id AND "
            f"t.strategy_id = l.strategy_id AND {_RUN_OF.format('t.filename')} = l.run_id")

    table("chunks", per_part("chunks"))
    table("memories", per_part("memories"))
    table("document_strategies", per_part("document_strategies"))
    table("documents", None if src["documents"] is None else (
        f"SELECT t.* EXCLUDE (filename) FROM {src['documents']} t JOIN (SELECT DISTINCT doc_id, sha256 FROM {live}) l "
        f"USING (doc_id, sha256) QUALIFY row_number() OVER (PARTITION BY t.doc_id ORDER BY "
        f"{_RUN_OF.format('t.filename')} DESC) = 1"))
    for vectors, owner, key in (("embeddings", "chunks", "chunk_id"), ("memory_embeddings", "memories", "memory_id")):
        table(vectors, None if src[vectors] is None or src[owner] is None else (
            f"SELECT t.* EXCLUDE (filename) FROM {src[vectors]} t JOIN (SELECT o.{key}, "
            f"{_RUN_OF.format('o.filename')} AS run FROM {src[owner]} o JOIN {live} l ON o.doc_id = l.doc_id AND "
            f"o.strategy_id = l.strategy_id AND {_RUN_OF.format('o.filename')} = l.run_id) k ON t.{key} = k.{key} "
            f"AND {_RUN_OF.format('t.filename')} = k.run"))
    table("rejects", src["rejects"] and f"SELECT * EXCLUDE (filename) FROM {src['rejects']}")
    table("runs", src["runs"] and f"SELECT * EXCLUDE (filename) FROM {src['runs']}")
    table("strategies", src["strategies"] and
          f"SELECT DISTINCT ON (strategy_id) * EXCLUDE (filename) FROM {src['strategies']} ORDER BY strategy_id")
    table("embedding_models", src["embedding_models"] and f"SELECT DISTINCT ON (model_id) * EXCLUDE (filename) "
          f"FROM {src['embedding_models']} ORDER BY model_id, created_at")
    view("manifest", manifest)


class DatasetStore(Store):
    """A Parquet dataset opened as a store (``--db DIR``): DuckDB reads the shards in place through
    the views of ``attach_dataset``. Its tables are views, so it is read-only; the derived tables that
    search builds (BM25 and HNSW indexes) live in memory for the session."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.read_only = True
        if not (Path(path) / "runs").is_dir():
            raise FileNotFoundError(f"{path} is a folder but not a chunkctl dataset (no runs/ in it)")
        self.con = duckdb.connect(":memory:", config={"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": False})
        attach_dataset(self.con, path)
        for name in ("fts_indexes", "embedding_cache"):  # written by search, or read as empty
            self.con.execute(f"CREATE TABLE {name} AS SELECT * FROM _store_schema.main.{name}")
        self.con.execute("CREATE TABLE migrations (name VARCHAR, applied_at TIMESTAMP)")

    def migrate(self) -> list[str]:
        return []


def live_state(out: Path) -> dict[str, tuple[str, str, dict[str, str | None]]]:
    """{doc_id: (path, sha256, {strategy_id: enrichment})} of the dataset's live documents."""
    con = duckdb.connect(":memory:")
    try:
        attach_dataset(con, out)
        state: dict[str, tuple[str, str, dict]] = {}
        for doc_id, path, sha, sid, enrichment in con.execute(
                "SELECT l.doc_id, l.path, l.sha256, l.strategy_id, d.enrichment FROM live l JOIN document_strategies d "
                "ON d.doc_id = l.doc_id AND d.strategy_id = l.strategy_id").fetchall():
            state.setdefault(doc_id, (path, sha, {}))[2][sid] = enrichment
        return state
    finally:
        con.close()


def load_dataset(store: Store, out: str | Path) -> dict[str, int]:
    """Import a dataset's live rows into a DuckDB store, in one transaction. Idempotent: only
    documents whose (strategy, sha256, chunk count, time chunked, enrichment) records differ are
    replaced; tombstoned documents are deleted; runs, rejects, strategies and models are added once."""
    import pyarrow as pa

    con = store.con
    attach_dataset(con, out, prefix="ds_")
    record = "doc_id, strategy_id, sha256, n_chunks, chunked_at, enrichment"
    changed = [r[0] for r in con.execute(f"""
        WITH ds AS (SELECT {record} FROM ds_document_strategies),
        have AS (SELECT {record} FROM document_strategies WHERE doc_id IN (SELECT doc_id FROM ds_documents))
        SELECT DISTINCT doc_id FROM ((SELECT * FROM ds EXCEPT SELECT * FROM have)
                                     UNION ALL (SELECT * FROM have EXCEPT SELECT * FROM ds)) ORDER BY 1""").fetchall()]
    gone = [r[0] for r in con.execute("SELECT doc_id FROM ds_tombstones WHERE doc_id IN (SELECT doc_id FROM documents) "
                                      "AND doc_id NOT IN (SELECT doc_id FROM ds_documents)").fetchall()]
    counts = {"documents": len(changed), "deleted": len(gone)}
    with store.transaction():
        store.delete_documents(changed + gone)
        con.register("_load_ids", pa.table({"doc_id": pa.array(changed, pa.string())}))
        try:
            in_ids = "doc_id IN (SELECT doc_id FROM _load_ids)"
            for t in ("documents", "chunks", "memories", "document_strategies"):
                con.execute(f"INSERT INTO {t} BY NAME SELECT * FROM ds_{t} WHERE {in_ids}")
            con.execute("INSERT INTO embeddings BY NAME SELECT e.* FROM ds_embeddings e JOIN ds_chunks c USING (chunk_id) "
                        f"WHERE c.{in_ids}")
            con.execute("INSERT INTO memory_embeddings BY NAME SELECT e.* FROM ds_memory_embeddings e JOIN ds_memories m "
                        f"USING (memory_id) WHERE m.{in_ids}")
        finally:
            con.unregister("_load_ids")
        new_runs = [r[0] for r in con.execute("SELECT run_id FROM ds_runs WHERE run_id NOT IN (SELECT run_id FROM runs)")
                    .fetchall()]
        con.execute("INSERT INTO rejects BY NAME SELECT * FROM ds_rejects WHERE run_id IN (SELECT unnest(?))", [new_runs])
        con.execute("INSERT INTO runs BY NAME SELECT * FROM ds_runs WHERE run_id IN (SELECT unnest(?))", [new_runs])
        con.execute("INSERT INTO strategies BY NAME SELECT * FROM ds_strategies WHERE strategy_id NOT IN "
                    "(SELECT strategy_id FROM strategies)")
        con.execute("INSERT INTO embedding_models BY NAME SELECT * FROM ds_embedding_models WHERE model_id NOT IN "
                    "(SELECT model_id FROM embedding_models)")
    counts["runs"] = len(new_runs)
    counts["chunks"] = con.execute("SELECT count(*) FROM chunks WHERE doc_id IN (SELECT unnest(?))", [changed]).fetchone()[0]
    return counts
