"""``recursive``: the separator hierarchy (paragraphs, lines, sentences, words), token-bounded."""
from __future__ import annotations

from dataclasses import dataclass

from chunkctl.chunkers.base import Chunker, ChunkContext, register
from chunkctl.chunkers.pieces import merge, split_span
from chunkctl.types import Document

SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", "")


@register
@dataclass(frozen=True)
class Recursive(Chunker):
    """Split at paragraph, line, sentence, clause and word breaks until pieces fit, then pack
    pieces into chunks of at most `size` tokens with `overlap` tokens of trailing context.

    Separators stay with the text before them; chunk edges are trimmed of whitespace.
    """

    name = "recursive"
    size: int = 512
    overlap: int = 0
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.size < 1 or not 0 <= self.overlap < self.size:
            raise ValueError("recursive: need size >= 1 and 0 <= overlap < size")

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        if not doc.text:
            return []
        pieces = split_span(idx, 0, len(doc.text), self.size, SEPARATORS)
        return merge(idx, pieces, self.size, self.overlap)
