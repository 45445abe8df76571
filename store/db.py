"""The DuckDB store: one file, named migrations, one transaction per document.

A document's row, its chunks for every strategy, and the ``document_strategies`` records that
say those chunks are complete are written in one transaction, so a crash or kill leaves either
the old or the new version of a document, never a mix; the next run sees the missing record and
redoes that document.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import duckdb

from chunkctl.store import lock
from chunkctl.store.schema import MIGRATIONS
from chunkctl.types import Chunk, Document, Page, Reject

DEFAULT_DB = "chunkctl.duckdb"
# DuckDB's buffer pool defaults to 80% of RAM; an ingest tool should not grow with its input, so
# the store caps it and DuckDB evicts or spills instead. A transaction's appended rows stay in memory
# until commit (unless a 122,880-row group fills), so the cap must hold one very large document's
# text and chunks: a 200 MB text file needs about 450 MB here.
MEMORY_LIMIT = "768MB"
TABLES = ("documents", "chunks", "strategies", "document_strategies", "runs", "rejects", "migrations",
          "embeddings", "embedding_cache", "embedding_models", "fts_indexes", "memories", "memory_embeddings")


class StoreError(Exception):
    """The store cannot be written (disk full, an invalidated database): the run must end here.
    Everything committed before stays; a re-run resumes."""


def store_failure(err: BaseException) -> str | None:
    """Why ``err`` is a failure of the store or its disk rather than of one file, or None."""
    import errno

    text = str(err)
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return f"{err.strerror or err} (writing {err.filename or 'the store'})"
    if isinstance(err, duckdb.Error) and ("No space left" in text or "Disk quota" in text):
        return "no space left on the device holding the store"
    if isinstance(err, duckdb.FatalException) or "database has been invalidated" in text:
        return f"the database stopped accepting writes: {text.splitlines()[0][:300]}"
    return None


class NotAStore(ValueError):
    """The file named as the store is something else (a SQLite file, another DuckDB database)."""


class StoreBusy(StoreError):
    """Another process holds the store (DuckDB allows one writer and no readers beside it)."""


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    # never fetch an extension: DuckDB would try to download sqlite_scanner for a SQLite file
    return duckdb.connect(path, read_only=read_only,
                          config={"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": False,
                                  "autoinstall_known_extensions": False, "autoload_known_extensions": False})


def check_store_file(path: str) -> None:
    """Raise NotAStore unless ``path`` is missing, empty or a DuckDB file (its magic bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except (FileNotFoundError, IsADirectoryError):
        return
    if not head:
        return
    if head.startswith(b"SQLite format 3\0"):
        raise NotAStore(f"{path} is a SQLite database, not a chunkctl store (pass another --db)")
    if head[8:12] != b"DUCK":
        raise NotAStore(f"{path} is not a DuckDB file, so not a chunkctl store (pass another --db)")


def _check_tables(con, path: str) -> None:
    """A DuckDB database with tables of its own and no chunkctl migrations is not ours to change."""
    tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
    ours = "migrations" in tables and con.execute(
        "SELECT count(*) FROM migrations WHERE name = ?", [MIGRATIONS[0][0]]).fetchone()[0] > 0
    if tables and not ours:
        shown = ", ".join(tables[:6]) + (", ..." if len(tables) > 6 else "")
        raise NotAStore(f"{path} is a DuckDB database but not a chunkctl store (its tables: {shown}); "
                        "pass another --db")


def _create_atomically(path: Path) -> None:
    """A new store appears whole or not at all: it is built under a temporary name, migrated and
    checkpointed, then renamed into place. A 0-byte file where the store should be (left by a run
    killed while DuckDB created it, before this rule) is replaced the same way."""
    try:
        if path.stat().st_size > 0:
            return
        if path.with_name(path.name + ".wal").exists():
            return  # not ours to judge: DuckDB replays its log
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = _connect(str(tmp), False)
    try:
        Store._migrate(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, path)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Store:
    """One store file. ``wait``: seconds to wait for another process that holds it (StoreBusy
    after that); ``command``: what a writer tells a blocked process it is doing."""

    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False, wait: float = 0.0,
                 command: str | None = None):
        self.path = str(path)
        self.read_only = read_only
        self.command, self.started = command, time.time()
        if read_only and not Path(self.path).exists():
            raise FileNotFoundError(f"no store at {self.path}")
        memory = self.path == ":memory:"
        if not memory:
            check_store_file(self.path)
            if not read_only:
                _create_atomically(Path(self.path))
        self.con = self._open(wait)
        try:
            if not memory:
                _check_tables(self.con, self.path)
        except BaseException:
            self.con.close()
            raise
        if not read_only and not memory:
            lock.write_note(self.path, command, self.started)
        if not read_only:
            self.migrate()
        self._knock_check = 0.0

    def _open(self, wait: float) -> duckdb.DuckDBPyConnection:
        """Connect, waiting up to ``wait`` seconds for another process to let go (knocking, so a
        chunkctl writer lets this one in between documents)."""
        deadline = time.monotonic() + wait
        knock = None
        try:
            while True:
                try:
                    return _connect(self.path, self.read_only)
                except duckdb.Error as e:
                    if not lock.is_lock_error(e):
                        raise
                    if time.monotonic() >= deadline:
                        raise StoreBusy(lock.busy_message(self.path, e) + (
                            "" if wait else "; pass --wait SECONDS to wait for it")) from None
                    if knock is None:
                        knock = lock.Knock(self.path).__enter__()
                    time.sleep(0.1)
        finally:
            if knock is not None:
                knock.__exit__(None, None, None)

    def let_readers_in(self) -> None:
        """Between units of work: when commands are waiting to read this store (their knocks),
        close it, let them open it, and open it again once they are done. Call outside a
        transaction; checks at most twice a second."""
        if self.read_only or self.path == ":memory:" or time.monotonic() - self._knock_check < 0.5:
            return
        self._knock_check = time.monotonic()
        if not lock.knocking(self.path):
            return
        self.con.close()
        until = time.monotonic() + lock.KNOCK_WAIT_S
        while lock.knocking(self.path) and time.monotonic() < until:
            time.sleep(0.05)
        self.con = self._open(wait=24 * 3600)  # readers hold it briefly; this run must get it back
        lock.write_note(self.path, self.command, self.started)  # a command let in that writes replaced the note

    def close(self) -> None:
        self.con.close()
        if not self.read_only:
            lock.remove_note(self.path)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        return Store._migrate(self.con)

    @staticmethod
    def _migrate(con) -> list[str]:
        con.execute("CREATE TABLE IF NOT EXISTS migrations (name VARCHAR, applied_at TIMESTAMP)")
        done = {r[0] for r in con.execute("SELECT name FROM migrations").fetchall()}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(sql)
                con.execute("INSERT INTO migrations VALUES (?, ?)", [name, _now()])
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            applied.append(name)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # already rolled back (an interrupted query aborts it); the first error is the news
            raise
        self.con.execute("COMMIT")

    # -- reads ----------------------------------------------------------------------------
    def document_state(self, doc_id: str) -> tuple[str | None, dict[str, str | None]]:
        """(stored sha256 or None, {strategy id complete for that version: its enrichment id})."""
        row = self.con.execute("SELECT sha256 FROM documents WHERE doc_id = ?", [doc_id]).fetchone()
        if row is None:
            return None, {}
        done = self.con.execute(
            "SELECT strategy_id, enrichment FROM document_strategies WHERE doc_id = ? AND sha256 = ?", [doc_id, row[0]]
        ).fetchall()
        return row[0], dict(done)

    def load_document(self, doc_id: str) -> Document:
        """A stored document as the enrichers see it: text, path, metadata and pages (no elements:
        chunks carry their heading paths)."""
        doc_id, path, sha, mime, text, meta = self.con.execute(
            "SELECT doc_id, path, sha256, mime, text, metadata FROM documents WHERE doc_id = ?", [doc_id]).fetchone()
        meta = json.loads(meta) if meta else {}
        pages = [Page(n, s, e) for n, s, e in meta.get("page_spans", [])]
        return Document(doc_id, path, sha, mime, text or "", [], pages, meta)

    def load_chunks(self, doc_id: str, strategy_id: str) -> list[Chunk]:
        rows = self.con.execute(
            "SELECT chunk_id, doc_id, strategy_id, seq, char_start, char_end, text, n_tokens, page_start, page_end, "
            "heading_path, metadata, embed_text FROM chunks WHERE doc_id = ? AND strategy_id = ? ORDER BY seq",
            [doc_id, strategy_id]).fetchall()
        return [Chunk(*r[:10], tuple(r[10] or ()), json.loads(r[11]) if r[11] else {}, embed_text=r[12])
                for r in rows]

    def documents_under(self, roots: Sequence[str]) -> list[tuple[str, str]]:
        """(doc_id, path) of stored documents inside any of ``roots`` (absolute paths)."""
        rows = self.con.execute("SELECT doc_id, path FROM documents").fetchall()
        prefixes = [r.rstrip("/") + "/" for r in roots]
        return [(d, p) for d, p in rows if p in roots or any(p.startswith(x) for x in prefixes)]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    # -- writes (call inside ``transaction``) ----------------------------------------------
    def put_strategy(self, strategy_id: str, name: str, params: dict[str, Any]) -> None:
        exists = self.con.execute("SELECT 1 FROM strategies WHERE strategy_id = ?", [strategy_id]).fetchone()
        if not exists:
            self.con.execute("INSERT INTO strategies VALUES (?, ?, ?)",
                             [strategy_id, name, json.dumps(params, sort_keys=True)])

    def put_document(self, doc_id: str, path: str, sha256: str, mime: str, text: str | None,
                     metadata: dict[str, Any], text_file: str | None = None, n_chars: int | None = None) -> None:
        """Replace the document row. A streamed document passes ``text_file`` (UTF-8) instead of
        ``text``; DuckDB reads it itself, so the text never sits in Python memory whole."""
        self.con.execute("DELETE FROM documents WHERE doc_id = ?", [doc_id])
        meta = json.dumps(metadata, sort_keys=True, default=str)
        if text_file is None:
            self.con.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [doc_id, path, sha256, mime, len(text or ""), text, meta, _now()])
        else:
            self.con.execute(
                "INSERT INTO documents SELECT ?, ?, ?, ?, ?, content, ?, ? FROM read_text(?)",
                [doc_id, path, sha256, mime, n_chars, meta, _now(), text_file])

    def drop_document_chunks(self, doc_id: str, strategy_ids: Iterable[str] | None = None) -> None:
        """Remove chunks and completion records of a document: all of them, or some strategies'.
        Their text-keyed vectors move to embedding_cache first: the next version of the document
        shares most of its text with this one."""
        for sid in [None] if strategy_ids is None else strategy_ids:
            where = "doc_id = ?" + ("" if sid is None else " AND strategy_id = ?")
            params = [doc_id] if sid is None else [doc_id, sid]
            self._retire_vectors(f"(SELECT chunk_id FROM chunks WHERE {where})", params)
            self.con.execute("DELETE FROM memory_embeddings WHERE memory_id IN "
                             f"(SELECT memory_id FROM memories WHERE {where})", params)
            self.con.execute(f"DELETE FROM memories WHERE {where}", params)
            self.con.execute(f"DELETE FROM chunks WHERE {where}", params)
            self.con.execute(f"DELETE FROM document_strategies WHERE {where}", params)

    def _retire_vectors(self, chunk_ids_sql: str, params: Sequence[Any]) -> None:
        """Delete the chunks' vectors, keeping the text-keyed ones in embedding_cache."""
        self.con.execute(
            "INSERT INTO embedding_cache SELECT e.model_id, e.text_sha256, any_value(e.vec) FROM embeddings e "
            f"WHERE e.chunk_id IN {chunk_ids_sql} AND e.text_sha256 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
            "embedding_cache c WHERE c.model_id = e.model_id AND c.text_sha256 = e.text_sha256) GROUP BY 1, 2",
            params)
        self.con.execute(f"DELETE FROM embeddings WHERE chunk_id IN {chunk_ids_sql}", params)

    def update_enrichment(self, old: Sequence[Chunk], new: Sequence[Chunk]) -> None:
        """Write re-enriched chunks (same ids, new metadata and embed_text). A chunk whose embedded
        text changed loses its vectors (the embedding stage gives it new ones; the old text's vector
        stays in the cache), and its metadata block row is replaced with its vector."""
        from chunkctl.store.memory import put_memories

        for o, n in zip(old, new):
            if o.metadata != n.metadata or o.embed_text != n.embed_text:
                self.con.execute("UPDATE chunks SET metadata = ?, embed_text = ? WHERE chunk_id = ?",
                                 [json.dumps(n.metadata, sort_keys=True) if n.metadata else None, n.embed_text,
                                  n.chunk_id])
        changed = [n.chunk_id for o, n in zip(old, new) if (o.embed_text or o.text) != (n.embed_text or n.text)]
        if changed:
            self._retire_vectors("(SELECT unnest(?))", [changed])
        ids = [n.chunk_id for n in new]
        self.con.execute("DELETE FROM memory_embeddings WHERE memory_id IN (SELECT memory_id FROM memories WHERE "
                         "layer = 'metadata' AND chunk_id IN (SELECT unnest(?)))", [ids])
        self.con.execute("DELETE FROM memories WHERE layer = 'metadata' AND chunk_id IN (SELECT unnest(?))", [ids])
        put_memories(self, new, layers=("metadata",))

    def put_chunks(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            return
        import pyarrow as pa

        table = pa.table({
            "chunk_id": [c.chunk_id for c in chunks],
            "doc_id": [c.doc_id for c in chunks],
            "strategy_id": [c.strategy_id for c in chunks],
            "seq": pa.array([c.seq for c in chunks], pa.int32()),
            "char_start": pa.array([c.char_start for c in chunks], pa.int64()),
            "char_end": pa.array([c.char_end for c in chunks], pa.int64()),
            "text": [c.text for c in chunks],
            "n_tokens": pa.array([c.n_tokens for c in chunks], pa.int32()),
            "page_start": pa.array([c.page_start for c in chunks], pa.int32()),
            "page_end": pa.array([c.page_end for c in chunks], pa.int32()),
            "heading_path": pa.array([list(c.heading_path) for c in chunks], pa.list_(pa.string())),
            "metadata": [json.dumps(c.metadata, sort_keys=True) if c.metadata else None for c in chunks],
            "embed_text": pa.array([c.embed_text for c in chunks], pa.string()),
        })
        self.con.register("_chunk_batch", table)
        try:
            self.con.execute("INSERT INTO chunks BY NAME SELECT * FROM _chunk_batch")
        finally:
            self.con.unregister("_chunk_batch")

    def mark_done(self, doc_id: str, strategy_id: str, sha256: str, n_chunks: int,
                  enrichment: str | None = None) -> None:
        self.con.execute("DELETE FROM document_strategies WHERE doc_id = ? AND strategy_id = ?", [doc_id, strategy_id])
        self.con.execute("INSERT INTO document_strategies VALUES (?, ?, ?, ?, ?, ?)",
                         [doc_id, strategy_id, sha256, n_chunks, _now(), enrichment])

    def mark_enriched(self, doc_id: str, strategy_id: str, enrichment: str | None) -> None:
        self.con.execute("UPDATE document_strategies SET enrichment = ? WHERE doc_id = ? AND strategy_id = ?",
                         [enrichment, doc_id, strategy_id])

    def delete_document(self, doc_id: str) -> None:
        self.drop_document_chunks(doc_id)
        self.con.execute("DELETE FROM documents WHERE doc_id = ?", [doc_id])

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """``delete_document`` for many documents in a few set-based statements (``chunkctl load``)."""
        import pyarrow as pa

        self.con.register("_doc_ids", pa.table({"doc_id": pa.array(list(doc_ids), pa.string())}))
        try:
            where = "doc_id IN (SELECT doc_id FROM _doc_ids)"
            self._retire_vectors(f"(SELECT chunk_id FROM chunks WHERE {where})", [])
            self.con.execute("DELETE FROM memory_embeddings WHERE memory_id IN "
                             f"(SELECT memory_id FROM memories WHERE {where})")
            for table in ("memories", "chunks", "document_strategies", "documents"):
                self.con.execute(f"DELETE FROM {table} WHERE {where}")
        finally:
            self.con.unregister("_doc_ids")

    # -- runs -----------------------------------------------------------------------------
    def start_run(self, run_id: str, command: str) -> None:
        self.con.execute("INSERT INTO runs VALUES (?, ?, NULL, ?, NULL)", [run_id, _now(), command])

    def finish_run(self, run_id: str, stats: dict[str, Any]) -> None:
        self.con.execute("UPDATE runs SET finished_at = ?, stats = ? WHERE run_id = ?",
                         [_now(), json.dumps(stats, sort_keys=True, default=str), run_id])

    def put_rejects(self, run_id: str, rejects: Sequence[Reject]) -> None:
        if rejects:
            self.con.executemany("INSERT INTO rejects VALUES (?, ?, ?, ?)",
                                 [[run_id, r.path, r.stage, r.reason] for r in rejects])


def export_parquet(store: Store, out_dir: str | Path, tables: Sequence[str] = TABLES) -> list[Path]:
    """Each table as ``DIR/<table>.parquet`` via DuckDB's COPY."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        target = out / f"{table}.parquet"
        store.con.execute(f"COPY {table} TO '{_sql_str(str(target))}' (FORMAT parquet, COMPRESSION zstd)")
        written.append(target)
    return written


def _sql_str(s: str) -> str:
    return s.replace("'", "''")
