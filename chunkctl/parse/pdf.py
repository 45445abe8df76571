"""PDF text per page with pypdfium2 (default: fast, and closer to docling's ground truth here)
or pypdf (pure Python). Pages are joined by a blank line and recorded as spans, so every chunk
gets its page range; the outline (bookmarks), where present, gives heading paths."""
from __future__ import annotations

import re

from chunkctl.parse.blocks import BlockBuilder, Parsed, normalize
from chunkctl.types import RejectError

PDF_BACKENDS = ("pdfium", "pypdf")
_TRAILING_WS = re.compile(r"[ \t]+\n")
_PARA = re.compile(r"\n[ \t]*\n")


def _page_texts_pdfium(data: bytes) -> tuple[list[str], list[str | None], list[tuple[int, int, str]]]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        msg = str(err)
        if "password" in msg.lower():
            raise RejectError("parse", "encrypted PDF: a password is required") from None
        raise RejectError("parse", f"corrupt or truncated PDF: {msg}") from None
    try:
        texts, labels = [], []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
            labels.append(None)
        toc = []
        for item in pdf.get_toc():
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None:
                toc.append((item.level, index, item.get_title()))
    finally:
        pdf.close()
    return texts, labels, toc


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
    return texts, labels, []


def parse_pdf(data: bytes, backend: str = "pdfium") -> Parsed:
    if not data.startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        raise RejectError("parse", "not a PDF file (no %PDF header)")
    if backend not in PDF_BACKENDS:
        raise ValueError(f"unknown PDF backend {backend!r}; use one of {', '.join(PDF_BACKENDS)}")
    texts, labels, toc = (_page_texts_pdfium if backend == "pdfium" else _page_texts_pypdf)(data)
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
            out.add("paragraph", para.strip())
    parsed = out.build({"pages": len(texts), "pdf_backend": backend})
    if not parsed.text.strip() and texts:
        raise RejectError("parse", f"PDF has {len(texts)} pages but no extractable text (scanned? OCR is not supported)")
    return parsed
