"""What the commands read about the store's contents, as named operations: documents, completion
records, per-strategy statistics and a document's chunks (``stats``, ``show``, ``eval``,
``enrich``), so no SQL lives above ``store/``."""
from __future__ import annotations

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


def chunk_rows(store: Store, doc_id: str, strategy_id: str) -> list[tuple]:
    """(seq, char_start, char_end, page_start, page_end, n_tokens, heading_path, text) of a
    document's chunks of one strategy, in order."""
    return store.query("SELECT seq, char_start, char_end, page_start, page_end, n_tokens, heading_path, text "
                       "FROM chunks WHERE doc_id = ? AND strategy_id = ? ORDER BY seq", [doc_id, strategy_id])
