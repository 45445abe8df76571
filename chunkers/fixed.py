"""``fixed``: plain token windows."""
from __future__ import annotations

from dataclasses import dataclass

from chunkctl.chunkers.base import ChunkContext, TokenBounded, Span, register
from chunkctl.types import Document


@register
@dataclass(frozen=True)
class Fixed(TokenBounded):
    """Windows of `size` tokens; each starts `size - overlap` tokens after the previous one.

    Windows are cut at token boundaries of the document's one tokenization, so a window may end
    inside a word (as every token-window chunker does); `recursive` avoids that.
    """

    name = "fixed"

    def split(self, doc: Document, ctx: ChunkContext):
        idx = ctx.tokens(doc.text, self.tokenizer)
        n, step = idx.total, self.size - self.overlap
        for first in range(0, n, step):
            last = min(first + self.size, n) - 1
            start, end = idx.token_span(first)[0], idx.token_span(last)[1]
            if not doc.text[start:end].isspace():  # cl100k has whitespace tokens; such a window says nothing
                yield Span(start, end, last - first + 1)
            if last == n - 1:
                break
