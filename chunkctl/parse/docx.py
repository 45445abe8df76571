"""DOCX with python-docx: paragraphs and tables in body order; headings from paragraph styles
(Title, Heading N) or outline levels; tables as rows with the header row first."""
from __future__ import annotations

import io
import re

from chunkctl.parse.blocks import BlockBuilder, Parsed, squash, table_text
from chunkctl.types import RejectError

_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre)\s*(\d)", re.I)


def _level(paragraph) -> int | None:
    """Heading level (0 for the document title, which sits above Heading 1), None for body text."""
    style = paragraph.style.name if paragraph.style is not None else ""
    if style.lower() == "title":
        return 0
    m = _HEADING_STYLE.match(style)
    if m:
        return int(m.group(1))
    ppr = paragraph._p.pPr
    if ppr is not None:
        lvl = ppr.find("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}outlineLvl")
        if lvl is not None:
            return int(lvl.get("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}val")) + 1
    return None


def _kind(paragraph) -> str:
    style = (paragraph.style.name if paragraph.style is not None else "").lower()
    if "code" in style or "source" in style or "preformatted" in style:
        return "code"
    if "list" in style or paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None:
        return "list"
    return "paragraph"


def parse_docx(data: bytes) -> Parsed:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as err:  # python-docx raises several types for broken packages
        raise RejectError("parse", f"not a readable DOCX file: {err}") from None
    out = BlockBuilder()
    pending_code: list[str] = []

    def flush_code() -> None:
        if pending_code:
            out.add("code", "\n".join(pending_code))
            pending_code.clear()

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            flush_code()
            rows = [[cell.text for cell in row.cells] for row in item.rows]
            body, header_len = table_text(rows)
            out.add("table", body, header_len=header_len)
        elif isinstance(item, Paragraph):
            level = _level(item)
            if level is not None:
                flush_code()
                out.heading(item.text, level)
                continue
            kind = _kind(item)
            if kind == "code":
                pending_code.append(item.text.rstrip())
                continue
            flush_code()
            out.add(kind, squash(item.text))
    flush_code()
    props = document.core_properties
    meta = {k: v for k, v in {"title": props.title, "author": props.author}.items() if v}
    return out.build(meta)
