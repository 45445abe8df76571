"""Vectors in the store: the embedding stage's writes, each vector once, found again by the hash
of its exact text. What search reads is in ``store/index.py``."""
from __future__ import annotations

import hashlib
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

from chunkctl.store.db import Store

# Chunks per committed batch on a GPU: the model takes 8k chunks in ~0.2 s, so fewer, larger
# DuckDB commits matter more than latency (bench/embed_gpu.py)
GPU_BATCH = 32768


@dataclass
class EmbedResult:
    model_id: str
    chunks: int = 0      # chunks that got a vector in this run: embedded + cached
    embedded: int = 0    # chunks whose text went to the model (one per distinct text)
    cached: int = 0      # chunks that reused a vector: from the cache, or of the same text in this run
    truncated: int = 0   # embedded texts longer than the model's window (their tail is not in the vector)
    seconds: float = 0.0
    memories: int = 0    # MoM memory entries (outline, core) that got a vector

    def as_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "chunks": self.chunks, "embedded": self.embedded,
                "cached": self.cached, "truncated": self.truncated, "seconds": round(self.seconds, 3),
                **({"memories": self.memories} if self.memories else {})}


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


def _insert(store: Store, table: str, columns: dict[str, Any]) -> None:
    import pyarrow as pa

    store.con.register("_batch", pa.table(columns))
    try:
        store.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _batch")
    finally:
        store.con.unregister("_batch")


def put_vectors(store: Store, chunk_ids: Sequence[str], model_id: str, matrix,
                text_sha256: Sequence[str] | None = None) -> None:
    """Vectors for chunks, inside the caller's transaction. ``text_sha256`` (of each chunk's exact
    text) makes them findable by the cache look-up; vectors that depend on more than their text
    (late chunking) go without."""
    ensure_model(store, model_id, matrix.shape[1])
    _insert(store, "embeddings", {"chunk_id": list(chunk_ids), "model_id": [model_id] * len(chunk_ids),
                                  "vec": _vec_column(matrix),
                                  "text_sha256": list(text_sha256) if text_sha256 is not None
                                  else [None] * len(chunk_ids)})


def put_chunk_vectors(store: Store, chunks) -> None:
    """The vectors chunkers computed themselves (late chunking), in the caller's transaction."""
    import numpy as np

    by_model: dict[str, list] = {}
    for c in chunks:
        if c.embedding is not None:
            by_model.setdefault(c.embedding[0], []).append(c)
    for model_id, cs in by_model.items():
        put_vectors(store, [c.chunk_id for c in cs], model_id,
                    np.stack([np.asarray(c.embedding[1], dtype=np.float32) for c in cs]))


@dataclass
class _Batch:
    """One batch of the embedding stage: what the cache already had, and what the model must do."""
    rows: Sequence[tuple[str, str]]
    shas: list[str]
    hits: dict[str, Any]
    new: dict[str, int]  # sha -> first row with that text, for texts not in the cache
    todo: list | None    # token ids of the new texts (None: the embedder takes texts)


def _plan(store: Store, embedder, rows: Sequence[tuple[str, str]], ids=None) -> _Batch:
    shas = [hashlib.sha256(text.encode()).hexdigest() for _, text in rows]
    import pyarrow as pa

    # a registered Arrow table joins in milliseconds; binding 8192 strings as a list parameter takes ~2 s
    # live vectors are found in `embeddings`, those of deleted chunks in `embedding_cache`
    store.con.register("_shas", pa.table({"sha": sorted(set(shas))}))
    try:
        hits = dict(store.query(
            "SELECT sha, any_value(vec) FROM (SELECT e.text_sha256 AS sha, e.vec FROM embeddings e JOIN _shas s "
            "ON e.text_sha256 = s.sha WHERE e.model_id = ? UNION ALL SELECT c.text_sha256, c.vec FROM "
            "embedding_cache c JOIN _shas s ON c.text_sha256 = s.sha WHERE c.model_id = ?) GROUP BY sha",
            [embedder.model_id, embedder.model_id]))
    finally:
        store.con.unregister("_shas")
    new: dict[str, int] = {}
    for i, sha in enumerate(shas):
        if sha not in hits:
            new.setdefault(sha, i)
    if ids is not None:
        todo = [ids[i] for i in new.values()]
    elif hasattr(embedder, "tokenize") and new:  # tokenized here once, so truncation can be counted
        todo = embedder.tokenize([rows[i][1] for i in new.values()])
    else:
        todo = None
    return _Batch(rows, shas, hits, new, todo)


