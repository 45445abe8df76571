"""Assemble one normalised text from a parser's blocks, recording each block's span, kind and
heading path as it goes, so offsets are right by construction."""
from __future__ import annotations

import re
from typing import Any, NamedTuple

from chunkctl.types import Element, Page

_NEWLINES = re.compile(r"\r\n?")
_SPACES = re.compile(r"[ \t\u00a0]+")


class Parsed(NamedTuple):
    text: str
    elements: list[Element]
    pages: list[Page]
    metadata: dict[str, Any]


def normalize(text: str) -> str:
    """The one normalisation every parser applies: CRLF/CR -> LF, no BOM, no NUL."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return _NEWLINES.sub("\n", text).replace("\x00", "")


def squash(text: str) -> str:
    """Collapse runs of spaces inside a line (HTML and DOCX runs) and trim each line."""
    return "\n".join(_SPACES.sub(" ", line).strip() for line in normalize(text).split("\n")).strip()


class BlockBuilder:
    """Blocks are joined by a blank line; headings maintain the heading path."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.elements: list[Element] = []
        self.pages: list[Page] = []
        self.path: list[tuple[int, str]] = []  # (level, title)

    def heading(self, title: str, level: int) -> None:
        title = squash(title)
        if not title:
            return
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, title))
        self.add("heading", title, level=level)

    def add(self, kind: str, text: str, level: int = 0, header_len: int | None = None) -> None:
        if not text.strip():
            return
        if self.parts:
            self.parts.append("\n\n")
            self.pos += 2
        start = self.pos
        self.parts.append(text)
        self.pos += len(text)
        heads = tuple(t for _, t in self.path)
        header_end = start + header_len if header_len is not None else None
        self.elements.append(Element(kind, start, self.pos, heads, level, header_end))

    def start_page(self, number: int, label: str | None = None) -> None:
        if self.pages:
            last = self.pages[-1]
            self.pages[-1] = Page(last.number, last.start, max(last.start, self.pos), last.label)
        start = self.pos + (2 if self.parts else 0)
        self.pages.append(Page(number, start, start, label))

    def build(self, metadata: dict[str, Any] | None = None) -> Parsed:
        text = "".join(self.parts)
        if self.pages:
            last = self.pages[-1]
            self.pages[-1] = Page(last.number, last.start, max(last.start, len(text)), last.label)
        return Parsed(text, self.elements, self.pages, metadata or {})


def table_text(rows: list[list[str]]) -> tuple[str, int | None]:
    """Rows as ``a | b | c`` lines; returns the text and the length of the header row."""
    lines = [" | ".join(squash(c).replace("\n", " ") for c in row) for row in rows]
    lines = [ln for ln in lines if ln.strip(" |")]
    if not lines:
        return "", None
    return "\n".join(lines), len(lines[0])
