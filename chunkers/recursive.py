"""``recursive``: the separator hierarchy (paragraphs, lines, sentences, words), token-bounded."""
from __future__ import annotations

from dataclasses import dataclass

from chunkctl.chunkers.base import ChunkContext, TokenBounded, register
from chunkctl.chunkers.pieces import merge, split_span
from chunkctl.types import Document

SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", "")


@register
@dataclass(frozen=True)
class Recursive(TokenBounded):
    """Split at paragraph, line, sentence, clause and word breaks until pieces fit, then pack
    pieces into chunks of at most `size` tokens with `overlap` tokens of trailing context.

    Separators stay with the text before them; chunk edges are trimmed of whitespace.
    """

    name = "recursive"

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        if not doc.text:
            return []
        pieces = split_span(idx, 0, len(doc.text), self.size, SEPARATORS)
        return merge(idx, pieces, self.size, self.overlap)
