"""Runs of whole sentences -> size-capped Spans: the last step every LLM-guided chunker shares.

The model (or the dynamic programme) decides which sentences go together; these helpers turn those
groups into source spans, merge neighbours up to a target when asked, and enforce the chunk cap at
sentence edges (then words), so the embedding model can read every chunk whole.
"""
from __future__ import annotations

from typing import Any, Sequence

from chunkctl.chunkers.base import Span
from chunkctl.chunkers.pieces import merge, split_span, trim
from chunkctl.tokens import TokenIndex

Group = tuple[int, int, Any]  # (first sentence, one past the last, metadata or None)


def cuts_to_groups(n: int, ends: Sequence[int]) -> list[tuple[int, int]]:
    """Sentence runs [a, b) for a run ending after each sentence index in ``ends`` (ascending)."""
    firsts = [0] + [e + 1 for e in ends]
    lasts = [e + 1 for e in ends] + [n]
    return [(a, b) for a, b in zip(firsts, lasts) if b > a]


def merge_to_target(idx: TokenIndex, spans: Sequence[tuple[int, int, Any]], target: int) -> list[tuple[int, int, Any]]:
    """Meta-Chunking's dynamic merging: append the next chunk while the joined chunk stays within
    ``target`` tokens, else start a new one. Metadata of merged chunks is combined (dict union)."""
    out: list[tuple[int, int, Any]] = []
    for s, e, meta in spans:
        if out and idx.count(out[-1][0], e) <= target:
            prev = out[-1][2]
            both = {**(prev or {}), **(meta or {})} or None
            out[-1] = (out[-1][0], e, both)
        else:
            out.append((s, e, meta))
    return out


def capped_spans(idx: TokenIndex, bounds: Sequence[tuple[int, int]], groups: Sequence[Group], size: int,
                 target: int = 0) -> list[Span]:
    """Spans of sentence groups, trimmed of edge whitespace; a group over ``size`` tokens is packed
    again at sentence edges (a sentence over ``size`` at words), keeping its metadata."""
    text = idx.text
    spans = [(bounds[a][0], bounds[b - 1][1], meta) for a, b, meta in groups]
    if target:
        spans = merge_to_target(idx, spans, target)
    out: list[Span] = []
    for s, e, meta in spans:
        a, z = trim(text, s, e)
        if z <= a:
            continue
        n = idx.count(a, z)
        if n <= size:
            out.append(Span(a, z, n, meta))
            continue
        pieces = [p for ss, se in bounds if s <= ss and se <= e for p in split_span(idx, ss, se, size, (" ", ""))]
        out += [sp._replace(metadata=meta) for sp in merge(idx, pieces, size)]
    return out


def fit_prefix(idx: TokenIndex, bounds: Sequence[tuple[int, int]], first: int, last: int, size: int) -> int:
    """One past the last sentence of the longest run from ``first`` (at most to ``last``) within
    ``size`` tokens; at least one sentence."""
    end = first + 1
    while end < last and idx.count(bounds[first][0], bounds[end][1]) <= size:
        end += 1
    return end
