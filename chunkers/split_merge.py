"""``split-merge``: the split-then-merge recursive splitter of Adaptive Chunking
(de Moura Junior et al., LREC 2026; spec: algorithms.md section 5.3)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from chunkctl.chunkers.base import ChunkContext, TokenBounded, Span, register
from chunkctl.chunkers.pieces import Piece, merge, split_span, trim
from chunkctl.tokens import TokenIndex
from chunkctl.types import Document

# The paper's separators, in priority order, each attached to the start of the piece after it.
PAPER_SEPARATORS = tuple(re.compile(p) for p in (
    *(rf"(?<=\n)#{{{n}}}\s" for n in range(1, 7)),
    r"(?<=\n)\s*\(?[A-Za-z0-9]{1,4}[.)]\s+",  # enumerations
    r"(?<=\n)\s*[-*·•●▪◦‣▸▹○◯‒–—]\s+",  # bullets
    r"\n{2,}", r"\n", r"[.!?]\s+", r",\s+", r"\s+",
))
MIN_PIECE_CHARS = 10  # shorter pieces are glued to a neighbour, as in the reference code


@register
@dataclass(frozen=True)
class SplitMerge(TokenBounded):
    """Split on the paper's separator hierarchy (headings, enumerations, bullets, blank lines,
    lines, sentences, clauses, words) until pieces fit, then merge: `to_chunk_size` packs pieces
    greedily to `size`; `small_only` keeps pieces and merges only groups under `min_tokens`.
    Pieces are limited to `size - overlap` tokens so a chunk plus its overlap fits in `size`.
    """

    name = "split-merge"
    size: int = 600
    merging: Literal["to_chunk_size", "small_only"] = "to_chunk_size"
    min_tokens: int = 100
    order: Literal["forward", "backward"] = "forward"

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        if not doc.text.strip():
            return []
        limit = self.size - self.overlap
        pieces = split_span(idx, 0, len(doc.text), limit, PAPER_SEPARATORS, attach="start",
                            min_chars=MIN_PIECE_CHARS)
        if self.merging == "small_only":
            pieces = _merge_small(pieces, self.min_tokens, limit, self.order == "backward")
            return _with_overlap(idx, pieces, self.overlap)
        if self.order == "backward":
            # greedy packing from the end: mirror the piece list, pack, mirror back
            mirrored = [(-e, -s, n) for s, e, n in reversed(pieces)]
            packed = _pack(mirrored, self.size)
            groups = [(-e, -s, n) for s, e, n in reversed(packed)]
            return _with_overlap(idx, groups, self.overlap)
        return merge(idx, pieces, self.size, self.overlap)


def _pack(pieces: list[Piece], size: int) -> list[Piece]:
    out: list[Piece] = []
    for s, e, n in pieces:
        if out and out[-1][2] + n <= size:
            ps, _, pn = out[-1]
            out[-1] = (ps, e, pn + n)
        else:
            out.append((s, e, n))
    return out


def _merge_small(pieces: list[Piece], min_tokens: int, size: int, backward: bool) -> list[Piece]:
    """Merge any group under ``min_tokens`` into the next group when the sum fits, else into the
    previous one; repeat until nothing changes."""
    groups = list(reversed(pieces)) if backward else list(pieces)
    changed = True
    while changed:
        changed = False
        for i, (s, e, n) in enumerate(groups):
            if n >= min_tokens or len(groups) == 1:
                continue
            j = i + 1 if i + 1 < len(groups) and groups[i + 1][2] + n <= size else i - 1
            if j < 0 or groups[j][2] + n > size:
                continue
            a, b = sorted((i, j))
            groups[a:b + 1] = [(min(groups[a][0], groups[b][0]), max(groups[a][1], groups[b][1]),
                                groups[a][2] + groups[b][2])]
            changed = True
            break
    return sorted(groups)


def _with_overlap(idx: TokenIndex, groups: list[Piece], overlap: int) -> list[Span]:
    """Spans for packed groups; each after the first starts up to ``overlap`` tokens earlier,
    cut at a whitespace boundary of the previous group."""
    out: list[Span] = []
    for k, (s, e, n) in enumerate(groups):
        if overlap and k:
            ps = groups[k - 1][0]
            back = s
            ws = [m.end() for m in re.finditer(r"\s+", idx.text[ps:s])]
            for cut in ws:  # earliest whitespace cut whose tail fits in the overlap
                if idx.count(ps + cut, s) <= overlap:
                    back = ps + cut
                    break
            s = back
        a, b = trim(idx.text, s, e)
        if b > a:
            out.append(Span(a, b, idx.count(a, b)))
    return out
