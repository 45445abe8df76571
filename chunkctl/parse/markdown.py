"""Markdown: the source text is the document text (markup kept); markdown-it-py's block map
gives each heading, paragraph, list, table and code block its span."""
from __future__ import annotations

from chunkctl.parse.blocks import Parsed, normalize
from chunkctl.parse.text import decode
from chunkctl.types import Element

_KINDS = {
    "paragraph_open": "paragraph", "bullet_list_open": "list", "ordered_list_open": "list",
    "table_open": "table", "fence": "code", "code_block": "code", "blockquote_open": "paragraph",
    "html_block": "paragraph", "heading_open": "heading",
}


def parse_markdown(data: bytes) -> Parsed:
    from markdown_it import MarkdownIt

    raw, meta = decode(data)
    text = normalize(raw)
    line_starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            line_starts.append(i + 1)
    line_starts.append(len(text) + 1)

    def offset(line: int) -> int:
        return min(line_starts[line] if line < len(line_starts) else len(text), len(text))

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    elements: list[Element] = []
    path: list[tuple[int, str]] = []
    for i, tok in enumerate(tokens):
        kind = _KINDS.get(tok.type)
        if kind is None or tok.level != 0 or not tok.map:
            continue
        start, end = offset(tok.map[0]), offset(tok.map[1])
        while end > start and text[end - 1] in "\n ":
            end -= 1
        level, header_end = 0, None
        if kind == "heading":
            level = int(tok.tag[1])
            title = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title))
        elif kind == "table":
            header_end = min(offset(tok.map[0] + 1) - 1, end)  # the header row's line
        if end > start:
            elements.append(Element(kind, start, end, tuple(t for _, t in path), level, header_end))
    return Parsed(text, elements, [], meta)
