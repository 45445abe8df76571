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
    inside a word (as every token-window chunker does); `recursive` avoids that. A window reaches to
    where the next token starts (less trailing white space), so characters the tokenizer skips
    (zero-width spaces, control characters) stay in a chunk instead of falling between two.
    """

    name = "fixed"

    def split(self, doc: Document, ctx: ChunkContext):
        text = doc.text
        idx = ctx.tokens(text, self.tokenizer)
        n, step = idx.total, self.size - self.overlap
        if n == 0 and text.strip():  # only characters the tokenizer skips: still text, kept whole
            start = len(text) - len(text.lstrip())
            yield Span(start, len(text.rstrip()), 0)
        for first in range(0, n, step):
            last = min(first + self.size, n) - 1
            start = idx.token_span(first)[0] if first else len(text) - len(text.lstrip())
            end = idx.token_span(last + 1)[0] if last + 1 < n else len(text)
            end = start + len(text[start:end].rstrip())
            if end > start and not text[start:end].isspace():  # cl100k has whitespace tokens: such a window says nothing
                yield Span(start, end, last - first + 1)
            if last == n - 1:
                break
