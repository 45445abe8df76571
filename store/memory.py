"""MoM's three-layer document memory in the store, and retrieval over it. The same table holds
an enriched chunk's metadata block (layer ``metadata``), which fusion reads (``store/fusion.py``).

A MoM chunk carries its outline entry and its core content in ``metadata`` (``outline``, ``core``);
``put_memories`` writes them as rows of ``memories`` (one per entry, linked to the document and to
the atomic chunk), in the chunks' transaction, so the layers never disagree with the chunks.
Each entry is embedded (``memory_embeddings``) by the same model as the chunks.

Two ways to search them (``--memory``):

- ``mixed``: one index over chunks, outline entries and core contents together (the authors' code).
  A chunk hit is itself; an outline or core hit stands for its whole document, whose chunks join the
  candidates. The authors rerank the union with a cross-encoder; chunkctl has none offline, so the
  candidates are ranked by their own similarity to the query (the embedder is the reranker).
- ``per-layer``: retrieve from each layer apart (chunks, outlines, cores), map each memory hit to its
  chunk, and fuse the three rankings by reciprocal rank (what the paper's theory argues for: a
  global question matches an outline, a detail question a chunk, each unbiased in its own layer).
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Sequence

from chunkctl.ranking import rrf
from chunkctl.store.db import Store

if TYPE_CHECKING:  # numpy is imported where vectors are used: ingest's start-up does not pay for it
    import numpy as np

LAYERS = ("outline", "core")  # MoM's, which --memory searches
ALL_LAYERS = (*LAYERS, "metadata")  # and the enrichment's metadata block (unified and late fusion)


def memory_id(chunk_id: str, layer: str) -> str:
    return hashlib.blake2b(f"{chunk_id}\0{layer}".encode(), digest_size=8).hexdigest()


def layer_text(chunk, layer: str) -> str | None:
    """A chunk's entry in a layer: MoM's outline and core, or its enrichment's metadata block."""
    value = (chunk.metadata.get("embed") or {}).get("block") if layer == "metadata" else chunk.metadata.get(layer)
    return value if isinstance(value, str) and value.strip() else None


def put_memories(store: Store, chunks, layers: Sequence[str] = ALL_LAYERS) -> int:
    """Memory rows of the chunks that carry them (MoM's layers, an enrichment's metadata block),
    inside the caller's transaction."""
    rows = [(memory_id(c.chunk_id, layer), c.doc_id, c.strategy_id, c.chunk_id, layer, c.seq, text)
            for c in chunks for layer in layers if (text := layer_text(c, layer)) is not None]
    if rows:
        store.con.executemany("INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def memory_texts(store: Store) -> list[tuple[str, str]]:
    """(memory_id, text) of every memory entry, by id."""
    return store.query("SELECT memory_id, text FROM memories ORDER BY memory_id")


def put_memory_texts(store: Store, entries: Sequence[tuple[str, str]]) -> None:
    """Bare (memory_id, text) entries, only so ``embed_memories`` finds them (an embedding actor's
    store holds no chunks)."""
    store.con.executemany("INSERT INTO memories VALUES (?, '', '', '', '', 0, ?)", list(entries))


def embed_memories(store: Store, embedder, strategy: str | None = None, batch: int = 256) -> int:
    """Give every memory entry without a vector of ``embedder.model_id`` one; returns how many."""
    import numpy as np

    import pyarrow as pa

    from chunkctl.store.vectors import _vec_column, ensure_model

    done = 0
    while rows := store.query(
            "SELECT m.memory_id, m.text FROM memories m WHERE (? IS NULL OR m.strategy_id = ?) AND NOT EXISTS "
            "(SELECT 1 FROM memory_embeddings e WHERE e.memory_id = m.memory_id AND e.model_id = ?) "
            "ORDER BY m.memory_id LIMIT ?", [strategy, strategy, embedder.model_id, batch]):
        matrix = np.asarray(embedder.embed([t for _, t in rows]), dtype=np.float32)
        with store.transaction():
            ensure_model(store, embedder.model_id, matrix.shape[1])
            store.con.register("_mem", pa.table({"memory_id": [m for m, _ in rows],
                                                 "model_id": [embedder.model_id] * len(rows),
                                                 "vec": _vec_column(matrix)}))
            try:
                store.con.execute("INSERT INTO memory_embeddings BY NAME SELECT * FROM _mem")
            finally:
                store.con.unregister("_mem")
        done += len(rows)
    return done


def memory_vectors(store: Store, model_id: str, strategy: str | None, layers: Sequence[str] = LAYERS
                   ) -> tuple[list[str], list[str], np.ndarray]:
    """(chunk_id each entry belongs to, its layer, (n, d) unit vectors) of one strategy's memories
    (all strategies' with None) in ``layers``."""
    import numpy as np

    rows = store.query("SELECT m.chunk_id, m.layer, e.vec FROM memories m JOIN memory_embeddings e USING "
                       "(memory_id) WHERE (? IS NULL OR m.strategy_id = ?) AND e.model_id = ? AND m.layer IN "
                       "(SELECT unnest(?)) ORDER BY m.doc_id, m.seq, m.layer", [strategy, strategy, model_id, list(layers)])
    if not rows:
        return [], [], np.zeros((0, 0), dtype=np.float32)
    return [r[0] for r in rows], [r[1] for r in rows], np.asarray([r[2] for r in rows], dtype=np.float32)


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    import numpy as np

    return np.argsort(-scores, kind="stable")[:depth]


def rank_with_memory(qvecs: np.ndarray, chunk_ids: Sequence[str], chunk_docs: Sequence[str], chunk_vecs: np.ndarray,
                     mem_chunks: Sequence[str], mem_layers: Sequence[str], mem_vecs: np.ndarray, mode: str,
                     depth: int) -> list[list[tuple[str, float]]]:
    """The top ``depth`` (chunk_id, score) per query, by ``mode`` (``mixed`` or ``per-layer``)."""
    import numpy as np

    if mode not in ("mixed", "per-layer"):
        raise ValueError(f"memory mode must be mixed or per-layer, not {mode!r}")
    chunk_scores = qvecs @ chunk_vecs.T
    mem_scores = qvecs @ mem_vecs.T if len(mem_chunks) else np.zeros((len(qvecs), 0))
    pos = {cid: i for i, cid in enumerate(chunk_ids)}
    by_doc: dict[str, list[int]] = {}
    for i, d in enumerate(chunk_docs):
        by_doc.setdefault(d, []).append(i)
    layer_rows = [[j for j, lay in enumerate(mem_layers) if lay == layer] for layer in LAYERS]
    out = []
    for qi in range(len(qvecs)):
        cs = chunk_scores[qi]
        if mode == "mixed":
            nodes = np.concatenate([cs, mem_scores[qi]])
            picked: set[int] = set()
            for j in _top(nodes, depth):
                if j < len(cs):
                    picked.add(int(j))
                elif (c := pos.get(mem_chunks[j - len(cs)])) is not None:
                    picked.update(by_doc[chunk_docs[c]])  # a memory hit brings its document's chunks
            ranked = sorted(picked, key=lambda i: (-cs[i], chunk_ids[i]))[:depth]
            out.append([(chunk_ids[i], float(cs[i])) for i in ranked])
            continue
        rankings = [[chunk_ids[i] for i in _top(cs, depth)]]
        for idx in layer_rows:
            if idx:
                top = _top(mem_scores[qi][idx], depth)
                rankings.append(list(dict.fromkeys(mem_chunks[idx[j]] for j in top)))
        out.append(rrf([[(cid, 0.0) for cid in ranking if cid in pos] for ranking in rankings])[:depth])
    return out
