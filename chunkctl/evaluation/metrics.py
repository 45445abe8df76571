"""Character-range metrics, computed the way Chroma's evaluation code computes them, plus rank
metrics and the statistics that tell a gain from noise.

Chroma's conventions, kept on purpose so results compare with its published tables:
- spans are character ranges; a chunk and a reference "intersect" when ``max(starts) <= min(ends)``,
  so a chunk that merely touches a reference (zero-length intersection) counts for precision-Ω's
  denominator and for the number of highlighted chunks (``k=min``);
- recall divides by the sum of the reference lengths; precision by the sum of the lengths of every
  retrieved chunk, other documents' chunks and duplicates included; IoU by that sum plus the
  reference characters no retrieved chunk covered;
- a retrieved chunk of another document adds nothing to the numerator;
- ± is the population standard deviation (numpy's default).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Span = tuple[int, int]


def union(spans: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def total(spans: Sequence[Span]) -> int:
    return sum(e - s for s, e in spans)


def meet(a: Span, b: Span) -> Span | None:
    """The intersection of two ranges; zero-length when they only touch; None when apart."""
    s, e = max(a[0], b[0]), min(a[1], b[1])
    return (s, e) if s <= e else None


def retrieval_scores(refs: Sequence[Span], retrieved: Sequence[tuple[Span, bool]]) -> tuple[float, float, float]:
    """(recall, precision, IoU) of one question. ``retrieved`` are the top-k chunks as (span,
    same document as the question's references): another document's chunk only costs precision."""
    hits = [m for c, same in retrieved if same for r in refs if (m := meet(c, r)) is not None]
    found = total(union(hits))
    spent = sum(e - s for (s, e), _ in retrieved)
    missed = total(_leftovers(refs, hits))
    return (found / total(refs) if total(refs) else 0.0,
            found / spent if spent else 0.0,
            found / (spent + missed) if spent + missed else 0.0)


def precision_omega(refs: Sequence[Span], chunks: Sequence[Span]) -> tuple[float, int]:
    """(precision-Ω, highlighted chunks): precision if retrieval returned exactly the chunks that
    intersect a reference (touching counts) — the best any retriever could do with this chunking."""
    touching, hits = [], []
    for c in chunks:
        ms = [m for r in refs if (m := meet(c, r)) is not None]
        if ms:
            touching.append(c)
            hits += ms
    if not hits:
        return 0.0, 0
    pieces = _leftovers(refs, hits)
    return total(union(hits)) / total(union(touching + pieces)), len(touching)


def _leftovers(refs: Sequence[Span], cut: Sequence[Span]) -> list[Span]:
    """Reference pieces outside ``cut``, as ranges."""
    out = []
    cov = union(cut)
    for s, e in refs:
        pos = s
        for cs, ce in cov:
            if ce <= pos or cs >= e:
                continue
            if cs > pos:
                out.append((pos, cs))
            pos = max(pos, ce)
        if pos < e:
            out.append((pos, e))
    return out


def overlaps(c: Span, refs: Sequence[Span]) -> bool:
    """Relevance for the rank metrics: a real (positive-length) overlap with a reference."""
    return any(min(c[1], e) > max(c[0], s) for s, e in refs)


def rank_scores(relevant: Sequence[bool], n_relevant: int) -> tuple[float, float, float]:
    """(hit, reciprocal rank, nDCG) of one ranked list with binary relevance; ``n_relevant`` is how
    many relevant chunks exist at all (the ideal ranking puts min(k, n) of them first)."""
    hit = float(any(relevant))
    rr = next((1.0 / (i + 1) for i, rel in enumerate(relevant) if rel), 0.0)
    dcg = sum(1.0 / math.log2(i + 2) for i, rel in enumerate(relevant) if rel)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), n_relevant)))
    return hit, rr, dcg / ideal if ideal else 0.0


def covered_whole(refs: Sequence[Span], chunks: Sequence[Span]) -> float:
    """Share of the references that lie wholly inside one chunk."""
    return sum(any(cs <= s and e <= ce for cs, ce in chunks) for s, e in refs) / len(refs) if refs else 0.0


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=float)
    return (float(a.mean()), float(a.std())) if len(a) else (float("nan"), float("nan"))


def paired(ours: Sequence[float], base: Sequence[float], n_boot: int = 10_000, seed: int = 0,
           tie: float = 1e-9) -> dict:
    """Per-question differences against a baseline: mean, a percentile-bootstrap 95% interval of the
    mean, and win/tie/loss counts."""
    d = np.asarray(ours, dtype=float) - np.asarray(base, dtype=float)
    if not len(d):
        return {"mean_diff": float("nan"), "ci95": [float("nan")] * 2, "wins": 0, "ties": 0, "losses": 0}
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"mean_diff": float(d.mean()), "ci95": [float(lo), float(hi)],
            "wins": int((d > tie).sum()), "ties": int((abs(d) <= tie).sum()), "losses": int((d < -tie).sum())}