def _compute(embedder, b: _Batch):
    """The model's part: no store access, so it can run on a helper thread."""
    if not b.new:
        return None
    if b.todo is not None:
        return embedder.embed_ids(b.todo)
    return embedder.embed([b.rows[i][1] for i in b.new.values()])


def _write(store: Store, embedder, b: _Batch, matrix, res: EmbedResult) -> None:
    import numpy as np

    vectors = dict(zip(b.new, matrix)) if matrix is not None else {}
    full = np.stack([vectors[h] if h in vectors else np.asarray(b.hits[h], dtype=np.float32) for h in b.shas])
    with store.transaction():
        put_vectors(store, [cid for cid, _ in b.rows], embedder.model_id, full, b.shas)
    res.chunks += len(b.rows)
    res.embedded += len(vectors)
    res.cached += len(b.rows) - len(vectors)  # chunks = embedded + cached, always
    if b.todo is not None:
        res.truncated += sum(len(x) > embedder.max_tokens for x in b.todo)


def embed_rows(store: Store, embedder, rows: Sequence[tuple[str, str]], res: EmbedResult,
               ids: Sequence[Sequence[int]] | None = None) -> None:
    """Give each (chunk_id, text) a vector and commit them: texts in the cache are not embedded
    again; ``ids`` (the chunker's token ids for each text, in the embedder's tokenizer) go straight
    to the model instead of the text."""
    b = _plan(store, embedder, rows, ids)
    _write(store, embedder, b, _compute(embedder, b), res)


def missing_vectors(store: Store, model_id: str, strategy: str | None = None, after: str = "",
                    limit: int = 512) -> list[tuple[str, str]]:
    """The next ``limit`` (chunk_id, text) after ``after`` with no vector of the model: a cursor,
    so a store of millions of chunks is embedded in bounded memory."""
    return store.query(
        "SELECT c.chunk_id, coalesce(c.embed_text, c.text) FROM chunks c WHERE c.chunk_id > ? "
        "AND (? IS NULL OR c.strategy_id = ?) "
        "AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.chunk_id = c.chunk_id AND e.model_id = ?) "
        "ORDER BY c.chunk_id LIMIT ?", [after, strategy, strategy, model_id, limit])


def count_missing(store: Store, model_id: str, strategy: str | None = None) -> int:
    return store.query(
        "SELECT count(*) FROM chunks c WHERE (? IS NULL OR c.strategy_id = ?) AND NOT EXISTS "
        "(SELECT 1 FROM embeddings e WHERE e.chunk_id = c.chunk_id AND e.model_id = ?)",
        [strategy, strategy, model_id])[0][0]


def embed_chunks(store: Store, embedder, strategy: str | None = None, batch: int | None = None,
                 step=None) -> EmbedResult:
    """Give every chunk (of one strategy, or all) without a vector for ``embedder.model_id`` one.
    Each batch commits on its own, so a killed run keeps its finished batches and a re-run continues.
    Progress goes to ``step`` (a ``chunkctl.progress.Step``; by default a new "embed" step)."""
    from chunkctl import progress

    t0 = time.perf_counter()
    res = EmbedResult(embedder.model_id)
    batch = batch or (GPU_BATCH if getattr(embedder, "device", "cpu") == "cuda" else 512)
    total = count_missing(store, embedder.model_id, strategy)
    if not total:
        return res
    with progress.step("embed") if step is None else nullcontext(step) as s:
        s.grow(total)
        after = ""
        while rows := missing_vectors(store, embedder.model_id, strategy, after, batch):
            embed_rows(store, embedder, rows, res)
            s.advance(len(rows))
            store.let_readers_in()
            after = rows[-1][0]
    res.seconds = time.perf_counter() - t0
    return res


