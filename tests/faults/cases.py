"""The fault catalogue: each case builds a real hostile input (a file, a killed process, a full
disk, a misbehaving HTTP server on 127.0.0.1), runs chunkctl on it, and says what it observed and
whether that is what a user must get. `tests/faults/` runs every case; `bench/fault_suite.py`
prints them as a table with peak memory and time.

A case returns (held, observed); it may raise Skip(reason) where the machine cannot stage it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: llm_server
from faults.kit import CHUNKCTL, GOOD, docs_with_good, ingest, offsets_hold, run  # noqa: E402


class Skip(Exception):
    pass


@dataclass
class Case:
    group: str
    kind: str
    expected: str
    fn: Callable[[Path], tuple[bool, str]]


CASES: list[Case] = []


def case(group: str, kind: str, expected: str):
    def register(fn):
        CASES.append(Case(group, kind, expected, fn))
        return fn
    return register


def _rejected(r, name: str, *words: str) -> tuple[bool, str]:
    """A bad file rejected with a reason naming ``words``, the good file stored, exit 3, no traceback."""
    rej = r.reject_of(name)
    held = (r.code == 3 and rej is not None and all(w.lower() in rej[1].lower() for w in words)
            and r.stored("good.txt") and not r.traceback)
    seen = f"rejected ({rej[0]}): {rej[1][:110]}" if rej else ("stored" if r.stored(name) else "absent")
    return held, f"{r.summary()}; {seen}"


def _stored(r, name: str, code: int = 0) -> tuple[bool, str]:
    held = r.code == code and r.stored(name) and r.stored("good.txt") and not r.traceback and offsets_hold(r.db)
    return held, f"{r.summary()}; {'stored' if r.stored(name) else 'not stored'}"


# -- files ----------------------------------------------------------------------------------------
@case("input", "empty file", "reject: empty")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "empty.txt").write_bytes(b"")
    return _rejected(ingest(d), "empty.txt", "empty")


@case("input", "whitespace-only text", "reject: no text")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "blank.txt").write_text(" \n\t\n   \n" * 100)
    return _rejected(ingest(d), "blank.txt", "no text")


@case("input", "all-NUL text", "reject: no text")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "nul.txt").write_bytes(b"\0" * 4096)
    return _rejected(ingest(d), "nul.txt", "no text")


@case("input", "one bad byte in UTF-8 (< 1 MB)", "stored, U+FFFD, a warning")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "bad.txt").write_bytes("Café au lait, naïve résumé.\n".encode() * 200 + b"\xff tail\n")
    r = ingest(d, "--json")  # -q with --json: the JSON report alone
    warned = '"warning": "1 character(s) could not be decoded' in r.out
    held, seen = _stored(r, "bad.txt")
    return held and warned, seen + ("; warned" if warned else "; no warning")


@case("input", "cp1252 text", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "legacy.txt").write_bytes("Les graines sont prêtées aux membres. Ça marche très bien.\n".encode("cp1252") * 30)
    return _stored(ingest(d), "legacy.txt")


@case("input", "UTF-16 text with BOM", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "wide.txt").write_bytes("Seed packets are lent in spring.\n".encode("utf-16"))
    return _stored(ingest(d), "wide.txt")


@case("input", "random bytes named .txt", "reject: binary")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "noise.txt").write_bytes(os.urandom(20000))
    return _rejected(ingest(d), "noise.txt", "binary")


@case("input", "file name with invalid UTF-8 bytes", "stored under an escaped name, re-run unchanged")
def _(tmp):
    d = docs_with_good(tmp)
    with open(os.path.join(os.fsencode(d), b"caf\xe9-\xff.txt"), "w") as fh:
        fh.write(GOOD)
    r = ingest(d)
    again = ingest(d, "--json")
    held, seen = _stored(r, "caf\\xe9-\\xff.txt")
    same = again.code == 0 and '"unchanged": 2' in again.out
    return held and same, seen + ("; re-run: unchanged" if same else f"; re-run {again.summary()}")


@case("input", "file name with newline and quotes", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / 'odd\n"name".txt').write_text(GOOD)
    return _stored(ingest(d), 'odd\n"name".txt')


@case("input", "unsupported extension", "reject: unsupported file type")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "thing.xyz").write_text("x")
    return _rejected(ingest(d), "thing.xyz", "unsupported")


@case("input", "no extension", "reject: unsupported file type")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "README").write_text("x")
    return _rejected(ingest(d), "README", "unsupported")


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
    return _rejected(ingest(d), "cut.pdf", "")


@case("input", "text file named .pdf", "reject: parse")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "fake.pdf").write_text("this is not a pdf at all\n" * 10)
    return _rejected(ingest(d), "fake.pdf", "")


@case("input", "PDF with a blank page only", "reject: no extractable text")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "blank.pdf").write_bytes(_page_pdf(b""))
    return _rejected(ingest(d), "blank.pdf", "no extractable text")


@case("input", "valid one-page PDF", "stored with page numbers")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "one.pdf").write_bytes(_page_pdf(b"BT /F1 12 Tf 72 700 Td (Seed packets rest a week.) Tj ET"))
    return _stored(ingest(d), "one.pdf")


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
    held, seen = _rejected(r, "bomb.pdf", "parse-memory")
    if not held:  # pdfium may refuse the stream before inflating it all: still a reject, never a crash
        held, seen = _rejected(r, "bomb.pdf", "")
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
    held, seen = _rejected(r, "bomb.docx", "zip bomb")
    return held and r.seconds < 60, f"{seen}; {r.seconds:.1f} s"


@case("input", "text file named .docx", "reject: not a zip")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "fake.docx").write_text("plain words\n")
    return _rejected(ingest(d), "fake.docx", "")


@case("input", "truncated DOCX", "reject: parse")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "cut.docx").write_bytes(_docx(["Seed packets rest a week."] * 50)[:3000])
    return _rejected(ingest(d), "cut.docx", "")


@case("input", "valid DOCX", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "ok.docx").write_bytes(_docx(["Seed packets rest a week.", "Members borrow seeds."]))
    return _stored(ingest(d), "ok.docx")


@case("limit", "HTML with 100k nested <div>", "stored or rejected within --document-timeout")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "deep.html").write_bytes(b"<html><body>" + b"<div>" * 100_000 + b"deep text" + b"</div>" * 100_000
                                  + b"</body></html>")
    r = ingest(d, "--document-timeout", "20")
    held = r.code in (0, 3) and r.stored("good.txt") and not r.traceback and r.seconds < 60 and (
        r.stored("deep.html") or r.reject_of("deep.html") is not None)
    rej = r.reject_of("deep.html")
    return held, f"{r.summary()}; {'stored' if r.stored('deep.html') else f'rejected: {rej[1][:80]}' if rej else '?'}; " \
                 f"{r.seconds:.1f} s"


@case("limit", "parse past --document-timeout", "reject: --document-timeout, the run goes on")
def _(tmp):
    d = docs_with_good(tmp)
    # nested lists the HTML walker must descend: seconds of work, against a 1 s limit
    (d / "slow.html").write_bytes(b"<html><body>" + b"<p>word " * 400_000 + b"</body></html>")
    r = ingest(d, "--document-timeout", "0.5")
    return _rejected(r, "slow.html", "document-timeout")


@case("limit", "sparse 1 GB .html", "reject: --max-file-mb, instantly")
def _(tmp):
    d = docs_with_good(tmp)
    with open(d / "sparse.html", "wb") as fh:
        fh.truncate(1 << 30)
    r = ingest(d)
    held, seen = _rejected(r, "sparse.html", "max-file-mb")
    return held and r.seconds < 30, f"{seen}; {r.seconds:.1f} s"


@case("limit", "sparse 200 MB .txt (streamed path)", "reject: binary, memory bounded")
def _(tmp):
    d = docs_with_good(tmp)
    with open(d / "sparse.txt", "wb") as fh:
        fh.truncate(200 << 20)
    r = ingest(d, "--stream-mb", "8")
    held, seen = _rejected(r, "sparse.txt", "binary")
    return held and r.peak_rss_mb < 1000, f"{seen}; peak RSS {r.peak_rss_mb:.0f} MB"


@case("input", "HTML with scripts only", "reject: no text")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "script.html").write_text("<html><head><script>var a = 1;</script></head><body><script>x()</script></body>")
    return _rejected(ingest(d), "script.html", "no text")


@case("limit", "50 MB Markdown code block", "reject: --parse-memory (or stored), never GBs")
def _(tmp):
    d = docs_with_good(tmp)
    with open(d / "code.md", "w") as fh:
        fh.write("# Code\n\n```\n")
        line = "x = compute(alpha, beta, gamma)  # a comment\n"
        fh.write(line * (50_000_000 // len(line)))
        fh.write("```\n")
    r = ingest(d, "--parse-memory", "700")
    held = r.code in (0, 3) and r.stored("good.txt") and not r.traceback and r.peak_rss_mb < 1600 and (
        r.stored("code.md") or "parse-memory" in (r.reject_of("code.md") or ("", ""))[1])
    rej = r.reject_of("code.md")
    return held, f"{r.summary()}; {'stored' if r.stored('code.md') else rej[1][:70] if rej else '?'}; " \
                 f"peak RSS {r.peak_rss_mb:.0f} MB"


@case("input", "Markdown with 20k nested block quotes", "stored or rejected, no crash")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "quotes.md").write_text(">" * 20_000 + " deep\n")
    r = ingest(d, "--document-timeout", "30")
    held = r.code in (0, 3) and r.stored("good.txt") and not r.traceback
    return held, f"{r.summary()}; {'stored' if r.stored('quotes.md') else 'rejected'}"


# -- the file system ------------------------------------------------------------------------------
@case("fs", "named pipe in the folder", "reject: not a regular file")
def _(tmp):
    d = docs_with_good(tmp)
    os.mkfifo(d / "pipe.txt")
    return _rejected(ingest(d, timeout=60), "pipe.txt", "named pipe")


@case("fs", "file replaced by a FIFO after the walk", "reject at open, no hang")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "z-late.txt").write_text(GOOD)
    code = (
        "import os, sys\n"
        "from chunkctl.chunkers import parse_spec\nfrom chunkctl.pipeline import IngestOptions, ingest\n"
        "from chunkctl.store import Store\n"
        "late = sys.argv[2] + '/z-late.txt'\n"
        "def on_file(path, status, total):\n"
        "    if path.endswith('good.txt'):\n"
        "        os.unlink(late); os.mkfifo(late)\n"
        "with Store(sys.argv[1]) as st:\n"
        "    r = ingest(st, [sys.argv[2]], IngestOptions([parse_spec('recursive')], parse_workers=0), on_file=on_file)\n"
        "print([(x.path, x.reason) for x in r.rejects])\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp / "s.duckdb"), str(d)], capture_output=True, text=True,
                       timeout=60)
    held = p.returncode == 0 and "not a regular file" in p.stdout and "z-late.txt" in p.stdout
    return held, (p.stdout.strip() or p.stderr.strip().splitlines()[-1])[:160]


@case("fs", "unix socket in the folder", "reject: not a regular file")
def _(tmp):
    d = docs_with_good(tmp)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "sock.txt"))
    try:
        return _rejected(ingest(d), "sock.txt", "socket")
    finally:
        s.close()


def _secret(tmp: Path) -> Path:
    outside = tmp / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "shadow.txt").write_text("root:SECRET-HASH:19000:0:99999:7:::\n")
    return outside


@case("security", "symlink to a file outside the folder", "reject: leads outside; text never stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "link.txt").symlink_to(_secret(tmp) / "shadow.txt")
    r = ingest(d)
    held, seen = _rejected(r, "link.txt", "outside")
    return held and not r.stored("link.txt"), seen


@case("security", "symlink outside, --follow-symlinks", "stored (the user asked)")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "link.txt").symlink_to(_secret(tmp) / "shadow.txt")
    return _stored(ingest(d, "--follow-symlinks"), "link.txt")


@case("security", "symlink to a folder outside", "reject: leads outside")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "etc").symlink_to(_secret(tmp), target_is_directory=True)
    r = ingest(d)
    held, seen = _rejected(r, "etc", "outside")
    return held and not r.stored("shadow.txt"), seen


@case("security", "symlink to /etc/passwd", "reject: leads outside")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "passwd.txt").symlink_to("/etc/passwd")
    return _rejected(ingest(d), "passwd.txt", "outside")


@case("fs", "symlink inside the folder", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "sub").mkdir()
    (d / "sub" / "real.txt").write_text(GOOD + "more\n")
    (d / "alias.txt").symlink_to(d / "sub" / "real.txt")
    return _stored(ingest(d), "alias.txt")


@case("fs", "broken symlink", "reject: broken symlink")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "gone.txt").symlink_to(tmp / "nowhere.txt")
    return _rejected(ingest(d), "gone.txt", "broken symlink")


@case("fs", "symlink loop", "reject: loop")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "a.txt").symlink_to(d / "b.txt")
    (d / "b.txt").symlink_to(d / "a.txt")
    return _rejected(ingest(d), "a.txt", "loop")


@case("fs", "folder symlinked into itself", "reject: loop, walk ends")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "again").symlink_to(d, target_is_directory=True)
    r = ingest(d)
    return _rejected(r, "again", "loop")


@case("fs", "file deleted after the walk", "reject: cannot open")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "z-gone.txt").write_text(GOOD)
    code = (
        "import os, sys\n"
        "from chunkctl.chunkers import parse_spec\nfrom chunkctl.pipeline import IngestOptions, ingest\n"
        "from chunkctl.store import Store\n"
        "def on_file(path, status, total):\n"
        "    if path.endswith('good.txt'):\n"
        "        os.unlink(sys.argv[2] + '/z-gone.txt')\n"
        "with Store(sys.argv[1]) as st:\n"
        "    r = ingest(st, [sys.argv[2]], IngestOptions([parse_spec('recursive')], parse_workers=0), on_file=on_file)\n"
        "print([(x.path, x.reason) for x in r.rejects])\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp / "s.duckdb"), str(d)], capture_output=True, text=True,
                       timeout=60)
    held = p.returncode == 0 and "cannot open" in p.stdout
    return held, (p.stdout.strip() or p.stderr.strip().splitlines()[-1])[:160]


@case("fs", "parser process killed by a signal", "reject: the parser crashed; run goes on")
def _(tmp):
    from chunkctl.parse.isolated import ParsePool

    pool = ParsePool(1, timeout_s=30)
    try:
        job = pool.submit("x.txt", b"hello world " * 10)
        pool.result(job)
        worker = pool._idle[0]
        job = pool.submit("y.html", b"<p>word " * 3_000_000)
        time.sleep(0.3)
        os.kill(worker.proc.pid, signal.SIGSEGV)
        try:
            pool.result(job)
            return False, "parsed?"
        except Exception as e:
            ok = pool.parse("z.txt", GOOD.encode()).text.startswith("Seed")
            return "crashed" in str(e) and ok, f"{e}; next file parsed: {ok}"
    finally:
        pool.close()


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
    return _stored(ingest(d, "-c", "recursive:size=16", "-c", "sentence:size=16", "-c", "fixed:size=8"), "cr.txt")


@case("chunk", "RTL, combining marks, ZWJ emoji", "stored, offsets exact")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "uni.txt").write_text(("שלום עולם. مرحبا بالعالم. e\u0301te\u0301 \U0001F469\u200D\U0001F52C "
                                "a\u200bb\u200cc\u200d.\n\n") * 80)
    return _stored(ingest(d, "-c", "recursive:size=16", "-c", "sentence:size=16", "-c", "fixed:size=8",
                          "-c", "structure:size=32"), "uni.txt")


@case("input", "large text file, streamed path", "stored in blocks, offsets exact")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "big.txt").write_text(("Seed packets are lent to members in spring. " * 20 + "\n\n") * 3000)
    return _stored(ingest(d, "--stream-mb", "1"), "big.txt")


# -- the store ------------------------------------------------------------------------------------
@case("store", "0-byte store file (killed while created)", "replaced, ingest works")
def _(tmp):
    d = docs_with_good(tmp)
    (tmp / "store.duckdb").write_bytes(b"")
    r = ingest(d)
    return r.code == 0 and r.stored("good.txt"), r.summary()


@case("store", "kill -9 around store creation (10 moments)", "every re-run works")
def _(tmp):
    d = docs_with_good(tmp)
    bad = []
    for i in range(10):
        db = tmp / f"k{i}.duckdb"
        p = subprocess.Popen([*CHUNKCTL, "ingest", str(d), "--db", str(db), "--no-embed", "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.25 + 0.08 * i)
        p.send_signal(signal.SIGKILL)
        p.wait()
        r = run("ingest", d, "--db", db, "--no-embed", "-q", db=db)
        if not (r.code == 0 and r.stored("good.txt")):
            bad.append((i, r.summary()))
    return not bad, f"10 kills, re-runs failed: {bad}" if bad else "10 kills, 10 re-runs exit 0 with the document"


@case("store", "kill -9 while a file streams", "temp file removed by the next run; document whole")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "big.txt").write_text(("Seed packets are lent to members in spring. " * 20 + "\n\n") * 30000)
    db = tmp / "store.duckdb"
    p = subprocess.Popen([*CHUNKCTL, "ingest", str(d), "--db", str(db), "--no-embed", "-q", "--stream-mb", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp.glob(".chunkctl-*")):
        time.sleep(0.02)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    left = [x.name for x in tmp.glob(".chunkctl-*")]
    r = ingest(d, "--stream-mb", "1")
    after = [x.name for x in tmp.glob(".chunkctl-*")]
    held = bool(left) and not after and r.code == 0 and r.stored("big.txt") and offsets_hold(db)
    return held, f"temp files after the kill: {len(left)}, after the re-run: {len(after)}; {r.summary()}"


@case("store", "kill -9 mid-ingest, then re-run", "nothing half-written; re-run completes")
def _(tmp):
    d = docs_with_good(tmp)
    for i in range(40):
        (d / f"doc{i:02}.txt").write_text(GOOD * (20 + i))
    db = tmp / "store.duckdb"
    p = subprocess.Popen([*CHUNKCTL, "ingest", str(d), "--db", str(db), "-q"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(4)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = run("ingest", d, "--db", db, "-q", db=db)
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    missing = con.execute("SELECT count(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c "
                          "WHERE c.doc_id = d.doc_id)").fetchone()[0]
    no_vec = con.execute("SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
                         "WHERE e.chunk_id = c.chunk_id)").fetchone()[0]
    con.close()
    held = r.code == 0 and len(r.docs) == 41 and missing == 0 and no_vec == 0 and offsets_hold(db)
    return held, f"{r.summary()}; {len(r.docs)} documents, {missing} without chunks, {no_vec} chunks without vectors"


def _small_disk(tmp: Path, size: str) -> Path:
    if os.geteuid() != 0:
        raise Skip("mounting a tmpfs needs root")
    mnt = tmp / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if p.returncode:
        raise Skip(f"cannot mount a tmpfs here: {p.stderr.strip()[:80]}")
    return mnt


def _umount(mnt: Path) -> None:
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@case("store", "disk full under the store (3 MB tmpfs)", "exit 1, one line, no traceback; store opens")
def _(tmp):
    mnt = _small_disk(tmp, "3m")
    try:
        d = docs_with_good(tmp)
        for i in range(40):
            (d / f"doc{i:02}.txt").write_text(f"Document {i}. " + GOOD * 2500)
        db = mnt / "store.duckdb"
        r = run("ingest", d, "--db", db, "--no-embed", "-q", db=db)
        lines = [ln for ln in r.err.splitlines() if ln.strip()]
        ok_line = len(lines) == 1 and "store failure" in lines[0]
        opens = run("stats", "--db", db)
        held = r.code == 1 and ok_line and not r.traceback and opens.code == 0
        return held, f"{r.summary()}; stats afterwards: exit {opens.code}"
    finally:
        _umount(mnt)


@case("store", "disk full while a streamed file's text is written", "exit 1, one line; store opens")
def _(tmp):
    mnt = _small_disk(tmp, "6m")
    try:
        d = docs_with_good(tmp)
        (d / "big.txt").write_text(("Seed packets are lent to members in spring. " * 20 + "\n\n") * 9000)
        db = mnt / "store.duckdb"
        r = run("ingest", d, "--db", db, "--no-embed", "-q", "--stream-mb", "1", db=db)
        lines = [ln for ln in r.err.splitlines() if ln.strip()]
        opens = run("stats", "--db", db)
        held = r.code == 1 and len(lines) == 1 and "store failure" in lines[0] and not r.traceback and opens.code == 0
        return held, f"{r.summary()}; stats afterwards: exit {opens.code}"
    finally:
        _umount(mnt)


@case("store", "--db is a folder of other files", "exit 1 or 2, one line")
def _(tmp):
    d = docs_with_good(tmp)
    (tmp / "somewhere").mkdir()
    (tmp / "somewhere" / "x.bin").write_bytes(b"1")
    r = run("ingest", d, "--db", tmp / "somewhere", "--no-embed", "-q")
    return r.code in (1, 2) and not r.traceback, r.summary()


@case("store", "--db is a text file", "exit 1, one line")
def _(tmp):
    d = docs_with_good(tmp)
    (tmp / "notes.duckdb").write_text("not a database\n" * 100)
    r = run("ingest", d, "--db", tmp / "notes.duckdb", "--no-embed", "-q")
    return r.code == 1 and not r.traceback, r.summary()


@case("store", "store locked by another process", "exit 1, one line")
def _(tmp):
    d = docs_with_good(tmp)
    db = tmp / "store.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(60)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        r = run("ingest", d, "--db", db, "--no-embed", "-q")
        return r.code == 1 and not r.traceback and "lock" in r.err.lower(), r.summary()
    finally:
        holder.kill()
        holder.wait()


# -- the LLM server -------------------------------------------------------------------------------
def _llm_ingest(tmp: Path, script: list, *extra, timeout: float = 120, url: str | None = None, env=None):
    """Ingest one small document with the `keywords` enricher against a scripted server."""
    from llm_server import FaultServer

    server = FaultServer(answer=lambda path, body: '{"keywords": ["seed library"]}')
    server.script.extend(script)
    try:
        d = docs_with_good(tmp)
        db = tmp / "store.duckdb"
        r = run("--llm", "openai", "--llm-base-url", url or server.url, "--llm-retries", "1", *extra, "ingest", d,
                "--db", db, "--no-embed", "-c", "recursive:size=64", "--enrich", "keywords", db=db, timeout=timeout,
                env=env)
        return r, server
    finally:
        server.close()


def _llm_reject(r, *words) -> tuple[bool, str]:
    rej = next((x for x in r.rejects if x[1] == "enrich"), None)
    held = (r.code == 3 and rej is not None and all(w.lower() in rej[2].lower() for w in words)
            and r.stored("good.txt") and not r.traceback)
    return held, f"{r.summary()}; {('reject: ' + rej[2][:110]) if rej else 'no reject'}"


def _bad_reply(body: dict):
    return [("raw", body), ("raw", body)]  # the attempt and its JSON repair retry


@case("llm", "reply with choices: [\"...\"]", "reject (enrich), run goes on")
def _(tmp):
    return _llm_reject(_llm_ingest(tmp, _bad_reply({"choices": ["keywords"]}))[0], "choices")


@case("llm", "reply with content: 7", "reject (enrich), run goes on")
def _(tmp):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": 7}, "finish_reason": "stop"}]}
    return _llm_reject(_llm_ingest(tmp, _bad_reply(body))[0], "not a string")


@case("llm", "usage.prompt_tokens: \"many\"", "the reply is used; the count is 0")
def _(tmp):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": '{"keywords": ["seeds"]}'}}],
            "usage": {"prompt_tokens": "many", "completion_tokens": None}}
    r, _ = _llm_ingest(tmp, [("raw", body)] * 4)
    return r.code == 0 and not r.traceback and r.stored("good.txt"), r.summary()


@case("llm", "reply that is a JSON array", "reject (enrich), run goes on")
def _(tmp):
    return _llm_reject(_llm_ingest(tmp, _bad_reply([1, 2, 3]))[0], "not an object")


@case("llm", "logprobs of the wrong shape", "LLMError, not a crash")
def _(tmp):
    from chunkctl.llm import wire
    from chunkctl.llm.types import LLMError

    try:
        wire.completion({"choices": [{"text": "x", "logprobs": {"content": [{"token": 5}]}}]}, "m", 0.0)
    except LLMError as e:
        return True, f"LLMError: {e}"
    return False, "accepted"


@case("llm", "2.0 where the schema's enum wants an integer", "used as the integer 2")
def _(tmp):
    from llm_server import FaultServer

    from chunkctl.llm.client import LLM
    from chunkctl.llm.remote import OpenAIBackend
    from chunkctl.llm.types import chat

    server = FaultServer(answer=lambda path, body: '{"first": 2.0}')
    try:
        llm = LLM(OpenAIBackend(server.url, "m", retries=0))
        comp = llm.complete(chat("pick", schema={"type": "object", "properties": {"first": {"enum": [1, 2, 3]}},
                                                 "required": ["first"]}))
        value = comp.data["first"]
        llm.close()
        return type(value) is int and [10, 20, 30][value] == 30, f"data: {comp.data!r}"
    finally:
        server.close()


@case("llm", "HTML from a proxy instead of JSON", "retried, then reject with the cause")
def _(tmp):
    return _llm_reject(_llm_ingest(tmp, [("nonjson",)] * 6)[0], "not JSON")


@case("llm", "HTTP 500 once, then a good reply", "retried; stored, exit 0")
def _(tmp):
    r, _ = _llm_ingest(tmp, [("status", 500, {}, "overloaded")])
    return r.code == 0 and r.stored("good.txt") and not r.traceback, r.summary()


@case("llm", "Retry-After: 3600", "gives up at the request's deadline, not after hours")
def _(tmp):
    script = [("status", 429, {"Retry-After": "3600"}, "slow down")] * 10
    r, _ = _llm_ingest(tmp, script, "--llm-timeout", "4", timeout=120)
    held, seen = _llm_reject(r, "429")
    return held and r.seconds < 40, f"{seen}; {r.seconds:.1f} s"


@case("llm", "server trickling one byte per 50 ms", "attempt stopped at --llm-timeout")
def _(tmp):
    r, _ = _llm_ingest(tmp, [("trickle", 0.05)] * 6, "--llm-timeout", "2", timeout=120)
    held, seen = _llm_reject(r, "still arriving")
    return held and r.seconds < 30, f"{seen}; {r.seconds:.1f} s"


@case("llm", "a 150 MB reply", "not read past 16 MB; memory small")
def _(tmp):
    r, _ = _llm_ingest(tmp, [("big", 150 << 20)] * 6, timeout=120)
    held, seen = _llm_reject(r, "MB")
    return held and r.peak_rss_mb < 1000, f"{seen}; peak RSS {r.peak_rss_mb:.0f} MB"


@case("llm", "connection refused", "retried, reject with the cause")
def _(tmp):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r, _ = _llm_ingest(tmp, [], "--llm-model", "m", url=f"http://127.0.0.1:{port}/v1")
    return _llm_reject(r, "ConnectError")


@case("llm", "body cut short", "retried; stored")
def _(tmp):
    r, _ = _llm_ingest(tmp, [("truncate",)])
    return r.code == 0 and r.stored("good.txt") and not r.traceback, r.summary()


KEY = "sk-test-SECRET-0123456789"


@case("security", "API key echoed by the server in an error body", "never in rejects, runs, stdout or stderr")
def _(tmp):
    script = [("status", 401, {}, f'{{"error": "invalid key {KEY} for this org"}}')] * 4
    r, _ = _llm_ingest(tmp, script, env={"CHUNKCTL_LLM_API_KEY": KEY})
    import duckdb

    con = duckdb.connect(str(r.db), read_only=True)
    stored = json.dumps(con.execute("SELECT * FROM rejects").fetchall() + con.execute("SELECT * FROM runs").fetchall(),
                        default=str)
    con.close()
    leaked = [w for w, text in (("store", stored), ("stdout", r.out), ("stderr", r.err)) if KEY in text]
    held, seen = _llm_reject(r, "***")
    return held and not leaked, f"{seen}; leaked in: {leaked or 'nothing'}"


@case("security", "credentials in --llm-base-url", "runs.command and messages show ***")
def _(tmp):
    from llm_server import FaultServer

    server = FaultServer(answer=lambda path, body: '{"keywords": ["seed"]}')
    try:
        url = server.url.replace("http://", "http://alice:PASSWORD-XYZ@") + "?api-key=QUERYKEY-123"
        r, _ = _llm_ingest(tmp, [], url=url)
    finally:
        server.close()
    import duckdb

    con = duckdb.connect(str(r.db), read_only=True)
    command = con.execute("SELECT command FROM runs").fetchall()
    con.close()
    text = json.dumps(command) + r.out + r.err
    leaked = [s for s in ("PASSWORD-XYZ", "QUERYKEY-123") if s in text]
    held = not leaked and r.code in (0, 3) and "***" in json.dumps(command) and not r.traceback
    return held, f"{r.summary()}; runs.command: {command[0][0][:90] if command else None}; leaked: {leaked or 'nothing'}"


@case("store", "global options before the command", "runs.command is the whole command line")
def _(tmp):
    d = docs_with_good(tmp)
    db = tmp / "store.duckdb"
    r = run("--llm-timeout", "30", "ingest", d, "--db", db, "--no-embed", "-q", db=db)
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    command = con.execute("SELECT command FROM runs").fetchone()[0]
    con.close()
    return r.code == 0 and command.startswith("--llm-timeout 30 ingest "), f"runs.command: {command[:80]}"
