"""HTML with selectolax (Lexbor): block elements in document order become elements; tables
become ``a | b`` rows with the header row first; scripts, styles and navigation are dropped.

Headings are ``<h1>``–``<h6>`` and ``role="heading"``. A page with no ``<h*>`` at all (SEC filings,
exported word-processor files) marks its headings by weight alone; there a short bold block is a
heading: a ``<p>`` or ``<div>`` without block children, bold by its own style or with all of its text
in bold elements, at most HEADING_WORDS words, not a sentence (no final . , ; or ?), not in
parentheses. Level 1 when its font size is at least 14pt, else 2."""
from __future__ import annotations

import re

from chunkctl.parse.blocks import BlockBuilder, Parsed, table_text
from chunkctl.parse.text import decode

_DROP = {"script", "style", "noscript", "template", "svg", "head", "nav", "iframe", "button", "form"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_LEAF_BLOCKS = {"p": "paragraph", "li": "list", "dt": "list", "dd": "list", "pre": "code",
                "blockquote": "paragraph", "figcaption": "paragraph", "caption": "paragraph",
                "address": "paragraph"}
_CONTAINERS = {"html", "body", "div", "section", "article", "main", "header", "footer", "aside",
               "ul", "ol", "dl", "figure", "details", "summary", "center", "span", "font", "td", "th"}
_BLOCK_TAGS = set(_HEADINGS) | set(_LEAF_BLOCKS) | {"table", "div", "section", "article", "ul", "ol",
                                                   "dl", "main", "header", "footer", "aside", "figure"}


_WS = re.compile(r"\s+")
HEADING_WORDS = 12
_BOLD = re.compile(r"font-weight\s*:\s*(bold|bolder|[6-9]00)", re.I)
_SIZE = re.compile(r"font-size\s*:\s*([\d.]+)\s*(pt|px)", re.I)
_BR = "\x00"  # survives whitespace collapsing, then becomes a line break


def _inline(node, parts: list[str]) -> None:
    # an explicit stack, not recursion: 100,000 nested <b> must not end in a RecursionError
    stack = [node.iter(include_text=True)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif child.tag == "-text":
            parts.append(child.text_content or "")
        elif child.tag == "br":
            parts.append(_BR)
        elif child.tag not in _DROP and child.tag != "-comment":
            stack.append(child.iter(include_text=True))


def collapse(raw: str) -> str:
    """HTML whitespace rules: runs of white space are one space; <br> is a line break."""
    text = _WS.sub(" ", raw).replace(f" {_BR}", _BR).replace(f"{_BR} ", _BR)
    return text.replace(_BR, "\n").strip()


def inline_text(node) -> str:
    parts: list[str] = []
    _inline(node, parts)
    return collapse("".join(parts))


def _has_block_child(node) -> bool:
    return any(child.tag in _BLOCK_TAGS for child in node.iter())


def _bold_text(node) -> str:
    """The text of ``node`` inside bold elements (all of it when ``node`` itself is bold)."""
    if _BOLD.search(node.attributes.get("style") or ""):
        return inline_text(node)
    return " ".join(inline_text(b) for b in node.css("b, strong, [style*=font-weight]")
                    if b.tag in ("b", "strong") or _BOLD.search(b.attributes.get("style") or ""))


def bold_heading_level(node) -> int | None:
    """The level of a block that is a heading by weight alone (see the module's rule), or None."""
    text = inline_text(node)
    if not text or "\n" in text or len(text.split()) > HEADING_WORDS or text[-1] in ".,;?" or text[0] == "(":
        return None
    if not any(c.isalpha() for c in text) or _WS.sub("", _bold_text(node)) != _WS.sub("", text):
        return None
    sizes = [m for n in (node, *node.css("[style*=font-size]")) for m in _SIZE.findall(n.attributes.get("style") or "")]
    pt = max((float(v) * (0.75 if unit.lower() == "px" else 1) for v, unit in sizes), default=0.0)
    return 1 if pt >= 14 else 2


def _table_rows(table) -> list[list[str]]:
    return [[inline_text(cell) for cell in row.css("th, td")] for row in table.css("tr")]


def parse_html(data: bytes) -> Parsed:
    from selectolax.lexbor import LexborHTMLParser

    raw, decoded = decode(data)
    tree = LexborHTMLParser(raw)
    by_weight = tree.css_first("h1, h2, h3, h4, h5, h6") is None  # no <h*>: headings by weight
    out = BlockBuilder()
    inline: list[str] = []

    def flush() -> None:
        if inline:
            out.add("paragraph", collapse("".join(inline)))
            inline.clear()

    def walk(node) -> None:
        # an explicit stack of (children, is a block) instead of recursion: deep nesting (100,000
        # <div>) is parsed, not a RecursionError
        stack = [(node.iter(include_text=True), False)]
        while stack:
            child = next(stack[-1][0], None)
            if child is None:
                if stack.pop()[1]:
                    flush()
                continue
            tag = child.tag
            if tag == "-text":
                inline.append(child.text_content or "")
            elif tag in _DROP or tag == "-comment":
                continue
            elif tag in _HEADINGS:
                flush()
                out.heading(inline_text(child), _HEADINGS[tag])
            elif child.attributes.get("role") == "heading" and not _has_block_child(child):
                flush()
                level = child.attributes.get("aria-level") or "2"
                out.heading(inline_text(child), int(level) if level.isdigit() else 2)
            elif by_weight and tag in ("p", "div") and not _has_block_child(child) and \
                    (level := bold_heading_level(child)) is not None:
                flush()
                out.heading(inline_text(child), level)
            elif tag == "table":
                flush()
                body, header_len = table_text(_table_rows(child))
                out.add("table", body, header_len=header_len)
            elif tag == "pre":
                flush()
                out.add("code", child.text(deep=True).strip("\n"))
            elif tag in _LEAF_BLOCKS and not _has_block_child(child):
                flush()
                out.add(_LEAF_BLOCKS[tag], inline_text(child))
            elif tag in _LEAF_BLOCKS or tag in _CONTAINERS or tag in _BLOCK_TAGS:
                block = tag in _BLOCK_TAGS or tag in _LEAF_BLOCKS
                if block:
                    flush()
                stack.append((child.iter(include_text=True), block))  # flushed again when it ends
            elif tag == "br":
                inline.append(_BR)
            else:  # inline element: a, b, em, code, ...
                _inline(child, inline)

    root = tree.body or tree.root
    if root is not None:
        walk(root)
    flush()
    title = tree.css_first("title")
    meta = {"title": collapse(title.text())} if title is not None and title.text().strip() else {}
    return out.build({**meta, **({"replaced_chars": decoded["replaced_chars"]} if "replaced_chars" in decoded else {})})
