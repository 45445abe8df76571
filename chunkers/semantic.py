"""Embedding-similarity chunkers over sentences: ``semantic`` (a breakpoint wherever neighbouring
sentences drift apart: the Kamradt / LangChain / LlamaIndex family) and ``semantic-double``
(LlamaIndex's double-pass merging).

Each sentence is embedded once, with the token ids the document's single tokenization already has,
a block at a time: memory holds one block of vectors and one distance per sentence, never every
sentence vector of a long document. A buffered sentence (s[i-b] .. s[i+b]) is the normalised mean
of its sentences' vectors; LangChain instead embeds the joined text of every window, which at
b = 1 embeds each token three times.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

from chunkctl.chunkers.base import ChunkContext, TokenBounded, register
from chunkctl.chunkers.pieces import Piece, merge, split_span, trim
from chunkctl.chunkers.sentence import sentence_bounds
from chunkctl.tokens import TokenIndex
from chunkctl.types import Document

EMBED_BLOCK = 1024  # sentences embedded (and held) at a time
THRESHOLD_DEFAULTS = {"percentile": 95.0, "std": 3.0, "iqr": 1.5, "gradient": 95.0}  # LangChain's


def sentence_pieces(idx: TokenIndex, size: int) -> list[Piece]:
    """Trimmed sentences of the text; one longer than ``size`` tokens is split at words."""
    pieces: list[Piece] = []
    for s, e in sentence_bounds(idx.text):
        s, e = trim(idx.text, s, e)
        if e > s:
            pieces.extend(split_span(idx, s, e, size, (" ", "")))
    return pieces


def piece_vectors(ctx: ChunkContext, text: str, embedder, pieces: Sequence[Piece]) -> Iterator:
    """Each piece's unit vector, in order, embedded EMBED_BLOCK pieces at a time."""
    for b in range(0, len(pieces), EMBED_BLOCK):
        yield from ctx.embed_spans(text, embedder, [(p[0], p[1]) for p in pieces[b:b + EMBED_BLOCK]])


def _unit(v):
    import numpy as np

    return v / max(float(np.linalg.norm(v)), 1e-12)


def buffered_distances(vectors: Iterator, n: int, buffer: int):
    """d[i] = 1 - cos(c[i], c[i+1]) where c[i] is the mean of vectors i-buffer .. i+buffer
    (clipped at the ends), computed in one pass with a sliding window of 2*buffer+2 vectors."""
    import numpy as np

    d = np.zeros(max(n - 1, 0), dtype=np.float64)
    window: deque = deque()  # (index, vector) for indexes in [i - buffer, i + 1 + buffer]
    it = iter(vectors)
    loaded = 0
    prev = None
    for i in range(n):
        while loaded < min(n, i + buffer + 1):
            window.append((loaded, next(it)))
            loaded += 1
        while window[0][0] < i - buffer:
            window.popleft()
        cur = _unit(sum(v for _, v in window))
        if prev is not None:
            d[i - 1] = 1.0 - float(prev @ cur)
        prev = cur
    return d


def breakpoints(d, kind: str, amount: float):
    """Boolean array: cut after sentence i where d[i] exceeds the threshold (LangChain's rules)."""
    import numpy as np

    if len(d) == 0:
        return np.zeros(0, dtype=bool)
    amount = amount or THRESHOLD_DEFAULTS[kind]
    if kind == "percentile":
        return d > np.percentile(d, amount)
    if kind == "std":
        return d > d.mean() + amount * d.std()
    if kind == "iqr":
        q1, q3 = np.percentile(d, [25, 75])
        return d > d.mean() + amount * (q3 - q1)
    g = np.gradient(d) if len(d) > 1 else d
    return g > np.percentile(g, amount)


@register
@dataclass(frozen=True)
class Semantic(TokenBounded):
    """Sentences grouped until the distance between neighbouring buffered sentences crosses a
    threshold (`threshold` = percentile, std, iqr or gradient, with `amount`, 0 = the family's
    default 95 / 3 / 1.5 / 95); groups over `size` tokens are packed into several chunks, and a
    breakpoint is ignored while the group has fewer than `min_size` tokens.

    Sentence vectors from `model` (an embedder name, see `chunkctl embed --help`)."""

    name = "semantic"
    threshold: Literal["percentile", "std", "iqr", "gradient"] = "percentile"
    amount: float = 0.0
    buffer: int = 1
    min_size: int = 0
    model: str = "minilm"

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        pieces = sentence_pieces(idx, self.size)
        if len(pieces) < 2:
            return merge(idx, pieces, self.size)
        vectors = piece_vectors(ctx, doc.text, ctx.embedder(self.model), pieces)
        cut = breakpoints(buffered_distances(vectors, len(pieces), self.buffer), self.threshold, self.amount)
        spans, group, tokens = [], [pieces[0]], pieces[0][2]
        for i in range(1, len(pieces)):
            if cut[i - 1] and tokens >= self.min_size:
                spans += merge(idx, group, self.size, self.overlap)
                group, tokens = [], 0
            group.append(pieces[i])
            tokens += pieces[i][2]
        return spans + merge(idx, group, self.size, self.overlap)


