"""PDF text extraction: pypdfium2 vs pypdf, timed and compared with docling's ground-truth
Markdown for each PDF in shared/bench-data/docs/pdf that has one.

Similarity is measured on lower-cased words with Markdown syntax removed: word recall and
precision against the ground truth (bag of words) and order similarity (difflib ratio of the word
sequences), so reading order matters as well as content.

    .venv/bin/python bench/pdf_backends.py
"""
from __future__ import annotations

import difflib
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import BENCH  # noqa: E402

from chunkctl.parse import parse_bytes  # noqa: E402

_MD = re.compile(r"[#*|`>\[\]()_]|-{3,}|<!--.*?-->|!\[.*?\]")
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(_MD.sub(" ", text).lower())


def main() -> None:
    rows = []
    for gt in sorted((BENCH / "docs" / "pdf").glob("*.docling-gt.md")):
        pdf = gt.with_name(gt.name.replace(".docling-gt.md", ".pdf"))
        truth = words(gt.read_text())
        data = pdf.read_bytes()
        for backend in ("pdfium", "pypdf"):
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                parsed = parse_bytes(data, "pdf", ".pdf", backend)
                best = min(best, time.perf_counter() - t0)
            got = words(parsed.text)
            common = sum((Counter(got) & Counter(truth)).values())
            recall, precision = common / max(1, len(truth)), common / max(1, len(got))
            order = difflib.SequenceMatcher(None, got, truth, autojunk=False).ratio()
            rows.append((pdf.name, backend, len(parsed.pages), best, recall, precision, order))
    print(f"{'pdf':34} {'backend':7} {'pages':>5} {'time s':>7} {'recall':>7} {'precision':>9} {'order':>6}")
    for r in rows:
        print(f"{r[0]:34} {r[1]:7} {r[2]:>5} {r[3]:>7.3f} {r[4]:>7.3f} {r[5]:>9.3f} {r[6]:>6.3f}")
    print()
    for backend in ("pdfium", "pypdf"):
        sel = [r for r in rows if r[1] == backend]
        n = len(sel)
        print(f"{backend:7} total {sum(r[3] for r in sel):.3f} s, mean recall {sum(r[4] for r in sel) / n:.3f}, "
              f"precision {sum(r[5] for r in sel) / n:.3f}, order {sum(r[6] for r in sel) / n:.3f}")


if __name__ == "__main__":
    main()
