"""The data model every stage shares: Document, Element, Page, Chunk, Reject.

All offsets are Python ``str`` indices (code points) into one normalised ``Document.text``.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from chunkctl.redact import redact

@dataclass(frozen=True, slots=True)
class Element:
    """A structural block of the document: its kind, span and the headings above it."""

    kind: str  # heading | paragraph | list | table | code
    start: int
    end: int
    heading_path: tuple[str, ...] = ()
    level: int = 0  # heading level for headings, 0 otherwise
    header_end: int | None = None  # tables: where the header row ends (start..header_end)


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a paged format: 1-based number, printed label when known, and its span."""

    number: int
    start: int
    end: int
    label: str | None = None


@dataclass(slots=True)
class Document:
    doc_id: str
    path: str
    sha256: str
    mime: str
    text: str
    elements: list[Element] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    _element_starts: list[int] | None = field(default=None, repr=False)
    _page_starts: list[int] | None = field(default=None, repr=False)

    def heading_path_at(self, pos: int) -> tuple[str, ...]:
        """Headings in force at ``pos``: those of the last element starting at or before it."""
        if not self.elements:
            return ()
        if self._element_starts is None:
            self._element_starts = [e.start for e in self.elements]
        i = bisect_right(self._element_starts, pos) - 1
        if i < 0:
            return ()
        el = self.elements[i]
        # A heading element belongs to its own section.
        return el.heading_path

    def page_at(self, pos: int) -> int | None:
        if not self.pages:
            return None
        if self._page_starts is None:
            self._page_starts = [p.start for p in self.pages]
        i = max(0, bisect_right(self._page_starts, pos) - 1)
        return self.pages[i].number


@dataclass(frozen=True, slots=True)
class Chunk:
    chunk_id: str
    doc_id: str
    strategy_id: str
    seq: int
    char_start: int
    char_end: int
    text: str
    n_tokens: int
    page_start: int | None
    page_end: int | None
    heading_path: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    # (model_id, vector) when the chunker itself computed the chunk's vector (late chunking): it
    # depends on the context, not only on the text, so it is stored with the chunk, never cached.
    embedding: tuple[str, Any] | None = field(default=None, compare=False, repr=False)
    # what the embedding stage embeds instead of ``text`` (a completed chunk, a question before the
    # text); None: the text itself. Model-written text lives here and in metadata, never in ``text``.
    embed_text: str | None = None


def shown(text: str) -> str:
    """``text`` as it can be stored and printed: a file name's undecodable bytes (Python keeps them
    as lone surrogates) become ``\\xff`` escapes; valid text is returned unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape" if _escaped_only(text) else "surrogatepass"
                           ).decode("utf-8", "backslashreplace")


def _escaped_only(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


@dataclass(frozen=True, slots=True)
class Reject:
    path: str
    stage: str  # walk | read | parse | chunk | enrich | store | internal
    reason: str

    def __post_init__(self):
        object.__setattr__(self, "path", shown(str(self.path)))
        object.__setattr__(self, "reason", redact(shown(str(self.reason))))  # a server may echo a key


class RejectError(Exception):
    """Raised by a stage for input it cannot handle; becomes a ``rejects`` row, never a crash."""

    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
