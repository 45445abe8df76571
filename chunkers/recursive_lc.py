"""``recursive-lc``: LangChain's recursive character splitter, as Chroma's benchmark runs it, over
offsets. For comparing with published tables; ``recursive`` is chunkctl's own design."""
from __future__ import annotations

import re
from dataclasses import dataclass

from chunkctl.chunkers.base import ChunkContext, TokenBounded, Span, register
from chunkctl.chunkers.pieces import trim
from chunkctl.tokens import get_tokenizer
from chunkctl.types import Document

LC_SEPARATORS = ("\n\n", "\n", ".", "?", "!", " ", "")


@register
@dataclass(frozen=True)
class RecursiveLC(TokenBounded):
    """LangChain's RecursiveCharacterTextSplitter algorithm (Chroma's RecursiveTokenChunker): split
    at the first of "\\n\\n", "\\n", ".", "?", "!", " ", "" found, a separator starting the piece
    after it; pieces of `size` tokens or more are split again with the next separators; runs of
    pieces merge while their token counts (each piece counted alone) sum to at most `size`, with
    `overlap` tokens carried over; chunk edges are stripped of whitespace. Default tokenizer cl100k,
    as in Chroma's benchmark. Use `recursive` for chunking; this one reproduces published numbers.
    """

    name = "recursive-lc"
    tokenizer: str = "cl100k"

    def split(self, doc: Document, ctx: ChunkContext):
        tok = get_tokenizer(self.tokenizer)
        text = doc.text

        def count(spans: list[tuple[int, int]]) -> list[int]:
            return [tok.length(e) for e in tok.encode_batch([text[s:e] for s, e in spans])] if spans else []

        out: list[tuple[int, int]] = []
        self._split(text, 0, len(text), LC_SEPARATORS, count, out)
        for s, e in out:
            yield Span(s, e, count([(s, e)])[0])

    def _split(self, text: str, start: int, end: int, seps, count, out) -> None:
        chosen, rest = seps[-1], ()
        for i, sep in enumerate(seps):
            if sep == "" or text.find(sep, start, end) != -1:
                chosen, rest = sep, seps[i + 1:] if sep else ()
                break
        pieces = _pieces(text, start, end, chosen)
        sizes = count(pieces)
        good: list[tuple[int, int, int]] = []
        for (s, e), n in zip(pieces, sizes):
            if n < self.size:
                good.append((s, e, n))
                continue
            if good:
                self._merge(text, good, out)
                good = []
            if rest:
                self._split(text, s, e, rest, count, out)
            else:
                _emit(text, s, e, out)
        if good:
            self._merge(text, good, out)

    def _merge(self, text: str, pieces: list[tuple[int, int, int]], out) -> None:
        """Greedy packing of contiguous pieces; a chunk is the span from its first piece to its last."""
        window: list[tuple[int, int, int]] = []
        total = 0
        for s, e, n in pieces:
            if total + n > self.size and window:
                _emit(text, window[0][0], window[-1][1], out)
                while total > self.overlap or (total + n > self.size and total > 0):
                    total -= window.pop(0)[2]
            window.append((s, e, n))
            total += n
        if window:
            _emit(text, window[0][0], window[-1][1], out)


def _pieces(text: str, start: int, end: int, sep: str) -> list[tuple[int, int]]:
    """Contiguous spans of text[start:end] cut before each occurrence of ``sep`` (every character
    when ``sep`` is empty); empty spans dropped."""
    if sep == "":
        return [(i, i + 1) for i in range(start, end)]
    cuts = [m.start() for m in re.finditer(re.escape(sep), text[start:end])]
    bounds = [start] + [start + c for c in cuts] + [end]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _emit(text: str, s: int, e: int, out: list) -> None:
    """The span stripped of surrounding whitespace, unless nothing is left."""
    s, e = trim(text, s, e)
    if e > s:
        out.append((s, e))
