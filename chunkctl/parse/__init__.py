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
from chunkctl.types import Document, RejectError

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

__all__ = ["KINDS", "MIME", "PDF_BACKENDS", "Parsed", "doc_id_for", "kind_of", "load_document", "parse_bytes"]


def kind_of(path: str | PurePath) -> str:
    """Parser kind for a path, or RejectError for a suffix nothing handles."""
    suffix = PurePath(path).suffix.lower()
    if suffix in KINDS:
        return KINDS[suffix]
    if suffix in UNSTRUCTURED_SUFFIXES:
        return "unstructured"
    raise RejectError("parse", f"unsupported file type {suffix or '(no extension)'!r}")


def parse_bytes(data: bytes, kind: str, suffix: str = "", pdf_backend: str = "pdfium") -> Parsed:
    if not data:
        raise RejectError("read", "empty file (0 bytes)")
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
    return hashlib.blake2b(os.path.abspath(path).encode(), digest_size=8).hexdigest()


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
        meta["first_heading"] = parsed.text[heading.start:heading.end].strip()
    if parsed.pages:
        meta["page_spans"] = [[p.number, p.start, p.end] for p in parsed.pages]
    return Document(doc_id_for(path), str(path), sha256 or hashlib.sha256(data).hexdigest(), MIME[kind],
                    parsed.text, parsed.elements, parsed.pages, meta)
