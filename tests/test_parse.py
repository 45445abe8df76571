"""Parsers on real files: structure, pages, encodings, and the unstructured extra offline."""
from __future__ import annotations

import io
import json

import pytest

from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec
from chunkctl.parse import kind_of, parse_bytes
from chunkctl.parse import load_document
from chunkctl.types import RejectError

from conftest import BENCH_DOCS, SAMPLE_DOCS


def parse(path):
    return parse_bytes(path.read_bytes(), kind_of(path), path.suffix)


def test_markdown_elements_headings_table_and_code():
    p = parse(SAMPLE_DOCS / "guide.md")
    kinds = {e.kind for e in p.elements}
    assert {"heading", "paragraph", "table", "code"} <= kinds
    table = next(e for e in p.elements if e.kind == "table")
    assert p.text[table.start:table.header_end].startswith("| Seed group | Temperature")
    assert table.heading_path == ("Larkspur Valley Seed Library: Volunteer Guide", "Storage conditions")
    code = next(e for e in p.elements if e.kind == "code")
    assert p.text[code.start:code.end].startswith("```bash") and p.text[code.start:code.end].endswith("```")
    drop = next(e for e in p.elements if e.kind == "paragraph" and "grey quarantine" in p.text[e.start:e.end])
    assert drop.heading_path[-2:] == ("Opening a shift", "Drop-box returns")


def test_structure_chunks_keep_code_fences_and_tables_whole_where_they_fit():
    f = SAMPLE_DOCS / "guide.md"
    doc = load_document(f, f.read_bytes())
    chunks = chunk_document(doc, parse_spec("structure:size=256"), ChunkContext())
    fence = [c for c in chunks if "```bash" in c.text]
    assert len(fence) == 1 and fence[0].text.count("```") == 2
    table = [c for c in chunks if "| Seed group |" in c.text]
    assert len(table) == 1 and "| Squash and melons |" in table[0].text


@pytest.mark.parametrize("spec", ["recursive:size=100", "recursive:size=100,overlap=20", "structure:size=100"])
def test_code_fences_and_tables_are_not_cut_where_they_fit(spec):
    fence = "```python\n" + "\n\n".join(f"def step_{i}(jar):\n    return jar.seal({i})" for i in range(6)) + "\n```"
    table = "| crop | days |\n|---|---|\n" + "\n".join(f"| crop {i} | {i} |" for i in range(8))
    prose = " ".join(f"Sentence {i} about storing seed in cool jars." for i in range(12))
    md = f"# Guide\n\n{prose}\n\n{fence}\n\n{prose}\n\n{table}\n\n{prose}\n"
    doc = load_document(SAMPLE_DOCS / "x.md", md.encode())
    chunks = chunk_document(doc, parse_spec(spec), ChunkContext())
    for block in (fence, table):
        assert any(block in c.text for c in chunks), f"{spec} cut a block that fits"
    assert all(c.n_tokens <= 100 for c in chunks)


def test_oversized_table_pieces_carry_the_header_row():
    rows = "\n".join(f"| item {i} | {i * 3} grams | shelf {i % 7} |" for i in range(120))
    md = f"# Stock\n\n| Item | Weight | Shelf |\n|---|---|---|\n{rows}\n"
    doc = load_document(SAMPLE_DOCS / "x.md", md.encode())
    chunks = chunk_document(doc, parse_spec("structure:size=100"), ChunkContext())
    pieces = [c for c in chunks if "item " in c.text]
    assert len(pieces) > 3
    for c in pieces:
        assert c.metadata["table_header"] == "| Item | Weight | Shelf |"
        s, e = c.metadata["table_header_span"]
        assert doc.text[s:e] == c.metadata["table_header"]
        assert c.n_tokens <= 100


def test_html_drops_scripts_and_navigation_and_reads_tables():
    p = parse(SAMPLE_DOCS / "station.html")
    assert "console.log" not in p.text and "font-family" not in p.text and "Home |" not in p.text
    assert "since March 2019. Growers use its records" in p.text  # whitespace collapsed, no stray spaces
    table = next(e for e in p.elements if e.kind == "table")
    assert p.text[table.start:table.header_end] == "Month | Rain (mm) | Mean air temperature (°C)"
    assert p.metadata["title"] == "Larkspur Valley Weather Station"


def test_docx_headings_from_styles_and_tables():
    p = parse(SAMPLE_DOCS / "handbook.docx")
    heads = [(e.level, p.text[e.start:e.end]) for e in p.elements if e.kind == "heading"]
    assert heads[:3] == [(0, "Germination Testing Handbook"), (1, "Preparing a test"), (1, "Reading the result")]
    table = next(e for e in p.elements if e.kind == "table")
    assert p.text[table.start:table.header_end] == "Crop | Days before counting | Minimum rate to lend"
    assert any(e.kind == "list" for e in p.elements)
    counting = next(e for e in p.elements if e.kind == "table")
    assert counting.heading_path == ("Germination Testing Handbook", "Reading the result", "Counting days by crop")


