"""``structure``: one chunk per section of the parser's heading structure where it fits."""
from __future__ import annotations

from dataclasses import dataclass

from chunkctl.chunkers.base import Chunker, ChunkContext, Span, register
from chunkctl.chunkers.pieces import Piece, merge, split_span, trim
from chunkctl.chunkers.recursive import SEPARATORS
from chunkctl.tokens import TokenIndex
from chunkctl.types import Document, Element


@register
@dataclass(frozen=True)
class Structure(Chunker):
    """Sections by heading; a section over `size` tokens is packed element by element, and an
    element over `size` is split recursively. Small sibling sections combine up to `size` when
    `combine` is on. Code blocks are split at lines; a table is split at rows and every piece
    records the table's header row (text and offsets) in its metadata, since the source span
    of a later piece does not contain it.
    """

    name = "structure"
    size: int = 256
    combine: bool = True
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.size < 1:
            raise ValueError("structure: need size >= 1")

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        if not doc.text.strip():
            return []
        elements = [e for e in doc.elements if e.end > e.start]
        if not elements:
            return merge(idx, split_span(idx, 0, len(doc.text), self.size, SEPARATORS), self.size)
        spans: list[Span] = []
        for sec in _sections(elements):
            spans.extend(self._section(idx, sec))
        return _combine(idx, spans, self.size) if self.combine else spans

    def _section(self, idx: TokenIndex, els: list[Element]) -> list[Span]:
        a, b = trim(idx.text, els[0].start, els[-1].end)
        n = idx.count(a, b)
        if n <= self.size:
            return [Span(a, b, n, {"section": True})]
        out: list[Span] = []
        run: list[Piece] = []  # consecutive ordinary elements, packed together
        for el in els:
            if el.kind == "table" and idx.count(el.start, el.end) > self.size:
                out.extend(merge(idx, run, self.size))
                run = []
                out.extend(self._table(idx, el))
                continue
            seps = ("\n", "") if el.kind == "code" else SEPARATORS
            run.extend(split_span(idx, el.start, el.end, self.size, seps))
        out.extend(merge(idx, run, self.size))
        out.sort(key=lambda s: s.start)
        return out

    def _table(self, idx: TokenIndex, el: Element) -> list[Span]:
        header_end = el.header_end or el.start
        header = {"table_header": idx.text[el.start:header_end],
                  "table_header_span": [el.start, header_end]}
        rows = split_span(idx, el.start, el.end, self.size, ("\n", ""))
        return [Span(s.start, s.end, s.n_tokens, header) for s in merge(idx, rows, self.size)]


def _sections(elements: list[Element]) -> list[list[Element]]:
    """Group elements: a new section at every heading."""
    groups: list[list[Element]] = []
    for el in elements:
        if el.kind == "heading" or not groups:
            groups.append([el])
        else:
            groups[-1].append(el)
    return groups


def _combine(idx: TokenIndex, spans: list[Span], size: int) -> list[Span]:
    """Merge consecutive whole small sections while the result fits in ``size`` tokens."""
    out: list[Span] = []
    for sp in spans:
        prev = out[-1] if out else None
        if (prev is not None and prev.metadata == {"section": True} and sp.metadata == {"section": True}
                and sp.start >= prev.end):
            n = idx.count(prev.start, sp.end)
            if n <= size:
                out[-1] = Span(prev.start, sp.end, n, {"section": True})
                continue
        out.append(sp)
    return [Span(s.start, s.end, s.n_tokens, {k: v for k, v in (s.metadata or {}).items() if k != "section"})
            for s in out]
