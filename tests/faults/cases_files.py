"""Fault cases: hostile and odd files, limits per input, the shape of chunks."""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

from faults.kit import GOOD, case, docs_with_good, ingest, offsets_hold, rejected, stored, stored_or_rejected


# -- files ----------------------------------------------------------------------------------------
@case("input", "empty file", "reject: empty")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "empty.txt").write_bytes(b"")
    return rejected(ingest(d), "empty.txt", "empty")


@case("input", "whitespace-only text", "reject: no text")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "blank.txt").write_text(" \n\t\n   \n" * 100)
    return rejected(ingest(d), "blank.txt", "no text")


@case("input", "all-NUL text", "reject: no text")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "nul.txt").write_bytes(b"\0" * 4096)
    return rejected(ingest(d), "nul.txt", "no text")


@case("input", "one bad byte in UTF-8 (< 1 MB)", "stored, U+FFFD, a warning")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "bad.txt").write_bytes("Café au lait, naïve résumé.\n".encode() * 200 + b"\xff tail\n")
    r = ingest(d, "--json")  # -q with --json: the JSON report alone
    warned = '"warning": "1 character(s) could not be decoded' in r.out
    held, seen = stored(r, "bad.txt")
    return held and warned, seen + ("; warned" if warned else "; no warning")


@case("input", "cp1252 text", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "legacy.txt").write_bytes("Les graines sont prêtées aux membres. Ça marche très bien.\n".encode("cp1252") * 30)
    return stored(ingest(d), "legacy.txt")


@case("input", "UTF-16 text with BOM", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "wide.txt").write_bytes("Seed packets are lent in spring.\n".encode("utf-16"))
    return stored(ingest(d), "wide.txt")


@case("input", "random bytes named .txt", "reject: binary")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "noise.txt").write_bytes(os.urandom(20000))
    return rejected(ingest(d), "noise.txt", "binary")


@case("input", "file name with invalid UTF-8 bytes", "stored under an escaped name, re-run unchanged")
def _(tmp):
    d = docs_with_good(tmp)
    with open(os.path.join(os.fsencode(d), b"caf\xe9-\xff.txt"), "w") as fh:
        fh.write(GOOD)
    r = ingest(d)
    again = ingest(d, "--json")
    held, seen = stored(r, "caf\\xe9-\\xff.txt")
    same = again.code == 0 and '"unchanged": 2' in again.out
    return held and same, seen + ("; re-run: unchanged" if same else f"; re-run {again.summary()}")


@case("input", "file name with newline and quotes", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / 'odd\n"name".txt').write_text(GOOD)
    return stored(ingest(d), 'odd\n"name".txt')


@case("input", "unsupported extension", "skipped and listed, exit 0; --strict: reject")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "thing.xyz").write_text("x")
    lenient = ingest(d, "--json")
    listed = json.loads(lenient.out or "{}").get("skipped_files", [])
    held_lenient = lenient.code == 0 and [Path(p).name for p in listed] == ["thing.xyz"] and lenient.stored("good.txt")
    held, seen = rejected(ingest(d, "--strict"), "thing.xyz", "unsupported")
    return held and held_lenient, f"without --strict: exit {lenient.code}, skipped {listed}; --strict: {seen}"


@case("input", "no extension", "skipped and listed (--strict: reject)")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "README").write_text("x")
    return rejected(ingest(d, "--strict"), "README", "unsupported")


def _pdf(objects: list[bytes]) -> bytes:
    out, offs = bytearray(b"%PDF-1.4\n"), []
    for i, o in enumerate(objects, 1):
        offs.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for o in offs:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _page_pdf(content: bytes, compress: bool = False) -> bytes:
    stream = zlib.compress(content, 9) if compress else content
    flt = b" /Filter /FlateDecode" if compress else b""
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                 b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R"
                 b" >> >> >>",
                 b"<< /Length %d%s >>\nstream\n" % (len(stream), flt) + stream + b"\nendstream",
                 b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"])


@case("input", "truncated PDF", "reject: parse")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "cut.pdf").write_bytes(_page_pdf(b"BT /F1 12 Tf 72 700 Td (Hello seeds) Tj ET")[:150])
    return rejected(ingest(d), "cut.pdf", "")


@case("input", "text file named .pdf", "reject: parse")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "fake.pdf").write_text("this is not a pdf at all\n" * 10)
    return rejected(ingest(d), "fake.pdf", "")


