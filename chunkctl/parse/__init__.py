"""Parsing: bytes of a file -> one normalised text with structural elements and page spans.

The light parser for each format is chosen by file suffix; formats they do not cover go to the
optional unstructured extra. Heavy parser libraries are imported only when a file needs them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import PurePath

from chunkctl.parse.blocks import Parsed
from chunkctl.parse.pdf import PDF_BACKENDS
from chunkctl.parse.unstructured import SUFFIXES as UNSTRUCTURED_SUFFIXES
from chunkctl.types import Document, RejectError, shown

KINDS = {
    ".txt": "text", ".text": "text", ".log": "text", ".csv": "text", ".tsv": "text",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".docx": "docx", ".pdf": "pdf",
}
MIME = {
    "text": "text/plain", "markdown": "text/markdown", "html": "text/html", "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "unstructured": "application/octet-stream",
}

__all__ = ["KINDS", "MIME", "PDF_BACKENDS", "Parsed", "doc_id_for", "kind_of", "load_document", "parse_bytes", "readable",
           "sniff_kind"]


def heading_words(source: str) -> str:
    """A heading's words without its Markdown markup: ``## Setup ##`` and a setext underline are not
    part of a title."""
    import re

    line = source.strip().split("\n", 1)[0]
    return re.sub(r"^#{1,6}\s+|\s+#+\s*$", "", line).strip()


def sniff_kind(data: bytes) -> str:
    """The parser for bytes without a file name (standard input), from what they start with: PDF,
    DOCX (a zip with word/document.xml), HTML, Markdown (an ATX heading, a fence or a setext
    underline near the top), else text."""
    import re

    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04") and b"word/" in data[:65536]:
        return "docx"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
            head.startswith(b"<") and re.search(rb"<(p|div|h[1-6]|table|ul|article)[\s>]", head)):
        return "html"
    top = data[:65536].decode("utf-8", "replace")
    if re.search(r"(?m)^(#{1,6} \S|```|~~~)", top) or re.search(r"(?m)^\S.*\n(=+|-+)[ \t]*$", top):
        return "markdown"
    return "text"


def readable(path: str | PurePath) -> bool:
    """Whether some parser takes files with this suffix."""
    suffix = PurePath(path).suffix.lower()
    return suffix in KINDS or suffix in UNSTRUCTURED_SUFFIXES


def kind_of(path: str | PurePath) -> str:
    """Parser kind for a path, or RejectError for a suffix nothing handles."""
    suffix = PurePath(path).suffix.lower()
    if suffix in KINDS:
        return KINDS[suffix]
    if suffix in UNSTRUCTURED_SUFFIXES:
        return "unstructured"
    raise RejectError("parse", f"unsupported file type {suffix or '(no extension)'!r}")


ZIP_MAX_BYTES = 1 << 30  # a zip container (DOCX, PPTX, EPUB, ...) may expand to at most this
ZIP_MAX_RATIO = 200  # ... and no member larger than ZIP_RATIO_FLOOR may expand more than this
ZIP_RATIO_FLOOR = 16 << 20


def check_zip(data: bytes) -> None:
    """Reject a zip bomb before a parser opens it. Python's zipfile (python-docx, python-pptx,
    unstructured) never reads a member past its declared size, so the declared sizes bound the work."""
    import io
    import zipfile

    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise RejectError("parse", f"not a valid zip container: {err}") from None
    total = sum(i.file_size for i in infos)
    if total > ZIP_MAX_BYTES:
        raise RejectError("parse", f"zip bomb guard: the container expands to {total >> 20} MB "
                                   f"(more than {ZIP_MAX_BYTES >> 20} MB)")
    for i in infos:
        if i.file_size > ZIP_RATIO_FLOOR and i.file_size > ZIP_MAX_RATIO * max(i.compress_size, 1):
            raise RejectError("parse", f"zip bomb guard: {i.filename} expands {i.file_size // max(i.compress_size, 1)}"
                                       f"x to {i.file_size >> 20} MB")


def parse_bytes(data: bytes, kind: str, suffix: str = "", pdf_backend: str = "pdfium") -> Parsed:
    if not data:
        raise RejectError("read", "empty file (0 bytes)")
    if data[:4] == b"PK\x03\x04" and kind in ("docx", "unstructured"):
        check_zip(data)
    if kind == "text":
        from chunkctl.parse.text import parse_text
        return parse_text(data)
    if kind == "markdown":
        from chunkctl.parse.markdown import parse_markdown
        return parse_markdown(data)
    if kind == "html":
        from chunkctl.parse.html import parse_html
        return parse_html(data)
    if kind == "docx":
        from chunkctl.parse.docx import parse_docx
        return parse_docx(data)
    if kind == "pdf":
        from chunkctl.parse.pdf import parse_pdf
        return parse_pdf(data, pdf_backend)
    if kind == "unstructured":
        from chunkctl.parse.unstructured import parse_unstructured
        return parse_unstructured(data, suffix)
    raise ValueError(f"unknown parser kind {kind!r}")


def doc_id_for(path: str | PurePath) -> str:
    """Stable across edits of the file: derived from its absolute path ("-" for standard input)."""
    if str(path) == "-":
        return "-"
    # fsencode: a name with bytes that are not UTF-8 hashes its real bytes (str.encode would fail)
    return hashlib.blake2b(os.fsencode(os.path.abspath(path)), digest_size=8).hexdigest()


def load_document(path: str | PurePath, data: bytes, kind: str | None = None, pdf_backend: str = "pdfium",
                  sha256: str | None = None) -> Document:
    """Parse one file's bytes into a Document (RejectError for anything unusable). ``kind``
    overrides the parser chosen by suffix (needed for standard input, path "-")."""
    path = PurePath(path)
    kind = kind or kind_of(path)
    try:
        parsed = parse_bytes(data, kind, path.suffix.lower(), pdf_backend)
    except RejectError:
        raise
    except Exception as err:  # a parser bug or an exotic broken file: a reject, not a crash
        raise RejectError("parse", f"{kind} parser failed: {type(err).__name__}: {err}") from None
    meta = dict(parsed.metadata)
    meta["parser"] = meta.get("parser", kind)
    heading = next((e for e in parsed.elements if e.kind == "heading"), None)
    if heading is not None:  # the title enrichment falls back to it, also for a stored document
        meta["first_heading"] = heading_words(parsed.text[heading.start:heading.end])
    if parsed.pages:
        meta["page_spans"] = [[p.number, p.start, p.end] for p in parsed.pages]
    if not parsed.text.strip():
        raise RejectError("parse", "no text: the document is empty or white space once parsed")
    return Document(doc_id_for(path), shown(str(path)), sha256 or hashlib.sha256(data).hexdigest(), MIME[kind],
                    parsed.text, parsed.elements, parsed.pages, meta)
