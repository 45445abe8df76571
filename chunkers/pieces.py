"""Span arithmetic shared by the token-bounded chunkers: split a span along a separator hierarchy
until every piece fits, then pack pieces greedily into chunks with token overlap.

Pieces are (start, end, n_tokens) over one text; nothing here copies or joins strings, and token
counts come from the document's single TokenIndex.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from chunkctl.chunkers.base import Span
from chunkctl.tokens import TokenIndex

Piece = tuple[int, int, int]


def _cuts(text: str, a: int, b: int, sep: str | re.Pattern, attach: str) -> list[int]:
    """Interior cut positions in text[a:b] at each separator match; the separator stays with the
    piece before it (attach="end") or the piece after it (attach="start")."""
    cuts: list[int] = []
    if isinstance(sep, re.Pattern):
        for m in sep.finditer(text, a, b):
            c = m.end() if attach == "end" else m.start()
            if a < c < b and m.end() > m.start():
                cuts.append(c)
        return cuts
    n = len(sep)
    i = text.find(sep, a, b)
    while i != -1:
        c = i + n if attach == "end" else i
        if a < c < b:
            cuts.append(c)
        i = text.find(sep, i + n, b)
    return cuts


def hard_split(idx: TokenIndex, a: int, b: int, limit: int) -> list[Piece]:
    """Cut text[a:b] at token ends into pieces of at most ``limit`` tokens."""
    out: list[Piece] = []
    while a < b:
        e = idx.prefix_end(a, b, limit)
        out.append((a, e, idx.count(a, e)))
        a = e
    return out


def split_span(idx: TokenIndex, a: int, b: int, limit: int, separators: Sequence[str | re.Pattern],
               attach: str = "end", min_chars: int = 0) -> list[Piece]:
    """Recursively split text[a:b] until each piece has at most ``limit`` tokens. The empty
    separator "" (or running out of separators) means a hard split at token boundaries.
    Pieces shorter than ``min_chars`` characters are glued to their neighbour (Adaptive Chunking)."""
    n = idx.count(a, b)
    if n <= limit:
        return [(a, b, n)]
    for level, sep in enumerate(separators):
        if sep == "":
            break
        cuts = _cuts(idx.text, a, b, sep, attach)
        if not cuts:
            continue
        bounds = [a, *cuts, b]
        if min_chars:
            bounds = _glue_short(bounds, min_chars)
        out: list[Piece] = []
        rest = separators[level + 1:]
        for s, e in zip(bounds, bounds[1:]):
            out.extend(split_span(idx, s, e, limit, rest, attach, min_chars))
        return out
    return hard_split(idx, a, b, limit)


def _glue_short(bounds: list[int], min_chars: int) -> list[int]:
    """Drop interior bounds that would leave a piece shorter than ``min_chars`` (merge it forward,
    or backward for the last piece)."""
    kept = [bounds[0]]
    for c in bounds[1:-1]:
        if c - kept[-1] >= min_chars:
            kept.append(c)
    if len(kept) > 1 and bounds[-1] - kept[-1] < min_chars:
        kept.pop()
    kept.append(bounds[-1])
    return kept


def trim(text: str, a: int, b: int) -> tuple[int, int]:
    """Shrink [a, b) to exclude leading and trailing whitespace."""
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def merge(idx: TokenIndex, pieces: Iterable[Piece], size: int, overlap: int = 0) -> list[Span]:
    """Pack consecutive pieces into spans of at most ``size`` tokens. Each new span starts with
    the trailing pieces of the previous one that fit in ``overlap`` tokens. Spans are trimmed of
    edge whitespace; whitespace-only spans are dropped.

    Sizes are counted over the joined span, not summed over pieces: a byte-level BPE (cl100k)
    has tokens such as " ," that straddle a cut between two pieces and belong to neither."""
    text = idx.text
    spans: list[Span] = []
    cur: list[Piece] = []

    def emit() -> None:
        s, e = trim(text, cur[0][0], cur[-1][1])
        if e > s:
            spans.append(Span(s, e, idx.count(s, e)))

    for p in pieces:
        if cur and idx.count(cur[0][0], p[1]) > size:
            emit()
            keep: list[Piece] = []
            if overlap:
                for q in reversed(cur):
                    if idx.count(q[0], cur[-1][1]) > overlap or idx.count(q[0], p[1]) > size:
                        break
                    keep.insert(0, q)
            cur = keep
        cur.append(p)
    if cur:
        emit()
    # A piece that trimming reduced to nothing, or an overlap-only tail, is not a chunk.
    return [sp for i, sp in enumerate(spans) if i == 0 or sp.end > spans[i - 1].end]
