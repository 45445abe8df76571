"""What retrieval reads from the store, as named operations: a strategy's chunk table, its vectors
as one matrix, the BM25 index (DuckDB's fts extension, loaded from its PyPI wheel), the HNSW index
(vss), and the rows a result is shown with. The ranking itself lives in ``chunkctl.retrieval``."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Sequence

from chunkctl.store.db import Store
from chunkctl.store.extensions import load_extensions

if TYPE_CHECKING:
    import numpy as np


def resolve_strategy(store: Store, strategy: str | None) -> str | None:
    """A strategy id from an id or an unambiguous name (None: every strategy)."""
    if strategy is None:
        return None
    ids = [r[0] for r in store.query("SELECT strategy_id FROM strategies WHERE strategy_id = ? OR name = ?",
                                     [strategy, strategy])]
    if len(ids) != 1:
        raise ValueError(f"--strategy {strategy!r} matches {len(ids)} stored strategies")
    return ids[0]


def searchable_strategies(store: Store) -> list[tuple[str, str, int]]:
    """(strategy_id, name, documents) of every strategy with chunks, the most documents first, then
    the most recently written."""
    return store.query(
        "SELECT d.strategy_id, any_value(s.name), count(DISTINCT d.doc_id) FROM document_strategies d "
        "JOIN strategies s USING (strategy_id) GROUP BY 1 ORDER BY 3 DESC, max(d.chunked_at) DESC, 1")


_TABLE_ORDER = "WHERE ? IS NULL OR strategy_id = ? ORDER BY doc_id, strategy_id, seq"


def chunk_table(store: Store, strategy: str | None) -> list[tuple[str, str, str, int, int, int | None]]:
    """(chunk_id, doc_id, strategy_id, char_start, char_end, n_tokens) of one strategy's chunks
    (every strategy's with None), in document order."""
    return store.query("SELECT chunk_id, doc_id, strategy_id, char_start, char_end, n_tokens FROM chunks "
                       + _TABLE_ORDER, [strategy, strategy])


def chunk_texts(store: Store, strategy: str | None) -> list[str]:
    """The texts of ``chunk_table``'s chunks, in its order (read only where they are needed)."""
    return [r[0] for r in store.query("SELECT text FROM chunks " + _TABLE_ORDER, [strategy, strategy])]


def vector_matrix(store: Store, model_id: str, strategy: str | None) -> tuple[list[str], np.ndarray]:
    """(chunk ids, (n, d) float32 unit vectors) of the model's vectors for a strategy's chunks."""
    import numpy as np

    tab = store.con.execute("SELECT e.chunk_id, e.vec FROM embeddings e JOIN chunks c USING (chunk_id) "
                            "WHERE e.model_id = ? AND (? IS NULL OR c.strategy_id = ?)",
                            [model_id, strategy, strategy]).arrow()
    tab = tab.read_all() if hasattr(tab, "read_all") else tab
    ids = tab.column("chunk_id").to_pylist()
    if not ids:
        return [], np.zeros((0, 0), dtype=np.float32)
    flat = tab.column("vec").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return ids, flat.reshape(len(ids), -1).astype(np.float32, copy=False)


def has_vectors(store: Store, model_id: str) -> bool:
    return bool(store.query("SELECT 1 FROM embeddings WHERE model_id = ? LIMIT 1", [model_id]))


def _fingerprint(store: Store, sql: str, params: Sequence[Any]) -> str:
    return str(store.query(f"SELECT count(*), coalesce(sum(hash(chunk_id)), 0) FROM ({sql})", params)[0])


def _fresh(store: Store, name: str, fingerprint: str) -> bool:
    return store.query("SELECT fingerprint FROM fts_indexes WHERE name = ?", [name]) == [(fingerprint,)]


def _record(store: Store, name: str, strategy: str | None, fingerprint: str) -> None:
    store.con.execute("DELETE FROM fts_indexes WHERE name = ?", [name])
    store.con.execute("INSERT INTO fts_indexes VALUES (?, ?, ?)", [name, strategy, fingerprint])


def hnsw_ranks(store: Store, query_vec, model_id: str, strategy: str | None, k: int) -> list[tuple[str, float]]:
    """The top ``k`` (chunk_id, cosine) from an HNSW index (DuckDB vss) over one model's vectors,
    rebuilt only when they changed. Persisting it in a file needs vss's experimental persistence
    flag: the index is derived data, rebuilt from ``embeddings`` whenever its fingerprint is stale."""
    load_extensions(store.con, ["vss"])
    store.con.execute("SET hnsw_enable_experimental_persistence = true")
    q = list(map(float, query_vec))
    dim = len(q)
    name = "hnsw_" + hashlib.blake2b(model_id.encode(), digest_size=4).hexdigest()
    fingerprint = _fingerprint(store, "SELECT chunk_id FROM embeddings WHERE model_id = ?", [model_id])
    if not _fresh(store, name, fingerprint):
        with store.transaction():
            store.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT chunk_id, vec::FLOAT[{dim}] AS vec "
                              "FROM embeddings WHERE model_id = ?", [model_id])
            store.con.execute(f"CREATE INDEX {name}_idx ON {name} USING HNSW (vec) WITH (metric = 'cosine')")
            _record(store, name, None, fingerprint)
    # the index answers an ORDER BY ... LIMIT without a filter: fetch more, then keep the strategy's
    fetch = k if strategy is None else 10 * k
    rows = store.query(f"SELECT h.chunk_id, 1 - array_cosine_distance(h.vec, ?::FLOAT[{dim}]) AS score "
                       f"FROM {name} h ORDER BY array_cosine_distance(h.vec, ?::FLOAT[{dim}]) LIMIT ?",
                       [q, q, fetch])
    if strategy is not None:
        keep = {r[0] for r in store.query("SELECT chunk_id FROM chunks WHERE strategy_id = ? AND chunk_id IN "
                                          "(SELECT unnest(?))", [strategy, [r[0] for r in rows]])}
        rows = [r for r in rows if r[0] in keep]
    return rows[:k]


