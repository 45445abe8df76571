"""``--intrinsic``: Adaptive Chunking's metrics of a chunking on its own, no questions needed
(de Moura Junior et al., LREC 2026; spec §5.1), averaged over documents.

- SC, size compliance: share of chunks with 100 to 1,100 tokens (the strategy's own counts);
- ICC, intrachunk cohesion: mean cosine of a chunk's blocks to the whole chunk, over chunks cut by
  at least one block boundary (blocks = the parser's elements; blank lines when the file is gone);
- DCC, document contextual coherence: mean cosine of each chunk to windows of consecutive chunks
  holding up to 3,000 tokens (two chunks at least);
- BI, block integrity: share of blocks that no chunk start cuts (5-character tolerance);
- RC, references completeness: needs a coreference model; none runs offline here, so it is
  reported as unavailable rather than guessed.

Embeddings are the run's model: MiniLM reads 256 tokens, so DCC's long windows (and long chunks)
are embedded by their first 256 tokens, a limit the paper's 0.6B embedding model does not have.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

SC_MIN, SC_MAX = 100, 1100
DCC_BUDGET = 3000
BI_TOLERANCE = 5


def size_compliance(n_tokens: Sequence[int]) -> float | None:
    if not n_tokens:
        return None
    return 1 - sum(1 for n in n_tokens if n > SC_MAX or n < SC_MIN) / len(n_tokens)


def block_integrity(blocks: Sequence[tuple[int, int]], chunk_starts: Sequence[int]) -> float | None:
    if not blocks:
        return None
    cuts = sorted(chunk_starts)[1:]
    if not cuts:
        return 1.0
    intact = sum(not any(lo < p < hi and p - lo > BI_TOLERANCE and hi - p > BI_TOLERANCE for p in cuts)
                 for lo, hi in blocks)
    return intact / len(blocks)


def intrachunk_cohesion(text: str, chunks: Sequence[tuple[int, int]], split_points: Sequence[int], embed) -> float | None:
    pieces, owners, wholes = [], [], []
    for ci, (s, e) in enumerate(chunks):
        cuts = [s] + [p for p in split_points if s < p < e] + [e]
        parts = [(a, b) for a, b in zip(cuts, cuts[1:]) if text[a:b].strip()]
        if len(parts) < 2:
            continue
        wholes.append(ci)
        pieces += [text[a:b] for a, b in parts]
        owners += [len(wholes) - 1] * len(parts)
    if not wholes:
        return None
    pv = embed(pieces)
    cv = embed([text[chunks[ci][0]:chunks[ci][1]] for ci in wholes])
    sims = np.einsum("ij,ij->i", pv, cv[owners])
    per_chunk = [float(sims[np.asarray(owners) == i].mean()) for i in range(len(wholes))]
    return float(np.clip(np.mean(per_chunk), 0, 1))


def contextual_coherence(text: str, chunks: Sequence[tuple[int, int]], n_tokens: Sequence[int], embed) -> float | None:
    n = len(chunks)
    if n < 2:
        return None
    windows, last_end = [], -1
    for i in range(n):
        j, used, covered_to = i, 0, chunks[i][0]
        members = []
        while j < n:
            s, e = chunks[j]
            new = max(0, e - max(s, covered_to))  # overlapping text counted once
            add = round(n_tokens[j] * new / max(e - s, 1))
            if members and used + add > DCC_BUDGET:
                break
            members.append(j)
            used += add
            covered_to = max(covered_to, e)
            j += 1
        if len(members) >= 2 and members[-1] != last_end:
            windows.append(members)
            last_end = members[-1]
    if not windows:
        return None
    wv = embed([text[chunks[w[0]][0]:max(chunks[m][1] for m in w)] for w in windows])
    cv = embed([text[s:e] for s, e in chunks])
    sims = [float(wv[wi] @ cv[c]) for wi, w in enumerate(windows) for c in w]
    return float(np.clip(np.mean(sims), 0, 1))


def paragraph_starts(text: str) -> list[int]:
    return [m.end() for m in re.finditer(r"\n[ \t]*\n\s*", text) if m.end() < len(text)]


def split_points_for(path: str, text: str) -> list[int]:
    """Block boundaries: the parser's element starts when the file can be parsed again into the same
    text, else the starts of blank-line paragraphs."""
    try:
        from chunkctl.parse import load_document

        doc = load_document(path, Path(path).read_bytes())
        if doc.text == text and doc.elements:
            return element_starts(doc.elements, len(text))
    except Exception:  # the file is gone or changed: fall back to paragraphs
        pass
    return paragraph_starts(text)


def element_starts(elements, length: int) -> list[int]:
    return sorted({el.start for el in elements if 0 < el.start < length})


def document_scores(text: str, spans: Sequence[tuple[int, int]], n_tokens: Sequence[int], points: Sequence[int],
                    embed) -> dict[str, float | None]:
    """SC, BI, ICC, DCC of one document's chunking (None where a metric does not apply)."""
    bounds = [0, *points, len(text)]
    return {"sc": size_compliance(n_tokens),
            "bi": block_integrity(list(zip(bounds, bounds[1:])), [s for s, _ in spans]),
            "icc": intrachunk_cohesion(text, spans, points, embed),
            "dcc": contextual_coherence(text, spans, n_tokens, embed)}


def intrinsic_scores(docs: dict[str, tuple[str, str]], chunks, embed) -> dict[str, float | None]:
    """Mean over documents of SC, ICC, DCC, BI (RC: None). ``chunks`` are the run's chunk rows
    (chunk_id, doc_id, start, end, text, n_tokens)."""
    by_doc: dict[str, list] = {}
    for row in chunks:
        by_doc.setdefault(row[1], []).append(row)
    scores: dict[str, list[float]] = {"sc": [], "icc": [], "dcc": [], "bi": []}
    for doc_id, rows in by_doc.items():
        path, text = docs[doc_id]
        per_doc = document_scores(text, [(r[2], r[3]) for r in rows], [r[5] or 0 for r in rows],
                                  split_points_for(path, text), embed)
        for name, value in per_doc.items():
            if value is not None:
                scores[name].append(value)
    out: dict[str, float | None] = {k: (float(np.mean(v)) if v else None) for k, v in scores.items()}
    out["rc"] = None
    return out
