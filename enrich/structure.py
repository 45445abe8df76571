"""``structure``: where a chunk sits, from the parse alone (no model)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from chunkctl.enrich.base import TITLE_WORDS, Enricher, cut_words, document_title, register, squash


@register
@dataclass(frozen=True)
class Structure(Enricher):
    """The document's title, the chunk's heading path, its page range and the file name, as
    metadata fields (document, section, pages, file). No LLM."""

    name = "structure"
    fields = ("document", "section", "pages", "file")
    version = 3  # 2: a paragraph taken for a heading is no title, and headings are cut to 16 words; 3: no "#"

    def enrich(self, doc, chunks, ctx) -> list[dict]:
        title, file = document_title(doc), PurePath(doc.path).name
        out = []
        for c in chunks:
            pages = None
            if c.page_start is not None:
                pages = str(c.page_start) if c.page_end in (None, c.page_start) else f"{c.page_start}-{c.page_end}"
            # a heading path that only repeats the title says nothing more; a paragraph taken for a
            # heading is cut to a heading's length
            path = c.heading_path[1:] if c.heading_path and c.heading_path[0] == title else c.heading_path
            section = " > ".join(cut_words(squash(h), TITLE_WORDS) for h in path)
            out.append({"document": title, "section": section or None, "pages": pages, "file": file})
        return out
