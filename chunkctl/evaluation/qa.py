"""QA sets: three formats in, one shape out, and every reference placed in its document's text.

- native JSONL, one question per line: ``{"question", "references": [{"doc", "char_start",
  "char_end", "text"}], "answer"?}``; a line may also carry one reference flat (``doc``,
  ``char_start``, ``char_end``, with ``answer`` as its text), as ``sample_docs/qa.jsonl`` does;
- Chroma's ``questions_df.csv``: ``question``, ``references`` (a JSON list of ``{content,
  start_index, end_index}``), ``corpus_id`` (the corpus file's stem);
- SQuAD-style JSON: each article's paragraphs joined by blank lines into one document (offsets
  shifted), so answers are spans in long documents; the first answer of each question is its
  reference (the others are alternative annotations of the same span); unanswerable ones are left out.

Placing: a reference whose offsets slice its text out of the document is kept as is; otherwise its
text is searched for (the occurrence nearest the given offset) and a warning says it moved; one
that cannot be found is reported, never silently dropped.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

FORMATS = ("jsonl", "chroma", "squad")


@dataclass(frozen=True)
class Reference:
    doc: str  # a document key: a path, a file name or a stem
    start: int | None
    end: int | None
    text: str | None


@dataclass(frozen=True)
class Question:
    qid: int
    question: str
    refs: tuple[Reference, ...]
    answer: str | None = None


@dataclass
class QASet:
    questions: list[Question]
    format: str
    documents: dict[str, str] = field(default_factory=dict)  # texts the QA file carries (SQuAD)


def detect_format(path: Path) -> str:
    if path.suffix == ".csv":
        return "chroma"
    if path.suffix == ".json":
        return "squad"
    return "jsonl"


def load_qa(path: str | Path, fmt: str | None = None) -> QASet:
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"QA format must be one of {', '.join(FORMATS)}")
    return {"jsonl": _jsonl, "chroma": _chroma, "squad": _squad}[fmt](path)


def _jsonl(path: Path) -> QASet:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if "references" in row:
                refs = tuple(Reference(r["doc"], r.get("char_start"), r.get("char_end"), r.get("text"))
                             for r in row["references"])
            else:
                refs = (Reference(row["doc"], row.get("char_start"), row.get("char_end"), row.get("answer")),)
            out.append(Question(len(out), row["question"], refs, row.get("answer")))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a QA line ({type(e).__name__}: {e})") from None
    return QASet(out, "jsonl")


def _chroma(path: Path) -> QASet:
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            refs = tuple(Reference(row["corpus_id"], r["start_index"], r["end_index"], r["content"])
                         for r in json.loads(row["references"]))
            out.append(Question(len(out), row["question"], refs))
    return QASet(out, "chroma")


def _squad(path: Path) -> QASet:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out, docs = [], {}
    for a, article in enumerate(data):
        key = f"{a:04d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', article.get('title') or 'article')}.txt"
        parts, offset = [], 0
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                answers = [x for x in qa.get("answers") or [] if x.get("text")]
                if qa.get("is_impossible") or not answers:
                    continue
                first = answers[0]
                start = offset + int(first["answer_start"])
                out.append(Question(len(out), qa["question"],
                                    (Reference(key, start, start + len(first["text"]), first["text"]),),
                                    first["text"]))
            parts.append(para["context"])
            offset += len(para["context"]) + 2  # the blank line that joins paragraphs
        docs[key] = "\n\n".join(parts)
    return QASet(out, "squad", docs)


def place(ref: Reference, text: str) -> tuple[Reference | None, str | None]:
    """(the reference with offsets that slice its text, a warning or None); None when it cannot be
    placed (the warning says why)."""
    s, e, t = ref.start, ref.end, ref.text
    if s is not None and e is not None:
        s, e = int(s), int(e)
        if 0 <= s < e <= len(text) and (t is None or text[s:e] == t):
            return replace(ref, start=s, end=e, text=text[s:e]), None
    if not t:
        return None, f"{ref.doc}: offsets [{s}, {e}) are outside the document and there is no text to search"
    found = [m.start() for m in re.finditer(re.escape(t), text)]
    if not found:
        return None, f"{ref.doc}: reference text not found: {t[:60]!r}"
    best = min(found, key=lambda p: abs(p - s)) if s is not None else found[0]
    how = "moved" if s is not None else "located"
    note = f"{ref.doc}: reference {how} to [{best}, {best + len(t)}) by searching its text"
    if len(found) > 1:
        note += f" ({len(found)} occurrences; took the {'nearest' if s is not None else 'first'})"
    return replace(ref, start=best, end=best + len(t)), note