@pytest.mark.parametrize("backend", ["pdfium", "pypdf"])
def test_pdf_pages_and_outline(backend):
    f = SAMPLE_DOCS / "report.pdf"
    p = parse_bytes(f.read_bytes(), "pdf", ".pdf", backend)
    assert [pg.number for pg in p.pages] == [1, 2, 3]
    assert "1,940 seed packets" in p.text[p.pages[1].start:p.pages[1].end]
    doc = load_document(f, f.read_bytes(), pdf_backend=backend)
    chunks = chunk_document(doc, parse_spec("recursive:size=40"), ChunkContext())
    assert all(c.page_start is not None for c in chunks)
    assert {c.page_start for c in chunks} == {1, 2, 3}
    for c in chunks:  # a chunk's pages are the pages its span touches
        touched = [pg.number for pg in p.pages if pg.start < c.char_end and c.char_start < pg.end]
        assert c.page_start == min(touched) and c.page_end == max(touched)
    if backend == "pdfium":  # fpdf2 wrote an outline; pdfium reads it into heading paths
        page3 = [c for c in chunks if c.page_start == 3]
        assert page3[0].heading_path == ("Finances and next steps",)


def test_real_multipage_pdf_has_a_page_on_every_chunk():
    f = BENCH_DOCS / "pdf" / "redp5110_sampled.pdf"
    doc = load_document(f, f.read_bytes())
    assert len(doc.pages) == 18
    chunks = chunk_document(doc, parse_spec("recursive:size=128"), ChunkContext())
    assert all(1 <= c.page_start <= c.page_end <= 18 for c in chunks)
    assert len({c.page_start for c in chunks}) >= 15


def test_text_encodings_are_detected_not_dropped():
    phrase = "Crème brûlée à la façon de Zoë — très réussie, naïve et élégante.\n" * 20
    for enc in ("utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"):
        data = phrase.replace("—", "-").encode(enc) if enc == "latin-1" else phrase.encode(enc)
        p = parse_bytes(data, "text")
        assert "Crème brûlée" in p.text and "Zoë" in p.text, enc
        assert not p.text.startswith("\ufeff")


def test_crlf_is_normalised_and_offsets_point_into_the_normalised_text():
    p = parse(SAMPLE_DOCS / "notes.txt")
    assert "\r" not in p.text and "Zoë Müller" in p.text and "種" in p.text and "🌱" in p.text