# What separates BM25 terms: fts's default pattern less its digits, so numbers (years, amounts,
# versions) are terms too (+1.5 to 3 recall points on Chroma's benchmark, where the default drops
# them); letters of every script stay, accents are stripped and case folded.
FTS_IGNORE = r"""[!@#$%^&*()_+={}\[\]:;<>,.?~\\/\|'"`‘’“”–—-]+"""


def _fts_table(store: Store, strategy: str | None) -> str:
    """A BM25 index over the chunks of one strategy (so IDF is that strategy's, not a mix of
    overlapping strategies), rebuilt only when those chunks (or the tokenisation) changed. Terms:
    runs between ``FTS_IGNORE`` characters and whitespace, English stop words removed, Porter stems."""
    load_extensions(store.con, ["fts"])
    name = "fts_" + hashlib.blake2b((strategy or "*").encode(), digest_size=4).hexdigest()
    fingerprint = FTS_IGNORE + _fingerprint(store, "SELECT chunk_id FROM chunks WHERE ? IS NULL OR strategy_id = ?",
                                            [strategy, strategy])
    if not _fresh(store, name, fingerprint):
        with store.transaction():
            store.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT chunk_id, text FROM chunks "
                              "WHERE ? IS NULL OR strategy_id = ?", [strategy, strategy])
            store.con.execute(f"PRAGMA create_fts_index('{name}', 'chunk_id', 'text', stemmer = 'porter', "
                              f"stopwords = 'english', ignore = '{FTS_IGNORE.replace(chr(39), chr(39) * 2)}', "
                              "overwrite = 1)")
            _record(store, name, strategy, fingerprint)
    return name


def bm25_ranks(store: Store, queries: Sequence[str], strategy: str | None, k: int, k1: float,
               b: float) -> list[list[tuple[str, float]]]:
    """The top ``k`` (chunk_id, BM25 score) of each query; chunks sharing no term are never listed."""
    table = _fts_table(store, strategy)
    sql = (f"SELECT chunk_id, score FROM (SELECT chunk_id, fts_main_{table}.match_bm25(chunk_id, ?, k := ?, "
           f"b := ?) AS score FROM {table}) WHERE score IS NOT NULL ORDER BY score DESC, chunk_id LIMIT ?")
    return [store.query(sql, [q, float(k1), float(b), k]) if q.strip() else [] for q in queries]


def bm25_terms(store: Store, strategy: str | None, text: str, query: bool = False) -> list[str]:
    """``text``'s terms as the BM25 index sees a chunk (stop words removed, then stemmed) or, with
    ``query``, a query (stemmed, stop words kept: a stop word still matches another word's stem,
    as "last" matches "lasting"): for tests and tools."""
    table = _fts_table(store, strategy)
    return [r[0] for r in store.query(
        f"SELECT stem(t, 'porter') FROM (SELECT unnest(fts_main_{table}.tokenize(?)) AS t) "
        f"WHERE t <> '' AND (? OR t NOT IN (SELECT sw FROM fts_main_{table}.stopwords))", [text, query])]


def documents_text(store: Store, doc_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{doc_id: (path, text)} for the given documents."""
    return {r[0]: (r[1], r[2]) for r in store.query(
        "SELECT doc_id, path, text FROM documents WHERE doc_id IN (SELECT unnest(?))", [list(doc_ids)])}


def chunk_details(store: Store, chunk_ids: Sequence[str]) -> dict[str, tuple[int | None, int | None, list[str]]]:
    """{chunk_id: (page_start, page_end, heading_path)}: what a result shows beside its text."""
    return {r[0]: (r[1], r[2], r[3]) for r in store.query(
        "SELECT chunk_id, page_start, page_end, heading_path FROM chunks WHERE chunk_id IN (SELECT unnest(?))",
        [list(chunk_ids)])}
