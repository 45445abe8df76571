"""RAGMate's dual-encoder retrieval over a chunk's text vector and its metadata-block vector.

- ``unified``: one vector per chunk, normalise(α·e(text) + (1−α)·e(metadata)), scored by cosine;
- ``late``: α·cos(q, e(text)) + (1−α)·cos(q, e(metadata)), two similarities fused at search time.

Both read the same two stored sets: the chunks' vectors (``embeddings``) and the metadata blocks'
(``memories`` rows of layer ``metadata``, ``memory_embeddings``), so α can change without
re-embedding anything; the unified vector is formed at search time, which gives exactly the
scores a stored unified index would. A chunk without a metadata block has a zero metadata vector
(RAGMate's "missing side"): under ``late`` that side contributes 0, as its default distance of 1.0
does in the authors' code. The text vector should be of the text alone (``--embed-format plain``),
as in the paper; with a prefix it already holds metadata once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from chunkctl.store.db import Store

if TYPE_CHECKING:
    import numpy as np


def fusion_scores(qvecs: np.ndarray, text_vecs: np.ndarray, meta_vecs: np.ndarray, fusion: str,
                  alpha: float) -> np.ndarray:
    """(queries × chunks) scores; rows of ``meta_vecs`` may be zero (no metadata)."""
    import numpy as np

    if fusion == "unified":
        u = alpha * text_vecs + (1.0 - alpha) * meta_vecs
        norms = np.linalg.norm(u, axis=1, keepdims=True)
        return qvecs @ (u / np.where(norms > 0, norms, 1.0)).T
    if fusion == "late":
        return alpha * (qvecs @ text_vecs.T) + (1.0 - alpha) * (qvecs @ meta_vecs.T)
    raise ValueError(f"fusion must be unified or late, not {fusion!r}")


def metadata_matrix(store: Store, model_id: str, strategy: str | None, chunk_ids: Sequence[str], dim: int
                    ) -> np.ndarray:
    """The metadata-block vector of each chunk, in ``chunk_ids`` order (zeros where none)."""
    import numpy as np

    from chunkctl.store.memory import memory_vectors

    owners, _, vecs = memory_vectors(store, model_id, strategy, layers=("metadata",))
    if not owners:  # fusion would silently be plain retrieval
        raise ValueError("--fusion needs enriched chunks: no metadata block is stored for "
                         + (f"strategy {strategy}" if strategy else "these chunks") + " (run chunkctl enrich)")
    out = np.zeros((len(chunk_ids), dim), dtype=np.float32)
    pos = {cid: i for i, cid in enumerate(chunk_ids)}
    for j, cid in enumerate(owners):
        if cid in pos:
            out[pos[cid]] = vecs[j]
    return out