@register
@dataclass(frozen=True)
class SemanticDouble(TokenBounded):
    """Double-pass merging (LlamaIndex's SemanticDoubleMergingSplitter, with sentence vectors
    instead of spaCy's). Pass 1 grows a chunk while the next sentence's cosine to the chunk is at
    least `initial` (for the second sentence) or `appending` (after), also taking a sentence that
    fails when the one after it passes; pass 2 merges neighbouring chunks whose cosine is at least
    `merging`, looking `merge_range` (1 or 2) chunks ahead. Chunks never exceed `size` tokens."""

    name = "semantic-double"
    # MiniLM's cosine between neighbouring sentences has a median near 0.34 on Wikipedia text
    # (LlamaIndex's 0.6/0.8 are for spaCy vectors, which score everything higher)
    initial: float = 0.3
    appending: float = 0.4
    merging: float = 0.5
    merge_range: int = 2
    model: str = "minilm"

    def __post_init__(self):
        super().__post_init__()
        if self.merge_range not in (1, 2):
            raise ValueError("semantic-double: merge_range must be 1 or 2")

    def _first_pass(self, pieces: Sequence[Piece], vectors: "_Window") -> Iterator[tuple]:
        """(first piece, last piece, tokens, vector sum) of each pass-1 group."""
        n = len(pieces)
        start, total, tokens, i = 0, vectors[0].copy(), pieces[0][2], 1
        while i < n:
            thr = self.initial if i - start == 1 else self.appending
            unit = _unit(total)
            if tokens + pieces[i][2] <= self.size and float(unit @ vectors[i]) >= thr:
                total, tokens, i = total + vectors[i], tokens + pieces[i][2], i + 1
            elif (i + 1 < n and tokens + pieces[i][2] + pieces[i + 1][2] <= self.size
                  and float(unit @ vectors[i + 1]) >= thr):  # one off-topic sentence between two on-topic ones
                total = total + vectors[i] + vectors[i + 1]
                tokens, i = tokens + pieces[i][2] + pieces[i + 1][2], i + 2
            else:
                yield start, i - 1, tokens, total
                start, total, tokens, i = i, vectors[i].copy(), pieces[i][2], i + 1
            vectors.release(start)
        yield start, n - 1, tokens, total

    def _merge_pass(self, groups: Iterator[tuple]) -> Iterator[tuple]:
        """Pass 2 over pass-1 groups, holding at most merge_range + 1 of them."""
        pending: list = []
        for g in groups:
            pending.append(g)
            while len(pending) > self.merge_range:
                if (done := self._merge_or_pop(pending)) is not None:
                    yield done
        while pending:
            if (done := self._merge_or_pop(pending)) is not None:
                yield done

    def _merge_or_pop(self, pending: list):
        """Merge pending[0] into the nearest similar neighbour within reach (in place), or pop and
        return it: it is final."""
        a = pending[0]
        for reach in range(1, min(self.merge_range, len(pending) - 1) + 1):
            joined = pending[:reach + 1]
            tokens = sum(g[2] for g in joined)
            if tokens <= self.size and float(_unit(a[3]) @ _unit(pending[reach][3])) >= self.merging:
                pending[:reach + 1] = [(a[0], pending[reach][1], tokens, sum(g[3] for g in joined))]
                return None
        return pending.pop(0)

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        pieces = sentence_pieces(idx, self.size)
        if len(pieces) < 2:
            return merge(idx, pieces, self.size)
        vectors = _Window(piece_vectors(ctx, doc.text, ctx.embedder(self.model), pieces))
        spans = []
        for first, last, _, _ in self._merge_pass(self._first_pass(pieces, vectors)):
            spans += merge(idx, pieces[first:last + 1], self.size, self.overlap)
        return spans


class _Window:
    """Random access to a stream of vectors, keeping only those not yet released."""

    def __init__(self, stream: Iterator):
        self.stream, self.held, self.first = iter(stream), deque(), 0

    def __getitem__(self, i: int):
        while i - self.first >= len(self.held):
            self.held.append(next(self.stream))
        return self.held[i - self.first]

    def release(self, before: int) -> None:
        while self.first < before and self.held:
            self.held.popleft()
            self.first += 1