@case("input", "PDF with a blank page only", "reject: no extractable text")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "blank.pdf").write_bytes(_page_pdf(b""))
    return rejected(ingest(d), "blank.pdf", "no extractable text")


@case("input", "valid one-page PDF", "stored with page numbers")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "one.pdf").write_bytes(_page_pdf(b"BT /F1 12 Tf 72 700 Td (Seed packets rest a week.) Tj ET"))
    return stored(ingest(d), "one.pdf")


@case("limit", "PDF flate bomb (1 MB -> 1 GB stream)", "reject: --parse-memory, parent small")
def _(tmp):
    d = docs_with_good(tmp)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(b" " * (1 << 24)) for _ in range(64)) + comp.flush()
    head = _page_pdf(b"@@")
    (d / "bomb.pdf").write_bytes(head.replace(b"/Length 2 >>\nstream\n@@",
                                              b"/Length %d /Filter /FlateDecode >>\nstream\n" % len(body) + body)
                                 .replace(b"startxref", b"startxref"))
    r = ingest(d, "--parse-memory", "400")
    held, seen = rejected(r, "bomb.pdf", "parse-memory")
    if not held:  # pdfium may refuse the stream before inflating it all: still a reject, never a crash
        held, seen = rejected(r, "bomb.pdf", "")
    return held and r.peak_rss_mb < 1200, f"{seen}; peak RSS {r.peak_rss_mb:.0f} MB"


def _docx(paragraphs: list[str]) -> bytes:
    import io

    import docx

    doc = docx.Document()
    for p in paragraphs:
        doc.add_paragraph(p)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


@case("limit", "DOCX zip bomb (1 MB -> 400 MB XML)", "reject: zip bomb guard")
def _(tmp):
    import io

    d = docs_with_good(tmp)
    zin = zipfile.ZipFile(io.BytesIO(_docx(["hello"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for it in zin.infolist():
            data = zin.read(it.filename)
            if it.filename == "word/document.xml":  # 400,000 paragraphs of 1,000 letters
                para = b"<w:p><w:r><w:t>" + b"A" * 1000 + b"</w:t></w:r></w:p>"
                data = data.replace(b"<w:body>", b"<w:body>" + para * 400_000, 1)
            z.writestr(it.filename, data)
    (d / "bomb.docx").write_bytes(out.getvalue())
    r = ingest(d)
    held, seen = rejected(r, "bomb.docx", "zip bomb")
    return held and r.seconds < 60, f"{seen}; {r.seconds:.1f} s"


@case("input", "text file named .docx", "reject: not a zip")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "fake.docx").write_text("plain words\n")
    return rejected(ingest(d), "fake.docx", "")


@case("input", "truncated DOCX", "reject: parse")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "cut.docx").write_bytes(_docx(["Seed packets rest a week."] * 50)[:3000])
    return rejected(ingest(d), "cut.docx", "")


@case("input", "valid DOCX", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "ok.docx").write_bytes(_docx(["Seed packets rest a week.", "Members borrow seeds."]))
    return stored(ingest(d), "ok.docx")


@case("limit", "HTML with 100k nested <div>", "stored or rejected within --document-timeout")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "deep.html").write_bytes(b"<html><body>" + b"<div>" * 100_000 + b"deep text" + b"</div>" * 100_000
                                  + b"</body></html>")
    r = ingest(d, "--document-timeout", "20")
    held, seen = stored_or_rejected(r, "deep.html")
    return held and r.seconds < 60, f"{seen}; {r.seconds:.1f} s"


@case("limit", "parse past --document-timeout", "reject: --document-timeout, the run goes on")
def _(tmp):
    d = docs_with_good(tmp)
    # nested lists the HTML walker must descend: seconds of work, against a 1 s limit
    (d / "slow.html").write_bytes(b"<html><body>" + b"<p>word " * 400_000 + b"</body></html>")
    r = ingest(d, "--document-timeout", "0.5")
    return rejected(r, "slow.html", "document-timeout")


@case("limit", "sparse 1 GB .html", "reject: --max-file-mb, instantly")
def _(tmp):
    d = docs_with_good(tmp)
    with open(d / "sparse.html", "wb") as fh:
        fh.truncate(1 << 30)
    r = ingest(d)
    held, seen = rejected(r, "sparse.html", "max-file-mb")
    return held and r.seconds < 30, f"{seen}; {r.seconds:.1f} s"


@case("limit", "sparse 200 MB .txt (streamed path)", "reject: binary, memory bounded")
def _(tmp):
    d = docs_with_good(tmp)
    with open(d / "sparse.txt", "wb") as fh:
        fh.truncate(200 << 20)
    r = ingest(d, "--stream-mb", "8")
    held, seen = rejected(r, "sparse.txt", "binary")
    return held and r.peak_rss_mb < 1000, f"{seen}; peak RSS {r.peak_rss_mb:.0f} MB"


@case("input", "HTML with scripts only", "reject: no text")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "script.html").write_text("<html><head><script>var a = 1;</script></head><body><script>x()</script></body>")
    return rejected(ingest(d), "script.html", "no text")


