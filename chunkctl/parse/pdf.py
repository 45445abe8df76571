"""PDF text per page with pypdfium2 (default: fast, and closer to docling's ground truth here)
or pypdf (pure Python). Pages are joined by a blank line and recorded as spans, so every chunk
gets its page range; the outline (bookmarks), where present, gives heading paths.

Without an outline (most PDFs), pdfium's fonts give them (``LineStyle``, ``heading_levels``): the
body size is the line height that covers the most characters; a short line (at most HEADING_WORDS
words, not a sentence, no dot leaders or bullet) is a heading when it is set at least 15% larger
than the body, or in a bold face at body size or larger. Lines repeated on many pages (running
headers) are not headings. The largest heading size is level 1, the next 2, then 3; bold at body
size comes below those. Consecutive heading lines of one level are one heading. The pypdf backend
has no font information: outline only."""
from __future__ import annotations

import re

from typing import NamedTuple

from chunkctl.parse.blocks import BlockBuilder, Parsed, normalize
from chunkctl.types import RejectError

PDF_BACKENDS = ("pdfium", "pypdf")
_TRAILING_WS = re.compile(r"[ \t]+\n")
_PARA = re.compile(r"\n[ \t]*\n")
HEADING_WORDS = 12
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi", re.I)
_FORCE_BOLD = 1 << 18  # PDF font flag


class LineStyle(NamedTuple):
    height: float  # the loose glyph box height of the line's first character: its font size, in effect
    bold: bool     # its first and last characters are set in a bold face
    chars: int


def _line_styles(textpage) -> dict[str, LineStyle]:
    """{stripped line: its style} for a page's lines, from pdfium's character boxes and fonts."""
    import ctypes

    import pypdfium2.raw as raw

    text = textpage.get_text_range()
    buf, flags = ctypes.create_string_buffer(96), ctypes.c_int()

    def bold(i: int) -> bool:
        raw.FPDFText_GetFontInfo(textpage.raw, i, buf, len(buf), ctypes.byref(flags))
        return bool(_BOLD_NAME.search(buf.value.decode("latin-1")) or flags.value & _FORCE_BOLD
                    or raw.FPDFText_GetFontWeight(textpage.raw, i) >= 600)

    out: dict[str, LineStyle] = {}
    pos = 0
    for line in text.split("\r\n") if len(text) == textpage.count_chars() else ():
        key = line.strip()
        if key and key not in out:
            first = pos + len(line) - len(line.lstrip())
            last = pos + len(line.rstrip()) - 1
            left, bottom, right, top = textpage.get_charbox(first, loose=True)
            out[key] = LineStyle(round((top - bottom) * 2) / 2, bold(first) and bold(last), len(key))
        pos += len(line) + 2
    return out


def heading_levels(pages: list[dict[str, LineStyle]]) -> dict[str, tuple[int, bool]]:
    """{line: (heading level, by size rather than by weight alone)} by the module's rule."""
    from collections import Counter

    weight: Counter = Counter()
    on_pages: Counter = Counter()
    for styles in pages:
        for line, st in styles.items():
            weight[st.height] += st.chars
            on_pages[line] += 1
    if not weight:
        return {}
    body = weight.most_common(1)[0][0]
    repeated = max(2, len(pages) // 3)

    def heading_like(line: str) -> bool:
        return (len(line.split()) <= HEADING_WORDS and len(line) <= 120 and line[-1] not in ".,;:" and
                sum(c.isalpha() for c in line) >= 3 and ". ." not in line and "...." not in line and
                "@" not in line and "://" not in line and line[0] not in "•·▪‣-–*" and on_pages[line] <= repeated)

    found: dict[str, float | None] = {}  # line -> its size, or None: bold at body size
    for styles in pages:
        for line, st in styles.items():
            if not heading_like(line):
                continue
            if st.height >= body * 1.15:
                found[line] = st.height
            elif st.bold and st.height >= body * 0.95:
                found[line] = None
    ranks: list[float] = []  # heading sizes within 8% of each other are one level
    for h in sorted({h for h in found.values() if h is not None}, reverse=True):
        if not ranks or h < ranks[-1] * 0.92:
            ranks.append(h)
    ranks = ranks[:3]
    below = len(ranks) + 1

    def level(h: float) -> int | None:
        return next((i + 1 for i, r in enumerate(ranks) if h >= r * 0.92), None)

    out = {}
    for line, h in found.items():
        if h is None:
            out[line] = (below, False)
        elif level(h) is not None:
            out[line] = (level(h), True)
    return out


def _page_texts_pdfium(data: bytes) -> tuple[list[str], list[str | None], list[tuple[int, int, str]],
                                            dict[str, tuple[int, bool]]]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        msg = str(err)
        if "password" in msg.lower():
            raise RejectError("parse", "encrypted PDF: a password is required") from None
        raise RejectError("parse", f"corrupt or truncated PDF: {msg}") from None
    try:
        toc = []
        for item in pdf.get_toc():
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None:
                toc.append((item.level, index, item.get_title()))
        texts, labels, styles = [], [], []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded())
            if not toc:
                styles.append(_line_styles(textpage))
            textpage.close()
            page.close()
            labels.append(None)
    finally:
        pdf.close()
    return texts, labels, toc, heading_levels(styles)