def stage_rows(chunks, text: str, ctx, model_id: str, tokenizer: str | None) -> tuple[list, list]:
    """The (chunk_id, text) rows the embedding stage embeds as a document commits, and their token
    ids from the chunkers' tokenization of ``text`` (when the model reads ``tokenizer``'s ids)."""
    rows, ids = [], []
    for c in chunks:
        if c.embedding is not None and c.embedding[0] == model_id:
            continue  # the chunker computed it (late chunking) and it is stored already
        if c.embed_text is not None:  # not a span of the text: embedded from its own text
            continue  # at the end (embed_chunks finds it without a vector)
        rows.append((c.chunk_id, c.text))
        if tokenizer is not None:
            ids.append(ctx.tokens(text, tokenizer).ids_in(c.char_start, c.char_end))
    return rows, ids


class EmbedStage:
    """The embedding stage inside ingest: chunks are queued with the token ids their chunker
    computed (tokenize once) and embedded in batches as documents commit; ``finish`` embeds the
    rest, then any chunk still without a vector (a streamed document, or a run killed earlier)."""

    def __init__(self, store: Store, embedder, batch: int | None = None):
        self.store, self.embedder = store, embedder
        self.batch = batch or (GPU_BATCH if getattr(embedder, "device", "cpu") == "cuda" else 256)
        self.result = EmbedResult(embedder.model_id)
        self.rows: list[tuple[str, str]] = []
        self.ids: list[Sequence[int]] = []
        self._pool = None
        self._inflight = None  # (batch, future of its vectors, start time)
        self.step = None  # a chunkctl.progress.Step the caller opened: queued chunks grow it, writes advance it
        tok = getattr(embedder, "tokenizer", None)
        self.tokenizer = tok if tok is not None and hasattr(embedder, "embed_ids") else None

    def add(self, chunks, text: str, ctx) -> None:
        """Queue committed chunks of the document ``text`` that have no vector of this model yet;
        ``ctx`` (the chunkers' context) still holds the document's tokenization."""
        rows, ids = stage_rows(chunks, text, ctx, self.embedder.model_id, self.tokenizer)
        if self.step is not None and rows:
            self.step.grow(len(rows))
        self.rows += rows
        self.ids += ids
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Hand the queued chunks to the model on a helper thread, so the GPU (or the CPU's other
        core) embeds them while the main thread parses and chunks the next documents. The previous
        batch is written first: its texts are in the cache before this batch looks there."""
        self._write_previous()
        if self.rows:
            b = _plan(self.store, self.embedder, self.rows, self.ids if self.tokenizer else None)
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="embed")
            self._inflight = (b, self._pool.submit(_compute, self.embedder, b), time.perf_counter())
            self.rows, self.ids = [], []

    def _write_previous(self) -> None:
        if self._inflight is not None:
            b, future, t0 = self._inflight
            self._inflight = None
            _write(self.store, self.embedder, b, future.result(), self.result)
            self.result.seconds += time.perf_counter() - t0
            if self.step is not None:
                self.step.advance(len(b.rows))
            self.store.let_readers_in()

    def abandon(self) -> None:
        """An interrupted run: drop the batch being embedded without waiting for it (its chunks
        have no vector yet; the next run's ``finish`` embeds them)."""
        self._inflight = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def finish(self) -> EmbedResult:
        self.flush()
        self._write_previous()
        if self._pool is not None:
            self._pool.shutdown()
        rest = embed_chunks(self.store, self.embedder, step=self.step)
        for k in ("chunks", "embedded", "cached", "truncated", "seconds"):
            setattr(self.result, k, getattr(self.result, k) + getattr(rest, k))
        from chunkctl.store.memory import embed_memories

        self.result.memories = embed_memories(self.store, self.embedder)
        return self.result
