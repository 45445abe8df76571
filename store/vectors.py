"""Vectors in the store: the embedding stage's writes (with the text-hash cache) and search by
exact cosine, BM25 (DuckDB's fts extension, loaded from its PyPI wheel) or both fused by RRF."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from chunkctl.store.db import Store
from chunkctl.store.extensions import load_extensions

MODES = ("vector", "bm25", "hybrid")
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.), as most hybrid retrievers use


@dataclass
class EmbedResult:
    model_id: str
    chunks: int = 0      # chunks that got a vector in this run
    embedded: int = 0    # distinct texts sent to the model
    cached: int = 0      # chunks whose vector came from the cache
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "chunks": self.chunks, "embedded": self.embedded,
                "cached": self.cached, "seconds": round(self.seconds, 3)}


def _vec_column(matrix):
    import pyarrow as pa

    n, dim = matrix.shape
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim).cast(pa.list_(pa.float32()))


def ensure_model(store: Store, model_id: str, dim: int) -> None:
    row = store.query("SELECT dim FROM embedding_models WHERE model_id = ?", [model_id])
    if not row:
        store.con.execute("INSERT INTO embedding_models VALUES (?, ?, now())", [model_id, dim])
    elif row[0][0] != dim:
        raise ValueError(f"model {model_id} has {row[0][0]}-dimensional vectors in this store; "
                         f"this embedder gives {dim}: one model id cannot mix dimensions")


def embed_chunks(store: Store, embedder, strategy: str | None = None, batch: int = 512,
                 on_batch: Callable[[int, int], None] | None = None) -> EmbedResult:
    """Give every chunk (of one strategy, or all) without a vector for ``embedder.model_id`` one.
    Texts already in the cache are not embedded again; each batch commits on its own, so a killed
    run keeps its finished batches and a re-run continues."""
    import numpy as np
    import pyarrow as pa

    t0 = time.perf_counter()
    res = EmbedResult(embedder.model_id)
    with store.transaction():
        ensure_model(store, embedder.model_id, embedder.dim)
    todo = store.query(
        "SELECT c.chunk_id, c.text FROM chunks c WHERE (? IS NULL OR c.strategy_id = ?) AND NOT EXISTS "
        "(SELECT 1 FROM embeddings e WHERE e.chunk_id = c.chunk_id AND e.model_id = ?) ORDER BY c.chunk_id",
        [strategy, strategy, embedder.model_id])
    for s in range(0, len(todo), batch):
        rows = todo[s:s + batch]
        shas = [hashlib.sha256(text.encode()).hexdigest() for _, text in rows]
        hits = dict(store.query("SELECT text_sha256, vec FROM embedding_cache WHERE model_id = ? "
                                "AND text_sha256 IN (SELECT unnest(?))", [embedder.model_id, sorted(set(shas))]))
        new: dict[str, str] = {}
        for (_, text), sha in zip(rows, shas):
            if sha not in hits:
                new.setdefault(sha, text)
        vectors = dict(zip(new, embedder.embed(list(new.values())))) if new else {}
        matrix = np.stack([vectors[h] if h in vectors else np.asarray(hits[h], dtype=np.float32) for h in shas])
        with store.transaction():
            if vectors:
                store.con.register("_cache_batch", pa.table({
                    "model_id": [embedder.model_id] * len(vectors), "text_sha256": list(vectors),
                    "vec": _vec_column(np.stack(list(vectors.values())))}))
                store.con.execute("INSERT INTO embedding_cache SELECT * FROM _cache_batch")
                store.con.unregister("_cache_batch")
            store.con.register("_vec_batch", pa.table({
                "chunk_id": [cid for cid, _ in rows], "model_id": [embedder.model_id] * len(rows),
                "vec": _vec_column(matrix)}))
            store.con.execute("INSERT INTO embeddings SELECT * FROM _vec_batch")
            store.con.unregister("_vec_batch")
        res.chunks += len(rows)
        res.embedded += len(vectors)
        res.cached += sum(1 for h in shas if h not in vectors)
        on_batch and on_batch(s + len(rows), len(todo))
    res.seconds = time.perf_counter() - t0
    return res


@dataclass
class Hit:
    chunk_id: str
    score: float
    path: str = ""
    seq: int = 0
    char_start: int = 0
    char_end: int = 0
    page_start: int | None = None
    page_end: int | None = None
    heading_path: list[str] = field(default_factory=list)
    text: str = ""


def _vector_ranks(store: Store, query_vec, model_id: str, strategy: str | None, k: int) -> list[tuple[str, float]]:
    return store.query(
        "SELECT e.chunk_id, list_cosine_similarity(e.vec, ?::FLOAT[]) AS score FROM embeddings e "
        "JOIN chunks c USING (chunk_id) WHERE e.model_id = ? AND (? IS NULL OR c.strategy_id = ?) "
        "ORDER BY score DESC, e.chunk_id LIMIT ?", [list(map(float, query_vec)), model_id, strategy, strategy, k])


def _fts_table(store: Store, strategy: str | None) -> str:
    """A BM25 index over the chunks of one strategy (so IDF is that strategy's, not a mix of
    overlapping strategies), rebuilt only when those chunks changed."""
    name = "fts_" + hashlib.blake2b((strategy or "*").encode(), digest_size=4).hexdigest()
    fingerprint = str(store.query("SELECT count(*), coalesce(sum(hash(chunk_id)), 0) FROM chunks "
                                  "WHERE ? IS NULL OR strategy_id = ?", [strategy, strategy])[0])
    if store.query("SELECT fingerprint FROM fts_indexes WHERE name = ?", [name]) != [(fingerprint,)]:
        with store.transaction():
            store.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT chunk_id, text FROM chunks "
                              "WHERE ? IS NULL OR strategy_id = ?", [strategy, strategy])
            store.con.execute(f"PRAGMA create_fts_index('{name}', 'chunk_id', 'text', overwrite = 1)")
            store.con.execute("DELETE FROM fts_indexes WHERE name = ?", [name])
            store.con.execute("INSERT INTO fts_indexes VALUES (?, ?, ?)", [name, strategy, fingerprint])
    return name


def _bm25_ranks(store: Store, query: str, strategy: str | None, k: int) -> list[tuple[str, float]]:
    load_extensions(store.con, ["fts"])
    table = _fts_table(store, strategy)
    return store.query(f"SELECT chunk_id, score FROM (SELECT chunk_id, fts_main_{table}.match_bm25(chunk_id, ?) "
                       f"AS score FROM {table}) WHERE score IS NOT NULL ORDER BY score DESC, chunk_id LIMIT ?",
                       [query, k])


def rrf(rankings: Sequence[Sequence[tuple[str, float]]], k: int) -> list[tuple[str, float]]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, (cid, _) in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def search(store: Store, query: str, k: int = 10, mode: str = "vector", strategy: str | None = None,
           embedder=None) -> list[Hit]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if strategy is not None:  # accept a strategy name when it is unambiguous
        ids = [r[0] for r in store.query("SELECT strategy_id FROM strategies WHERE strategy_id = ? OR name = ?",
                                         [strategy, strategy])]
        if len(ids) != 1:
            raise ValueError(f"--strategy {strategy!r} matches {len(ids)} stored strategies")
        strategy = ids[0]
    vector = bm25 = []
    if mode in ("vector", "hybrid"):
        if embedder is None:
            raise ValueError("vector search needs an embedder")
        vector = _vector_ranks(store, embedder.embed([query])[0], embedder.model_id, strategy,
                               k if mode == "vector" else max(4 * k, 50))
    if mode in ("bm25", "hybrid"):
        bm25 = _bm25_ranks(store, query, strategy, k if mode == "bm25" else max(4 * k, 50))
    ranked = vector if mode == "vector" else bm25 if mode == "bm25" else rrf([vector, bm25], k)
    if not ranked:
        return []
    info = {r[0]: r[1:] for r in store.query(
        "SELECT c.chunk_id, d.path, c.seq, c.char_start, c.char_end, c.page_start, c.page_end, c.heading_path, "
        "c.text FROM chunks c JOIN documents d USING (doc_id) WHERE c.chunk_id IN (SELECT unnest(?))",
        [[cid for cid, _ in ranked]])}
    return [Hit(cid, float(score), *info[cid]) for cid, score in ranked if cid in info]