@case("limit", "50 MB Markdown code block", "reject: --parse-memory (or stored), never GBs")
def _(tmp):
    d = docs_with_good(tmp)
    with open(d / "code.md", "w") as fh:
        fh.write("# Code\n\n```\n")
        line = "x = compute(alpha, beta, gamma)  # a comment\n"
        fh.write(line * (50_000_000 // len(line)))
        fh.write("```\n")
    r = ingest(d, "--parse-memory", "700")
    held, seen = stored_or_rejected(r, "code.md", "parse-memory")
    return held and r.peak_rss_mb < 1600, f"{seen}; peak RSS {r.peak_rss_mb:.0f} MB"


@case("input", "Markdown with 20k nested block quotes", "stored or rejected, no crash")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "quotes.md").write_text(">" * 20_000 + " deep\n")
    return stored_or_rejected(ingest(d, "--document-timeout", "30"), "quotes.md")


# -- text and chunk shape -------------------------------------------------------------------------
@case("chunk", "5 M characters without white space", "chunks <= 256 tokens and <= 25,600 characters")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "wall.txt").write_text("x" * 5_000_000)
    r = ingest(d, "-c", "recursive:size=256")
    import duckdb

    con = duckdb.connect(str(r.db), read_only=True)
    n, longest, most = con.execute("SELECT count(*), max(char_end - char_start), max(n_tokens) FROM chunks c JOIN "
                                   "documents d USING (doc_id) WHERE d.path LIKE '%wall.txt'").fetchone()
    con.close()
    held = r.code == 0 and longest <= 25_600 and most <= 256 and offsets_hold(r.db)
    return held, f"{r.summary()}; {n} chunks, longest {longest} chars, most {most} tokens"


@case("chunk", "zero-width space with fixed:size=4", "every character in a chunk")
def _(tmp):
    d = tmp / "docs"
    d.mkdir()
    text = "one two three four\u200bfive six seven eight nine ten"
    (d / "zw.txt").write_text(text)
    r = ingest(d, "-c", "fixed:size=4")
    import duckdb

    con = duckdb.connect(str(r.db), read_only=True)
    spans = con.execute("SELECT char_start, char_end FROM chunks ORDER BY seq").fetchall()
    con.close()
    covered = {i for a, b in spans for i in range(a, b)}
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and i not in covered]
    return r.code == 0 and not missing, f"{r.summary()}; {len(spans)} chunks, characters left out: {missing}"


@case("chunk", "CR-only and mixed line ends", "stored, offsets exact")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "cr.txt").write_bytes(b"first line\rsecond line\r\nthird\n\r\nfourth\r\r\rfifth\n" * 50)
    return stored(ingest(d, "-c", "recursive:size=16", "-c", "sentence:size=16", "-c", "fixed:size=8"), "cr.txt")


@case("chunk", "RTL, combining marks, ZWJ emoji", "stored, offsets exact")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "uni.txt").write_text(("שלום עולם. مرحبا بالعالم. e\u0301te\u0301 \U0001F469\u200D\U0001F52C "
                                "a\u200bb\u200cc\u200d.\n\n") * 80)
    return stored(ingest(d, "-c", "recursive:size=16", "-c", "sentence:size=16", "-c", "fixed:size=8",
                          "-c", "structure:size=32"), "uni.txt")


@case("input", "large text file, streamed path", "stored in blocks, offsets exact")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "big.txt").write_text(("Seed packets are lent to members in spring. " * 20 + "\n\n") * 3000)
    return stored(ingest(d, "--stream-mb", "1"), "big.txt")


