"""``sentence``: whole sentences packed into token-bounded chunks."""
from __future__ import annotations

import re
from dataclasses import dataclass

from chunkctl.chunkers.base import ChunkContext, TokenBounded, register
from chunkctl.chunkers.pieces import Piece, merge, split_span
from chunkctl.types import Document

_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """Contiguous sentence spans covering ``text``: nupunkt's Punkt model (bundled, offline),
    plus a cut at every blank line, which Punkt alone would let a heading run into a sentence."""
    import nupunkt

    spans: list[tuple[int, int]] = []
    for s, e in nupunkt.sent_spans(text):
        for m in _BLANK_LINE.finditer(text, s, e):
            if s < m.end() < e:
                spans.append((s, m.end()))
                s = m.end()
        spans.append((s, e))
    return spans


@register
@dataclass(frozen=True)
class Sentence(TokenBounded):
    """Whole sentences (nupunkt) packed into chunks of at most `size` tokens, with `overlap` tokens
    of trailing sentences repeated; a sentence longer than `size` is split at words."""

    name = "sentence"

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        pieces: list[Piece] = []
        for s, e in sentence_bounds(doc.text):
            pieces.extend(split_span(idx, s, e, self.size, (" ", "")))
        return merge(idx, pieces, self.size, self.overlap)
