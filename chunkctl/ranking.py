"""The arithmetic of ranking, apart from any store: fusing a dense and a lexical candidate list
(score fusion or reciprocal rank fusion), the neighbour term, widening a hit to its neighbouring
chunks, and SAGE's cut-off. Lists are of (position, score), best first; positions index one
strategy's chunk table, in document order."""
from __future__ import annotations

from typing import Hashable, Sequence

RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al.), as most hybrid retrievers use

Ranked = list[tuple[int, float]]


def rrf(rankings: Sequence[Sequence[tuple[int, float]]], rrf_k: int = RRF_K) -> Ranked:
    """Reciprocal rank fusion: Σ 1 / (rrf_k + rank) over the lists a candidate is in."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (pos, _) in enumerate(ranking, start=1):
            scores[pos] = scores.get(pos, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def scaled(ranked: Sequence[tuple[int, float]]) -> Ranked:
    """Scores divided by the best one (the best becomes 1), order kept."""
    top = max((s for _, s in ranked), default=0.0)
    return [(p, s / top if top > 0 else 0.0) for p, s in ranked]


def _minmax(values: dict[int, float], floor: float) -> dict[int, float]:
    """Scores mapped onto [0, 1] between ``floor`` and the best of them."""
    top = max(values.values(), default=floor)
    span = top - floor
    return {p: (v - floor) / span if span > 0 else 1.0 for p, v in values.items()}


def convex(dense: Sequence[tuple[int, float]], lexical: Sequence[tuple[int, float]], weight: float,
           dense_of=None) -> Ranked:
    """Score fusion: ``weight``·dense + (1 − ``weight``)·lexical, each side min–max normalised over
    its own candidate list, so a cosine and an unbounded BM25 score become comparable per query.

    A candidate missing from one side takes that side's lowest listed score (it ranked below every
    listed candidate there, so 0 after normalisation), or its exact dense score when ``dense_of``
    (position -> cosine) can compute it. RRF keeps only ranks; this keeps how far apart the scores
    are, which is what lets a confident side outvote an unsure one."""
    d = dict(dense)
    lx = dict(lexical)
    if dense_of is not None:
        for p in lx:
            if p not in d:
                d[p] = float(dense_of(p))
    d_floor = min((v for p, v in dense), default=0.0)
    l_floor = min(lx.values(), default=0.0)
    dn = _minmax({p: max(v, d_floor) for p, v in d.items()}, d_floor)
    ln = _minmax(lx, l_floor)
    fused = {p: weight * dn.get(p, 0.0) + (1.0 - weight) * ln.get(p, 0.0) for p in d.keys() | lx.keys()}
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def with_neighbours(ranked: Sequence[tuple[int, float]], group_of: Sequence[Hashable], weight: float) -> Ranked:
    """Each candidate's score plus ``weight`` × the better score of its two neighbours in the same
    document (positions are in document order): a chunk beside a strong match is likelier to hold
    the rest of its answer. Neighbours of candidates join as candidates with a score of their own of
    0 (they were below both sides' lists)."""
    if weight <= 0:
        return list(ranked)
    score = dict(ranked)
    n = len(group_of)

    def near(p: int) -> list[int]:
        return [q for q in (p - 1, p + 1) if 0 <= q < n and group_of[q] == group_of[p]]

    pool = set(score) | {q for p in score for q in near(p)}
    out = {p: score.get(p, 0.0) + weight * max([score.get(q, 0.0) for q in near(p)], default=0.0) for p in pool}
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


def sage_cutoff(scores: Sequence[float], gap: float = 0.3, k_min: int = 1, eps: float = 1e-6) -> int:
    """How many of the ranked results to keep: SAGE's selection by the speed at which relevance
    drops (Zhang et al., 2025). The paper gives no formula; this is the spec's reading (INFERRED):
    the first i >= k_min where the relative drop (s_i - s_(i+1)) / |s_i| exceeds ``gap``; else all."""
    for i in range(max(k_min, 1), len(scores)):
        if (scores[i - 1] - scores[i]) / max(abs(scores[i - 1]), eps) > gap:
            return i
    return len(scores)


def widen(ranked: Sequence[tuple[int, float]], doc_of: Sequence[Hashable], k: int, expand: int, ratio: float = 0.0
          ) -> list[tuple[int, int, float]]:
    """The first ``k`` results as (first, last) runs of positions. With ``expand`` 0, each hit
    alone; otherwise each hit grows over up to ``expand`` chunks of its document on either side
    (``doc_of``: positions are in document order), one at a time while the next one scores at least
    ``ratio`` × the hit's score (0: unconditionally): small chunks rank precisely, and a run takes
    in the neighbours that carry the rest of an answer, not those that do not. A hit inside a run
    already returned adds nothing; runs that touch merge, so results never overlap."""
    if expand <= 0:
        return [(pos, pos, score) for pos, score in ranked[:k]]
    score_of = dict(ranked)
    runs: list[list] = []  # [first, last, score]
    n = len(doc_of)

    def joins(q: int, pos: int, score: float) -> bool:
        return doc_of[q] == doc_of[pos] and score_of.get(q, 0.0) >= ratio * score

    for pos, score in ranked:
        if len(runs) >= k:
            break
        if any(r[0] <= pos <= r[1] for r in runs):
            continue  # returned already, with its neighbours
        lo, hi = pos, pos
        while lo > 0 and pos - lo < expand and joins(lo - 1, pos, score):
            lo -= 1
        while hi < n - 1 and hi - pos < expand and joins(hi + 1, pos, score):
            hi += 1
        joined = [r for r in runs if doc_of[r[0]] == doc_of[pos] and r[0] <= hi + 1 and lo <= r[1] + 1]
        if joined:  # the best-scored run it touches takes it (and any other run it bridges)
            keep = joined[0]
            keep[0], keep[1] = min([lo] + [r[0] for r in joined]), max([hi] + [r[1] for r in joined])
            runs = [r for r in runs if r is keep or all(r is not j for j in joined)]
        else:
            runs.append([lo, hi, score])
    return [(lo, hi, score) for lo, hi, score in runs]
