"""``adaptive``: Adaptive Chunking's per-document choice (de Moura Junior et al., LREC 2026; spec §5.2).

Every candidate strategy chunks the document; each chunking is scored with the intrinsic metrics
(size compliance, block integrity, intrachunk cohesion, document contextual coherence: the ones
``chunkctl eval --intrinsic`` reports), and the document keeps the chunking with the best mean of
the metrics that apply to it (equal weights, a metric that does not apply is left out of the mean,
as the paper's code does). The choice and its score are in each chunk's metadata.

Departures, and why: references completeness (RC) needs a coreference model, none of which runs
offline here, so four of the five metrics vote; the paper's re-split/merge post-processing of each
candidate is left to the candidates' own size parameters; a tie keeps the earlier candidate.
"""
from __future__ import annotations

from dataclasses import dataclass

from chunkctl.chunkers.base import ChunkContext, Chunker, parse_spec, register
from chunkctl.types import Document


def best_of(scores: dict[str, dict[str, float | None]]) -> tuple[str, float | None]:
    """The candidate with the highest mean of its available metrics (None: no metric at all, then
    the first candidate)."""
    best, best_value = next(iter(scores)), None
    for name, metrics in scores.items():
        vals = [v for v in metrics.values() if v is not None]
        value = sum(vals) / len(vals) if vals else None
        if value is not None and (best_value is None or value > best_value):
            best, best_value = name, value
    return best, best_value


@register
@dataclass(frozen=True)
class Adaptive(Chunker):
    """Adaptive Chunking: run each of `candidates` (specs joined by +, their own parameters joined
    by ;) on the document and keep the one with the best mean of the intrinsic metrics SC, BI, ICC
    and DCC, embedded with `embedder`. The choice is in each chunk's metadata."""

    name = "adaptive"
    candidates: str = "recursive+sentence+structure+semantic"
    embedder: str = "minilm"

    def __post_init__(self):
        specs = self.choices()
        if not specs or any(c.name == self.name for c in specs):
            raise ValueError("adaptive: candidates must name one or more other strategies")

    def choices(self) -> list[Chunker]:
        """``fixed;size=32+sentence`` -> [fixed:size=32, sentence] (a spec's own , and : would clash
        with the outer spec's)."""
        out = []
        for c in filter(None, (c.strip() for c in self.candidates.split("+"))):
            name, _, params = c.partition(";")
            out.append(parse_spec(name + (":" + params.replace(";", ",") if params else "")))
        return out

    def split(self, doc: Document, ctx: ChunkContext):
        from chunkctl.evaluation.intrinsic import document_scores, element_starts, paragraph_starts

        text = doc.text
        points = element_starts(doc.elements, len(text)) if doc.elements else paragraph_starts(text)
        embed = ctx.embedder(self.embedder).embed
        spans, scores = {}, {}
        for ch in self.choices():
            got = list(ch.split(doc, ctx))
            spans[ch.spec] = got
            scores[ch.spec] = document_scores(text, [(s.start, s.end) for s in got], [s.n_tokens for s in got],
                                              points, embed) if got else {}
        choice, value = best_of(scores)
        meta = {"adaptive": choice, "adaptive_score": None if value is None else round(value, 4)}
        return [sp._replace(metadata={**(sp.metadata or {}), **meta}) for sp in spans[choice]]
