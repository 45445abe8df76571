"""``recursive``: the separator hierarchy (paragraphs, lines, sentences, words), token-bounded."""
from __future__ import annotations

from dataclasses import dataclass

from chunkctl.chunkers.base import ChunkContext, TokenBounded, register
from chunkctl.chunkers.pieces import Piece, merge, split_span
from chunkctl.types import Document

SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", "")


@register
@dataclass(frozen=True)
class Recursive(TokenBounded):
    """Split at paragraph, line, sentence, clause and word breaks until pieces fit, then pack
    pieces into chunks of at most `size` tokens with `overlap` tokens of trailing context.

    Separators stay with the text before them; chunk edges are trimmed of whitespace. Code blocks
    and tables found by the parser are kept whole when they fit in `size`.
    """

    name = "recursive"

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        if not doc.text:
            return []
        pieces: list[Piece] = []
        pos = 0
        for el in doc.elements:  # atomic pieces: the merge never cuts inside one
            if el.kind in ("code", "table") and el.start >= pos:
                n = idx.count(el.start, el.end)
                if n <= self.size:
                    pieces += split_span(idx, pos, el.start, self.size, SEPARATORS) if el.start > pos else []
                    pieces.append((el.start, el.end, n))
                    pos = el.end
        pieces += split_span(idx, pos, len(doc.text), self.size, SEPARATORS) if pos < len(doc.text) else []
        return merge(idx, pieces, self.size, self.overlap)
