"""The benchmark text: Chroma's five corpora and the long documents of shared/bench-data (text,
Markdown, and the parsed text of the big DOCX and HTML files), as (name, text) pairs."""
from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent.parent / "shared" / "bench-data"


def bench_texts(min_mb: float = 5.0) -> list[tuple[str, str]]:
    from chunkctl.parse import kind_of, parse_bytes

    files = sorted((BENCH / "chroma" / "corpora").glob("*.md"))
    files += sorted((BENCH / "docs" / "txt").glob("*.txt"))
    files += sorted((BENCH / "docs" / "md").glob("*.md"))
    files += [BENCH / "docs" / "docx" / "us-trustee-handbook-872p.docx", BENCH / "docs" / "html" / "example-10k.html"]
    out = []
    for f in files:
        data = f.read_bytes()
        text = data.decode("utf-8") if f.suffix in (".md", ".txt") else parse_bytes(data, kind_of(f), f.suffix).text
        out.append((f.name, text.replace("\r\n", "\n")))
    total = sum(len(t.encode()) for _, t in out) / 1e6
    if total < min_mb:
        raise SystemExit(f"only {total:.1f} MB of benchmark text found under {BENCH}")
    return out
