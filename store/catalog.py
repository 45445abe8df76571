"""What the commands read about the store's contents, as named operations: documents, completion
records, per-strategy statistics and a document's chunks (``stats``, ``show``, ``eval``,
``enrich``), so no SQL lives above ``store/``."""
from __future__ import annotations

import json
from typing import Any

from chunkctl.store.db import Store


def documents(store: Store, with_text: bool = False) -> list[tuple]:
    """(doc_id, path) of every document, or (doc_id, path, text) ``with_text``."""
    return store.query(f"SELECT doc_id, path{', text' if with_text else ''} FROM documents")


def completion_records(store: Store) -> list[tuple[str, str, str | None, str]]:
    """(doc_id, strategy_id, enrichment id, strategy name) of every document's completed strategy."""
    return store.query("SELECT d.doc_id, d.strategy_id, d.enrichment, s.name FROM document_strategies d "
                       "JOIN strategies s USING (strategy_id) ORDER BY d.doc_id, d.strategy_id")


def has_chunks(store: Store, strategy_id: str) -> bool:
    return bool(store.query("SELECT 1 FROM chunks WHERE strategy_id = ? LIMIT 1", [strategy_id]))


def count_rows(store: Store, table: str) -> int:
    if table not in {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}:
        raise ValueError(f"no table {table!r} in the store")
    return store.query(f"SELECT count(*) FROM {table}")[0][0]


def count_trimmed(store: Store, strategy_id: str) -> int:
    """Chunks of a strategy whose metadata block was shortened to fit the embedder's window."""
    return store.query("SELECT count(*) FROM chunks WHERE strategy_id = ? AND json_exists(metadata, "
                       "'$.embed.dropped')", [strategy_id])[0][0]


def summary(store: Store) -> dict[str, Any]:
    """Documents, characters, rejects of the last run, and per strategy: documents, chunks, the
    distribution of chunk sizes in tokens and the share of chunks with a page range."""
    docs, chars = store.query("SELECT count(*), coalesce(sum(n_chars), 0) FROM documents")[0]
    rows = store.query("""
        SELECT c.strategy_id, any_value(s.name), count(DISTINCT c.doc_id), count(*),
               min(c.n_tokens), quantile_disc(c.n_tokens, 0.5), round(avg(c.n_tokens), 1),
               quantile_disc(c.n_tokens, 0.95), max(c.n_tokens),
               round(count(c.page_start) * 100.0 / count(*), 1)
        FROM chunks c LEFT JOIN strategies s USING (strategy_id)
        GROUP BY c.strategy_id ORDER BY c.strategy_id""")
    rejects = store.query("SELECT count(*) FROM rejects WHERE run_id = "
                          "(SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)")[0][0]
    return {"documents": docs, "chars": chars, "last_run_rejects": rejects, "strategies": rows}


def strategies_of(store: Store, doc_id: str, strategy: str | None) -> list[str]:
    """The strategy ids with chunks of a document (only ``strategy``, an id or a name, when given)."""
    return [r[0] for r in store.query(
        "SELECT DISTINCT c.strategy_id FROM chunks c JOIN strategies s USING (strategy_id) "
        "WHERE doc_id = ? AND (? IS NULL OR c.strategy_id = ? OR s.name = ?) ORDER BY 1",
        [doc_id, strategy, strategy, strategy])]


CHUNK_COLUMNS = ("seq", "char_start", "char_end", "page_start", "page_end", "n_tokens", "heading_path", "text",
                 "chunk_id", "metadata", "embed_text")


def chunk_rows(store: Store, doc_id: str, strategy_id: str, first: int = 0, last: int | None = None) -> list[tuple]:
    """CHUNK_COLUMNS of a document's chunks of one strategy with ``first <= seq <= last``, in order
    (metadata as a dict, or None)."""
    rows = store.query(f"SELECT {', '.join(CHUNK_COLUMNS)} FROM chunks WHERE doc_id = ? AND strategy_id = ? "
                       "AND seq >= ? AND (? IS NULL OR seq <= ?) ORDER BY seq",
                       [doc_id, strategy_id, first, last, last])
    return [(*r[:9], json.loads(r[9]) if r[9] else None, r[10]) for r in rows]


def count_chunks(store: Store, doc_id: str, strategy_id: str) -> int:
    return store.query("SELECT count(*) FROM chunks WHERE doc_id = ? AND strategy_id = ?", [doc_id, strategy_id])[0][0]


def document_list(store: Store) -> list[dict[str, Any]]:
    """Every document: id, path, characters, pages, when ingested, and its chunks per strategy."""
    rows = store.query("""
        SELECT d.doc_id, d.path, d.n_chars, d.mime, d.ingested_at,
               coalesce(json_array_length(d.metadata, '$.page_spans'), 0),
               (SELECT list(struct_pack(strategy_id := s.strategy_id, chunks := s.n_chunks) ORDER BY s.strategy_id)
                FROM document_strategies s WHERE s.doc_id = d.doc_id)
        FROM documents d ORDER BY d.path""")
    return [{"doc_id": r[0], "path": r[1], "chars": r[2], "mime": r[3], "ingested_at": r[4], "pages": r[5],
             "chunks": {x["strategy_id"]: x["chunks"] for x in r[6] or []}} for r in rows]


def reject_rows(store: Store, all_runs: bool = False) -> list[dict[str, Any]]:
    """The rejects of the latest run that has any (of every run with ``all_runs``), newest first."""
    where = "" if all_runs else ("WHERE j.run_id = (SELECT r2.run_id FROM runs r2 JOIN rejects j2 USING (run_id) "
                                 "ORDER BY r2.started_at DESC LIMIT 1)")
    rows = store.query("SELECT j.run_id, r.started_at, r.command, j.path, j.stage, j.reason FROM rejects j "
                       f"LEFT JOIN runs r USING (run_id) {where} ORDER BY r.started_at DESC, j.path")
    return [dict(zip(("run_id", "started_at", "command", "path", "stage", "reason"), r)) for r in rows]


def strategy_list(store: Store) -> list[dict[str, Any]]:
    """Every strategy: id, name, parameters, documents and chunks stored."""
    rows = store.query("""
        SELECT s.strategy_id, s.name, s.params, count(DISTINCT d.doc_id), coalesce(sum(d.n_chunks), 0)
        FROM strategies s LEFT JOIN document_strategies d USING (strategy_id)
        GROUP BY ALL ORDER BY s.strategy_id""")
    return [{"strategy_id": r[0], "name": r[1], "params": json.loads(r[2]) if r[2] else {}, "documents": r[3],
             "chunks": int(r[4])} for r in rows]


def drop_strategy(store: Store, strategy_id: str) -> int:
    """Remove a strategy: its chunks (their vectors kept in the cache), memories, completion records
    and its row, in one transaction. Returns the chunks removed."""
    n = store.query("SELECT count(*) FROM chunks WHERE strategy_id = ?", [strategy_id])[0][0]
    docs = [r[0] for r in store.query("SELECT DISTINCT doc_id FROM chunks WHERE strategy_id = ? UNION "
                                      "SELECT doc_id FROM document_strategies WHERE strategy_id = ?",
                                      [strategy_id, strategy_id])]
    with store.transaction():
        for doc_id in docs:
            store.drop_document_chunks(doc_id, [strategy_id])
        store.con.execute("DELETE FROM strategies WHERE strategy_id = ?", [strategy_id])
    return n


def remove_documents(store: Store, doc_ids: list[str]) -> None:
    """Remove documents with their chunks, memories and vectors (kept in the cache), in one transaction."""
    with store.transaction():
        store.delete_documents(doc_ids)