def _page_texts_pypdf(data: bytes) -> tuple[list[str], list[str | None], list[tuple[int, int, str]]]:
    import io
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # "Ignoring wrong pointing object" is not news
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise RejectError("parse", "encrypted PDF: a password is required")
        texts = [page.extract_text() or "" for page in reader.pages]
        labels = list(reader.page_labels)
    except RejectError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as err:
        raise RejectError("parse", f"corrupt or truncated PDF: {err}") from None
    return texts, labels, [], {}


def _add_lines(out: BlockBuilder, para: str, levels: dict[str, tuple[int, bool]]) -> None:
    """A paragraph whose lines may be headings (``levels``): each run of heading lines of one level
    becomes a heading, the lines between them paragraphs. A run of three or more lines that are
    headings by weight alone is bold text (code, a warning), not headings."""
    lines = para.split("\n")
    marks = [levels.get(line.strip()) for line in lines]
    i = 0
    while i < len(lines):  # runs of weight-only marks
        if marks[i] is not None and not marks[i][1]:
            j = i
            while j < len(lines) and marks[j] is not None and not marks[j][1]:
                j += 1
            if j - i >= 3:
                marks[i:j] = [None] * (j - i)
            i = j
        else:
            i += 1
    body: list[str] = []
    head: list[str] = []
    level = 0
    for line, mark in zip(lines, marks):
        if mark is not None and head and mark[0] == level:
            head.append(line.strip())
            continue
        if head:
            out.heading("\n".join(head), level)
            head = []
        if mark is not None:
            if body:
                out.add("paragraph", "\n".join(body).strip())
                body = []
            head, level = [line.strip()], mark[0]
        else:
            body.append(line)
    if head:
        out.heading("\n".join(head), level)
    if body:
        out.add("paragraph", "\n".join(body).strip())


def parse_pdf(data: bytes, backend: str = "pdfium") -> Parsed:
    if not data.startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        raise RejectError("parse", "not a PDF file (no %PDF header)")
    if backend not in PDF_BACKENDS:
        raise ValueError(f"unknown PDF backend {backend!r}; use one of {', '.join(PDF_BACKENDS)}")
    texts, labels, toc, levels = (_page_texts_pdfium if backend == "pdfium" else _page_texts_pypdf)(data)
    headings_by_page: dict[int, list[tuple[int, str]]] = {}
    for level, page_index, title in toc:
        headings_by_page.setdefault(page_index, []).append((level + 1, title))
    out = BlockBuilder()
    for number, (raw, label) in enumerate(zip(texts, labels), start=1):
        out.start_page(number, label if label and label != str(number) else None)
        for level, title in headings_by_page.get(number - 1, []):
            out.path = [p for p in out.path if p[0] < level] + [(level, title.strip())]
        text = _TRAILING_WS.sub("\n", normalize(raw)).strip()
        for para in _PARA.split(text):
            _add_lines(out, para.strip(), levels) if levels else out.add("paragraph", para.strip())
    parsed = out.build({"pages": len(texts), "pdf_backend": backend})
    if not parsed.text.strip() and texts:
        raise RejectError("parse", f"PDF has {len(texts)} pages but no extractable text (scanned? OCR is not supported)")
    return parsed
