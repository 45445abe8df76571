"""The embedded text: a metadata block before (``prefix``) or after (``suffix``) the chunk's text,
or the text alone (``plain``), RAGMate's strategies 1 and 2; and the overflow rule.

The block is one ``Name: value`` line per field, in the order of the fields asked for. The text is
the chunk's own (or what its chunker asked to embed, a QChunker completion): never cut here.

**Overflow rule** (LlamaIndex users' top complaint is a prefix that silently pushes the text out of
the embedder's window). Counted with the embedder's own tokenizer on the final string, special
tokens aside: when block + text is longer than the embedder's window, lines are dropped from the
end of the block (the last field first) until it fits; the last line kept may be cut at a word
boundary (ending in "…") when at least ``MIN_CUT`` of its tokens fit. A text that fills the window
alone gets no block. What was dropped or cut is recorded in the chunk's ``metadata.embed``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("plain", "prefix", "suffix")
MIN_CUT = 4  # tokens: a line cut shorter than this says nothing, so it is dropped instead


@dataclass(frozen=True)
class Built:
    embed_text: str  # the text itself when there is nothing to add (plain, no field, no room)
    block: str  # the whole metadata block (untrimmed), for the metadata vector of fusion
    dropped: tuple[str, ...] = ()  # fields left out to fit the window
    cut: str | None = None  # the field whose line was shortened
    record: dict = field(default_factory=dict)


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "; ".join(str(x) for x in v if str(x).strip())
    return " ".join(str(v).split())


def block_lines(values: dict[str, object], fields: tuple[str, ...]) -> list[tuple[str, str]]:
    """(field, line) for each asked field that has a non-empty value, in ``fields`` order."""
    lines = []
    for f in fields:
        v = values.get(f)
        if v is None or (text := _value(v)) == "":
            continue
        lines.append((f, f"{f.capitalize()}: {text}"))
    return lines


def compose(fmt: str, block: str, text: str) -> str:
    if not block or fmt == "plain":
        return text
    return f"{block}\n\n{text}" if fmt == "prefix" else f"{text}\n\n{block}"


def build(values: dict[str, object], fields: tuple[str, ...], fmt: str, text: str, count, max_tokens: int) -> Built:
    """The embedded text of one chunk. ``count(s)`` is the embedder's token count of ``s``."""
    if fmt not in FORMATS:
        raise ValueError(f"embed format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    lines = block_lines(values, fields)
    block = "\n".join(line for _, line in lines)
    if fmt == "plain" or not lines:
        return Built(text, block)
    if count(compose(fmt, block, text)) <= max_tokens:
        return Built(compose(fmt, block, text), block)
    kept = list(lines)
    cut = None
    while kept:
        kept.pop()
        room = max_tokens - count(compose(fmt, "\n".join(x for _, x in kept), text))
        if room <= 0:
            continue
        # the first dropped line, shortened word by word to what is left (the separator counts nothing:
        # a WordPiece count is additive across whitespace)
        name, line = lines[len(kept)]
        words = line.split(" ")
        lo, hi = 0, len(words) - 1  # the most words that fit (binary search on a monotone count)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(" ".join(words[:mid]) + " …") <= room:
                lo = mid
            else:
                hi = mid - 1
        head = " ".join(words[:lo])
        if lo >= 2 and count(head) >= MIN_CUT and count(compose(fmt, "\n".join([*(x for _, x in kept), head + " …"]),
                                                                text)) <= max_tokens:
            kept.append((name, head + " …"))
            cut = name
        break
    dropped = tuple(f for f, _ in lines[len(kept):])
    short = "\n".join(x for _, x in kept)
    embed_text = compose(fmt, short, text) if kept else text
    record = {"dropped": list(dropped), **({"cut": cut} if cut else {})}
    return Built(embed_text, block, dropped, cut, record)
