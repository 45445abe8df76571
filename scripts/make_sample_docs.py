"""Generate sample_docs/handbook.docx, sample_docs/report.pdf and sample_docs/qa.jsonl.

The Markdown, HTML and text samples are written by hand; this script writes the binary ones and
then places every QA answer in the parsed text of its document, failing if an answer is missing or
ambiguous, so qa.jsonl offsets are exactly what `chunkctl ingest` stores.

    .venv/bin/python scripts/make_sample_docs.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "sample_docs"

HANDBOOK = [
    ("title", "Germination Testing Handbook"),
    ("p", "Before a seed lot is lent to members, the library tests how many of its seeds still sprout. "
          "This handbook describes the rag-doll test that volunteers use."),
    ("h1", "Preparing a test"),
    ("p", "Count out exactly fifty seeds from the lot. Smaller samples make the result too noisy to "
          "compare between years."),
    ("bullet", "Moisten a paper towel with clean water until it is damp but not dripping."),
    ("bullet", "Lay the seeds in five rows of ten and roll the towel loosely."),
    ("bullet", "Write the lot number on the bag in pencil, because ink runs when wet."),
    ("h1", "Reading the result"),
    ("p", "Keep the rolled towel in a sealed bag at room temperature and check it every second day."),
    ("h2", "Counting days by crop"),
    ("table", [["Crop", "Days before counting", "Minimum rate to lend"],
               ["Beans", "8", "80 %"],
               ["Lettuce", "7", "75 %"],
               ["Tomatoes", "10", "75 %"],
               ["Onions", "12", "70 %"]]),
    ("p", "A lot that falls below its minimum rate is composted, and the grower is told so that they "
          "can save seed again the next year."),
    ("h2", "Recording"),
    ("p", "Enter the count in the germination register with the date and the tester's initials. The "
          "register is kept in the blue binder beside the vault door."),
]

REPORT_PAGES = [
    ("Annual Report 2025",
     ["This report summarises the second full year of the Larkspur Valley Seed Library after its move "
      "to the old railway goods shed.",
      "Membership grew from 212 households to 318 households during the year. Most new members joined "
      "after the spring open day, which drew about 400 visitors."]),
    ("Lending and returns",
     ["Volunteers lent 1,940 seed packets in 2025. Tomatoes were the most borrowed crop for the third "
      "year running, followed by climbing beans.",
      "Members returned seed for 58 percent of the packets they borrowed, up from 41 percent in 2024. "
      "The improvement is credited to the reminder postcards sent in August."]),
    ("Finances and next steps",
     ["Income came mainly from the autumn cafe and a grant of 2,500 euros from the regional heritage "
      "fund. The largest cost was the new vault dehumidifier.",
      "In 2026 the library plans to start a children's growing club and to digitise the germination "
      "register, which is still kept on paper."]),
]

QUESTIONS = [
    ("guide.md", "How long do returned seed packets stay in quarantine?", "fourteen days"),
    ("guide.md", "At what relative humidity are lettuce and onion seeds stored?", "20 %"),
    ("guide.md", "How many years are tomato and pepper seeds expected to remain viable?", "6 years"),
    ("guide.md", "Why must volunteers wash their hands before touching open seed envelopes?",
     "because skin oils shorten\nseed life"),
    ("guide.md", "Which command records a returned packet in the inventory tool?",
     'seedlog return --member 4471 --crop "Cherokee Purple tomato" --grams 3.5'),
    ("guide.md", "What night setting is the dehumidifier switched to at closing?", "35 %"),
    ("station.html", "Since when has the weather station been running?", "March 2019"),
    ("station.html", "On average, when did the last spring frost arrive?", "April 27"),
    ("station.html", "What soil temperature must be reached before tomatoes are planted out?",
     "reads 12 °C for five mornings in a row"),
    ("station.html", "How much rain fell in June 2025?", "June | 38 | 17.2"),
    ("station.html", "At what depth does the soil probe read temperature?", "a depth of 10 cm"),
    ("handbook.docx", "How many seeds are used in a germination test?", "exactly fifty seeds"),
    ("handbook.docx", "Why is the lot number written in pencil?", "because ink runs when wet"),
    ("handbook.docx", "What is the minimum germination rate to lend beans?", "Beans | 8 | 80 %"),
    ("handbook.docx", "Where is the germination register kept?", "in the blue binder beside the vault door"),
    ("report.pdf", "How many households were members at the end of 2025?", "318 households"),
    ("report.pdf", "How many seed packets were lent in 2025?", "1,940 seed packets"),
    ("report.pdf", "What share of borrowed packets had seed returned in 2025?", "58 percent"),
    ("report.pdf", "How large was the grant from the regional heritage fund?", "2,500 euros"),
    ("notes.txt", "How much did the autumn café raise?", "842 euros"),
    ("notes.txt", "At what rate did the 2023 lettuce lot germinate?", "61 percent"),
    ("notes.txt", "When will the winter seed swap be held?", "7 February 2026"),
]


def write_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = "Germination Testing Handbook"
    d.core_properties.author = "Larkspur Valley Seed Library"
    for kind, value in HANDBOOK:
        if kind == "title":
            d.add_heading(value, level=0)
        elif kind in ("h1", "h2"):
            d.add_heading(value, level=int(kind[1]))
        elif kind == "bullet":
            d.add_paragraph(value, style="List Bullet")
        elif kind == "table":
            t = d.add_table(rows=len(value), cols=len(value[0]))
            for r, row in enumerate(value):
                for c, cell in enumerate(row):
                    t.cell(r, c).text = cell
        else:
            d.add_paragraph(value)
    d.save(path)


def write_pdf(path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A5")
    pdf.set_creation_date(__import__("datetime").datetime(2025, 12, 1))  # reproducible bytes
    pdf.set_title("Annual Report 2025")
    for heading, paragraphs in REPORT_PAGES:
        pdf.add_page()
        pdf.start_section(heading)  # becomes a PDF outline entry: a heading path for chunks
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, heading)
        pdf.ln(4)
        pdf.set_font("Helvetica", size=10)
        for para in paragraphs:
            pdf.multi_cell(0, 5, para)
            pdf.ln(5)
    pdf.output(str(path))


def write_qa(path: Path) -> None:
    sys.path.insert(0, str(ROOT.parent))
    from chunkctl.parse import kind_of, parse_bytes

    texts = {}
    rows = []
    for doc, question, answer in QUESTIONS:
        if doc not in texts:
            f = ROOT / doc
            texts[doc] = parse_bytes(f.read_bytes(), kind_of(f), f.suffix).text
        text = texts[doc]
        start = text.find(answer)
        if start < 0:
            raise SystemExit(f"{doc}: answer not found in parsed text: {answer!r}")
        if text.find(answer, start + 1) >= 0:
            raise SystemExit(f"{doc}: answer is ambiguous: {answer!r}")
        rows.append({"question": question, "doc": doc, "answer": answer,
                     "char_start": start, "char_end": start + len(answer)})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    write_docx(ROOT / "handbook.docx")
    write_pdf(ROOT / "report.pdf")
    write_qa(ROOT / "qa.jsonl")
    print(f"wrote handbook.docx, report.pdf and {len(QUESTIONS)} questions to {ROOT}")
