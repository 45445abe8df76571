"""``late``: late chunking (Günther et al., Jina AI, 2024), the chunk's vector situated in its document.

The base chunker decides the spans; the model then reads the document in long windows, and each
chunk's vector is the mean of the final-layer token states inside its span, so "it" in a chunk is
read with the sentence that names its referent. Documents longer than one window are read in
windows overlapping by half ("long late chunking"); each token's state is taken from the window in
which it sits most centrally, so every token gets context on both sides except at the document's
ends. States are pooled window by window into running sums per chunk: memory holds one batch of
windows, never the document's token states.

Special tokens ([CLS], [SEP]) are not pooled (the paper folds them into the first and last chunk;
with many windows there is one pair per window, which would weight edge chunks arbitrarily).
The vectors are stored with the chunks under the embedder's model id, in the same space as query
vectors, and are never put in the text-keyed embedding cache: they depend on the context.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from chunkctl.chunkers.base import REGISTRY, ChunkContext, Span, TokenBounded, parse_spec, register
from chunkctl.embed import MINILM_MAX_POSITIONS
from chunkctl.types import Document

WINDOW_BATCH = 8  # windows run through the model at once


def windows(total: int, width: int) -> list[tuple[int, int, int, int]]:
    """(start, end, own_start, own_end) token windows overlapping by half; each token is owned by
    exactly one window, the one whose centre it is nearest (ties to the earlier window)."""
    if total <= width:
        return [(0, total, 0, total)]
    stride = width // 2
    starts = list(range(0, total - width, stride)) + [total - width]
    out = []
    for k, s in enumerate(starts):
        own_s = 0 if k == 0 else (starts[k - 1] + width + s) // 2  # midpoint of the overlap
        own_e = total if k == len(starts) - 1 else (s + width + starts[k + 1]) // 2
        out.append((s, s + width, own_s, own_e))
    return out


def pool_spans(ctx: ChunkContext, text: str, embedder, spans: list[tuple[int, int]], width: int):
    """Unit vectors of each character span, pooled from contextual token states."""
    import numpy as np

    idx = ctx.tokens(text, embedder.tokenizer)
    all_ids = idx.ids_in(0, len(text))
    # token ranges of the spans: tokens wholly inside [s, e)
    ranges = []
    for s, e in spans:
        t0 = idx.first_token_at_or_after(s)
        ranges.append((t0, t0 + idx.count(s, e)))
    sums = np.zeros((len(spans), embedder.dim), dtype=np.float64)
    counts = np.zeros(len(spans), dtype=np.int64)
    order = sorted(range(len(spans)), key=lambda i: ranges[i][0])
    sorted_starts = [ranges[i][0] for i in order]
    longest = max(t1 - t0 for t0, t1 in ranges)
    wins = windows(len(all_ids), width)
    for b in range(0, len(wins), WINDOW_BATCH):
        batch = wins[b:b + WINDOW_BATCH]
        states = embedder.token_states([all_ids[w[0]:w[1]] for w in batch])
        for (ws, _, own_s, own_e), st in zip(batch, states):
            cum = np.vstack([np.zeros((1, st.shape[1])), np.cumsum(st[own_s - ws:own_e - ws], axis=0)])
            # spans overlapping the owned tokens start before own_e and at most `longest` before own_s
            for k in range(bisect_left(sorted_starts, own_s - longest), bisect_left(sorted_starts, own_e)):
                j = order[k]
                a, z = max(ranges[j][0], own_s), min(ranges[j][1], own_e)
                if z > a:
                    sums[j] += cum[z - own_s] - cum[a - own_s]
                    counts[j] += z - a
    out = np.zeros((len(spans), embedder.dim), dtype=np.float32)
    for j in range(len(spans)):
        if counts[j]:
            v = sums[j] / counts[j]
            out[j] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out, counts


@register
@dataclass(frozen=True)
class Late(TokenBounded):
    """Late chunking: spans from `base` (a token-bounded chunker, given `size` and `overlap`), each
    vector the mean of token states from one long-context pass (`window` tokens, overlapping halves)
    of `model` over the document. Works with the packaged MiniLM models (minilm, minilm-onnx, minilm-st)."""

    name = "late"
    base: str = "recursive"
    size: int = 256
    window: int = MINILM_MAX_POSITIONS - 2
    model: str = "minilm"

    def __post_init__(self):
        super().__post_init__()
        if self.base not in REGISTRY or self.base == "late":
            raise ValueError(f"late: base must be another chunker ({', '.join(sorted(REGISTRY))}), not {self.base!r}")
        if not 2 <= self.window <= MINILM_MAX_POSITIONS - 2:
            raise ValueError(f"late: window must be between 2 and {MINILM_MAX_POSITIONS - 2} tokens")
        self.base_chunker()  # fail at parse time if the base does not take size/overlap/tokenizer

    def base_chunker(self):
        return parse_spec(f"{self.base}:size={self.size},overlap={self.overlap},tokenizer={self.tokenizer}")

    def split(self, doc: Document, ctx: ChunkContext):
        spans = list(self.base_chunker().split(doc, ctx))
        if not spans:
            return []
        embedder = ctx.embedder(self.model)
        if not hasattr(embedder, "token_states"):
            raise ValueError(f"late: embedder {embedder.model_id} gives no token states")
        vecs, counts = pool_spans(ctx, doc.text, embedder, [(sp.start, sp.end) for sp in spans], self.window)
        out = []
        for sp, v, c in zip(spans, vecs, counts):
            meta = dict(sp.metadata or {}, late={"model": embedder.model_id, "window": self.window})
            out.append(Span(sp.start, sp.end, sp.n_tokens, meta, (embedder.model_id, v) if c else None))
        return out