@pytest.mark.parametrize("data,reason", [
    (b"", "empty file"),
    (bytes(range(256)) * 64, "binary content"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00\x01\x02" * 500, "binary content"),
])
def test_text_rejects(data, reason):
    with pytest.raises(RejectError, match=reason):
        parse_bytes(data, "text")


def test_broken_and_encrypted_pdfs_are_rejected_with_reasons():
    good = (SAMPLE_DOCS / "report.pdf").read_bytes()
    for backend in ("pdfium", "pypdf"):
        with pytest.raises(RejectError, match="corrupt or truncated PDF"):
            parse_bytes(good[: len(good) // 3], "pdf", ".pdf", backend)
        with pytest.raises(RejectError, match="encrypted PDF"):
            parse_bytes(encrypted_pdf(good), "pdf", ".pdf", backend)
    with pytest.raises(RejectError, match="not a PDF"):
        parse_bytes(b"hello, I am not a pdf", "pdf", ".pdf")


def encrypted_pdf(data: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter()
    for page in PdfReader(io.BytesIO(data)).pages:
        w.add_page(page)
    w.encrypt(user_password="secret", owner_password="owner")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def test_unknown_suffix_is_rejected():
    with pytest.raises(RejectError, match="unsupported file type '.xyz'"):
        kind_of("a/b.xyz")


# --- the optional unstructured extra, offline -------------------------------------------------

def test_unstructured_pptx_offline(tmp_path):
    from pptx import Presentation

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "Seed swap planning"
    slide.placeholders[1].text = "Bring labelled envelopes.\nArrive before ten o'clock."
    slide2 = prs.slides.add_slide(prs.slide_layouts[1])
    slide2.shapes.title.text = "Budget"
    slide2.placeholders[1].text = "The hall costs forty euros."
    f = tmp_path / "plan.pptx"
    prs.save(f)
    doc = load_document(f, f.read_bytes())
    assert "Seed swap planning" in doc.text and "forty euros" in doc.text
    assert doc.metadata["parser"] == "unstructured"
    chunks = chunk_document(doc, parse_spec("structure:size=16"), ChunkContext())
    assert all(doc.text[c.char_start:c.char_end] == c.text for c in chunks)
    assert any(c.heading_path and c.heading_path[-1] == "Budget" for c in chunks)


def test_unstructured_eml_offline(tmp_path):
    f = tmp_path / "minutes.eml"
    f.write_text("From: zoe@example.org\nTo: committee@example.org\nSubject: Vault hygrometer\n"
                 "Content-Type: text/plain; charset=utf-8\n\n"
                 "The new hygrometer arrived on Tuesday. It reads two percent lower than the old one.\n")
    doc = load_document(f, f.read_bytes())
    assert "two percent lower" in doc.text


def _pdf_without_outline(path) -> None:
    """A report as word processors export it: a running header on every page, a big title, bold
    section headings at a larger size, a bold run-in label at body size, body text, and a bold code
    listing of four lines (bold text, not headings). No outline."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(True, margin=20)
    body = ("Volunteers record every packet that comes back, weigh it and note the grower. " * 6).strip()
    sections = [("Seed returns", ["Drop-box returns", "Counter returns"]), ("Storage", ["The vault"]),
                ("Finances", [])]
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 22)
    pdf.multi_cell(0, 10, "Annual Report of the Seed Library", new_x="LMARGIN", new_y="NEXT")
    for title, subs in sections:
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        for sub in subs:
            pdf.set_font("Helvetica", "B", 11)
            pdf.multi_cell(0, 6, sub, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
        if title == "Storage":
            pdf.set_font("Courier", "B", 11)
            for line in ("seedlog return --member 4471", "seedlog weigh --grams 3.5", "seedlog report --month 10",
                         "seedlog close --shift evening"):
                pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 9)
        pdf.multi_cell(0, 5, "Larkspur Valley Seed Library - internal", new_x="LMARGIN", new_y="NEXT")  # a running header
    pdf.output(str(path))


def test_pdf_headings_without_an_outline_come_from_the_fonts(cli, tmp_path):
    f = tmp_path / "report.pdf"
    _pdf_without_outline(f)
    code, out, err = cli("chunk", f, "-c", "structure:combine=false")
    assert code == 0, err
    paths = {tuple(json.loads(line)["heading_path"]) for line in out.splitlines()}
    title = "Annual Report of the Seed Library"
    assert (title, "Seed returns", "Drop-box returns") in paths and (title, "Seed returns", "Counter returns") in paths
    assert (title, "Storage", "The vault") in paths and (title, "Finances") in paths
    flat = {h for p in paths for h in p}
    assert not any(h.startswith("seedlog") for h in flat)  # a bold listing is not four headings
    assert "Larkspur Valley Seed Library - internal" not in flat  # nor a running header


def test_html_without_h_tags_takes_short_bold_blocks_as_headings(cli, tmp_path):
    f = tmp_path / "filing.html"
    f.write_text("""<html><body>
<p style="font-weight:bold;font-size:16pt">ANNUAL REPORT</p>
<p style="font-weight:bold">ITEM 1. BUSINESS</p>
<p>We sell seeds to members. Our members grow them and return seed in autumn, as the rules say.</p>
<div><span style="font-weight:700">Competition</span></div>
<p>Other libraries lend seeds too. <b>We are the largest.</b> That is all there is to say here.</p>
<p><b>(Exact name as specified in its charter)</b></p>
<div role="heading" aria-level="2">ITEM 2. PROPERTIES</div>
<p>The vault is in the basement.</p>
</body></html>""")
    code, out, err = cli("chunk", f, "-c", "structure:size=32,combine=false")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    def where(words: str) -> tuple:
        return next(tuple(r["heading_path"]) for r in rows if words in r["text"])

    assert where("We sell seeds to members") == ("ANNUAL REPORT", "ITEM 1. BUSINESS")
    assert where("Other libraries lend seeds too") == ("ANNUAL REPORT", "Competition")
    assert where("The vault is in the basement") == ("ANNUAL REPORT", "ITEM 2. PROPERTIES")
    assert not any("Exact name" in h for r in rows for h in r["heading_path"])
    with_h = tmp_path / "page.html"  # a page with <h*> keeps to them: bold paragraphs stay paragraphs
    with_h.write_text("<h1>Guide</h1><p><b>Note</b></p><p>Seeds keep for years.</p>")
    code, out, _ = cli("chunk", with_h, "-c", "structure:size=32,combine=false")
    assert {tuple(json.loads(line)["heading_path"]) for line in out.splitlines()} == {("Guide",)}
