"""``cluster``: Chroma's ClusterSemanticChunker (Smith & Troynikov, 2024).

Small pieces (recursive split, `piece` tokens) are embedded; S = E·Eᵀ with the mean of its strict
upper triangle μ subtracted and the diagonal zeroed; a dynamic programme picks the partition into
runs of at most `size // piece` pieces that maximises the sum, over runs, of the run's square block
of S. A run's reward is raw(run) − μ·k(k−1), where raw is twice the pairwise dot products inside
the run and k its length, so only a band of k−1 dot products per piece is ever needed, and μ comes
from Σe: μ = (|Σe|² − Σ|e|²) / (n(n−1)). Memory is O(n·k), not the n×n matrix Chroma builds.

Chroma joins a run's pieces with spaces; chunkctl returns the source span from the run's first
piece to its last, so offsets stay exact. Chroma initialises dp[i] = 0 and only replaces it by a
larger reward, so when every candidate is negative the run silently reaches back to piece 0 and
can exceed the size limit; chunkctl starts from −∞ (the spec's fix), `compat=true` reproduces it.
"""
from __future__ import annotations

from dataclasses import dataclass

from chunkctl.chunkers.base import ChunkContext, Span, TokenBounded, register
from chunkctl.chunkers.pieces import merge, split_span, trim
from chunkctl.chunkers.semantic import piece_vectors
from chunkctl.types import Document

SEPARATORS = ("\n\n", "\n", ".", "?", "!", " ", "")  # Chroma's pre-split separators


def band_dots(vectors, n: int, width: int):
    """band[i][d-1] = e_i · e_(i-d) for d = 1 .. width-1 (0 where i-d < 0), plus Σe and Σ|e|²,
    from a stream of vectors, holding only the last `width` of them."""
    import numpy as np

    band = np.zeros((n, max(width - 1, 0)), dtype=np.float64)
    recent: list = []
    total, sq = None, 0.0
    for i, v in enumerate(vectors):
        v = np.asarray(v, dtype=np.float64)
        for d, u in enumerate(reversed(recent), start=1):
            band[i, d - 1] = float(v @ u)
        recent.append(v)
        if len(recent) > width - 1:
            recent.pop(0)
        total = v.copy() if total is None else total + v
        sq += float(v @ v)
    return band, total, sq


def segment(band, mu: float, max_cluster: int, compat: bool = False, fits=None) -> list[tuple[int, int]]:
    """The DP over piece indexes: [(first, last)] runs maximising Σ raw(run) − μ·k(k−1). A run of
    several pieces must also pass ``fits(first, last)`` (its joined token count is within size)."""
    n = band.shape[0]
    dp = [0.0] * n
    start_of = [0] * n
    for i in range(n):
        best, best_start = (0.0, 0) if compat else (float("-inf"), i)
        inner = 0.0  # Σ e_a·e_b over a < b in run [s, i], grown as s moves left
        for k in range(1, min(max_cluster, i + 1) + 1):
            s = i - k + 1
            if k > 1:  # adding piece s: its dots with s+1 .. i
                inner += sum(band[j, j - s - 1] for j in range(s + 1, i + 1))
            if k > 1 and fits is not None and not fits(s, i):
                break  # longer runs only grow
            reward = 2.0 * inner - mu * k * (k - 1) + (dp[s - 1] if s > 0 else 0.0)
            if reward > best:
                best, best_start = reward, s
        dp[i], start_of[i] = best, best_start
    runs = []
    i = n - 1
    while i >= 0:
        runs.append((start_of[i], i))
        i = start_of[i] - 1
    return runs[::-1]


@register
@dataclass(frozen=True)
class Cluster(TokenBounded):
    """Chroma's ClusterSemanticChunker: `piece`-token pieces grouped by a dynamic programme that
    maximises within-chunk similarity, chunks of at most `size` tokens (`size // piece` pieces).
    Token counts in cl100k by default, as Chroma's code; vectors from `model`. `compat=true` keeps
    Chroma's dp initialisation quirk."""

    name = "cluster"
    size: int = 400
    piece: int = 50
    tokenizer: str = "cl100k"
    model: str = "minilm"
    compat: bool = False

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.piece <= self.size:
            raise ValueError("cluster: need 1 <= piece <= size")
        if self.overlap:
            raise ValueError("cluster: overlap is not supported (the DP partitions the pieces)")

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        pieces = [(p.start, p.end, p.n_tokens)
                  for p in merge(idx, split_span(idx, 0, len(doc.text), self.piece, SEPARATORS), self.piece)]
        if len(pieces) < 2:
            return [Span(s, e, n) for s, e, n in pieces]
        n = len(pieces)
        max_cluster = max(1, self.size // self.piece)
        band, total, sq = band_dots(piece_vectors(ctx, doc.text, ctx.embedder(self.model), pieces), n, max_cluster)
        mu = (float(total @ total) - sq) / (n * (n - 1))
        spans = []
        def fits(first: int, last: int) -> bool:
            return idx.count(pieces[first][0], pieces[last][1]) <= self.size

        for first, last in segment(band, mu, max_cluster, self.compat, fits):
            s, e = trim(doc.text, pieces[first][0], pieces[last][1])
            spans.append(Span(s, e, idx.count(s, e)))
        return spans
