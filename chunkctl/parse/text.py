"""Plain text: encoding detection, binary sniffing, and a streamed reader for very large files."""
from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path
from typing import Iterator

from chunkctl.parse.blocks import Parsed, normalize
from chunkctl.types import Element, RejectError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_ALLOWED_CONTROL = set("\t\n\r\f\v")


def detect_encoding(sample: bytes) -> str:
    """The encoding of a text sample, or RejectError if the bytes are not text."""
    for bom, enc in _BOMS:
        if sample.startswith(bom):
            return enc
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as err:
        if err.start >= len(sample) - 3:  # a multi-byte character cut by the sample's end
            return "utf-8"
    if b"\x00" in sample:
        raise RejectError("parse", "binary content (NUL bytes) in a text file")
    # A few bad bytes in otherwise valid UTF-8 (a truncated copy, one corrupt sector) are replaced,
    # not a reason to reject the file. Valid multi-byte sequences say it is UTF-8; a legacy
    # single-byte text (cp1252) has none, and goes to the detector below.
    decoded = sample.decode("utf-8", errors="replace")
    few_bad = decoded.count("\ufffd") <= max(4, len(sample) // 1000)
    if few_bad and any(ord(c) > 127 and c != "\ufffd" for c in decoded):
        return "utf-8"
    from charset_normalizer import from_bytes

    matches = from_bytes(sample)
    best = matches.best()
    if best is None and few_bad:
        return "utf-8"
    if best is None:
        raise RejectError("parse", "binary content: no text encoding fits these bytes")
    # charset-normalizer breaks ties by list order and often names cp1250 for French or German
    # text; among equally good candidates prefer cp1252, by far the commonest legacy encoding.
    tied = [m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    return "cp1252" if "cp1252" in tied else best.encoding


def check_textual(text: str, path_hint: str = "") -> None:
    sample = text[:65536]
    if not sample:
        return
    bad = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROL)
    if bad / len(sample) > 0.01 or "\ufffd" * 8 in sample:
        raise RejectError("parse", f"binary content: {bad} control characters in the first {len(sample)}")


def paragraphs(text: str, base: int = 0) -> list[Element]:
    out, start = [], 0
    for m in _PARAGRAPH.finditer(text):
        if text[start:m.start()].strip():
            out.append(Element("paragraph", base + start, base + m.start()))
        start = m.end()
    if text[start:].strip():
        out.append(Element("paragraph", base + start, base + len(text.rstrip())))
    return out


def decode(data: bytes) -> tuple[str, dict]:
    """The bytes as text, and metadata: the encoding, and how many characters could not be decoded
    (each became U+FFFD; the ingest summary warns about them)."""
    encoding = detect_encoding(data[:1 << 20])
    text = data.decode(encoding, errors="replace")
    replaced = text.count("\ufffd")
    return text, {"encoding": encoding, **({"replaced_chars": replaced} if replaced else {})}


def parse_text(data: bytes) -> Parsed:
    raw, meta = decode(data)
    text = normalize(raw)
    check_textual(text)
    return Parsed(text, paragraphs(text), [], meta)


def block_end(text: str, start: int, block_chars: int) -> int:
    """Where a block of about ``block_chars`` starting at ``start`` ends: after its last blank line
    (if that is past the block's middle), else after its last line end, else at ``block_chars``."""
    limit = start + block_chars
    if limit > len(text):
        return len(text)
    cut = text.rfind("\n\n", start, limit)
    if cut - start < block_chars // 2:
        cut = text.rfind("\n", start, limit)
    return cut + 1 if cut > start else limit


def stream_text_blocks(path: Path, block_chars: int = 4 << 20) -> Iterator[tuple[str, str]]:
    """Yield (encoding, block) for a large text file: normalised text in blocks of about
    ``block_chars``, each cut after a blank line (or a line end) so blocks chunk independently.
    Memory stays bounded by the block size whatever the file size."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
        encoding = detect_encoding(head)
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        pending = ""
        first = True
        data = head
        while True:
            chunk = decoder.decode(data, final=not data)
            if first:
                check_textual(chunk)
                first = False
            pending += chunk
            # keep a trailing CR: it may pair with an LF in the next read
            hold = pending.endswith("\r") and bool(data)
            body, pending = (pending[:-1], "\r") if hold else (pending, "")
            buf = normalize(body)  # idempotent, so text carried over is safe to normalise again
            while len(buf) >= block_chars:
                cut = block_end(buf, 0, block_chars)
                yield encoding, buf[:cut]
                buf = buf[cut:]
            pending = buf + pending
            if not data:
                break
            data = fh.read(1 << 20)
        if pending:
            yield encoding, normalize(pending)
