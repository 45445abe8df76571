"""``mom``: MoM, mixtures of scenario-aware document memories (Zhao et al., 2025; spec §2).

The model reads the document (window by window, ``chunkers/windows.py``) as an expert of its field
and writes its memory: the field, an outline O (main topics in order) and, per topic, where its
part of the document begins (a sentence number: the atomic chunk a_i) and its core content c_i in
the model's words. ``paths`` memories are sampled at the spec's temperatures {0.5, 0.7, 0.9, 1.0}
and scored from two angles:

- clarity: the mean over adjacent chunks of P(boundary | a_i, a_{i+1}), the probability of "split"
  against "keep" in the margin chunker's question (next-token probabilities, nothing generated);
  ``clarity=pair`` normalises over the two options, ``raw`` takes P("1") as it is;
- completeness: the mean over chunks of 1 / (PPL(a_i | c_i) · log|c_i|), |c_i| in words (at least 3,
  so the log exceeds 1); the core content that makes its chunk predictable while short wins.

The memory with the best reciprocal-rank fusion of the two rankings is kept (k = ``rrf_k``, 60 by
the spec; ties to the earlier sample). Post-processing as the authors' notebook: a chunk shorter
than ``merge_min`` characters joins the previous one when together they stay within ``merge_max``
(the first member's memory is kept). ``size`` caps a chunk in tokens.

Each chunk's outline entry and core content are in ``metadata`` (``outline``, ``core``, ``field``);
the store writes them as their own rows (``memories``) and ``search --memory mixed|per-layer``
retrieves over the three layers (``store/memory.py``). Chunk text is always a source span.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from chunkctl.chunkers.base import ChunkContext, Chunker, register
from chunkctl.chunkers.groups import capped_spans
from chunkctl.chunkers.idc import clean_questions
from chunkctl.chunkers.margin import OPTIONS, boundary_request
from chunkctl.chunkers.sentence import sentence_bounds
from chunkctl.chunkers.windows import (clean_starts, first_sentence_schema, most_chunks, numbered, owned_ranges,
                                       sentence_windows, starts_to_groups, stitch, window_tokens)
from chunkctl.types import Document

WHO = "mom"
TEMPERATURES = (0.5, 0.7, 0.9, 1.0)  # the spec's inferred sampling temperatures, cycled
PAIR_CHARS = 800  # of each chunk shown in a boundary question (the end of a_i, the start of a_{i+1}):
# the boundary is what is judged, and the scorer's cost grows with the prompt
SYSTEM = "You are an expert reader who builds memories of documents. You answer with JSON only."
MEMORY = (
    "The document, one numbered sentence per line:\n{sentences}\n\n"
    "Read it as an expert of its field. First name the field. Then write the document's outline: its main "
    "topics in order, one short line each. Then, for each topic of the outline, in the same order, give the "
    "number of the sentence where that part of the document begins and its core content: the key facts of "
    "the part in one or two sentences of your own. Each part is a complete unit of meaning, not very short; "
    'the first part begins at sentence 1. Reply as {{"field": "...", "outline": ["..."], '
    '"memories": [{{"first": 1, "core": "..."}}]}}.'
)


def rrf_pick(clarity: list[float], completeness: list[float], k: int = 60) -> int:
    """The candidate with the highest 1/(k + rank by clarity) + 1/(k + rank by completeness).
    Rank 1 = best; equal values share a rank (1 + how many are better); NaN ranks after every
    number; a tie in the fused score goes to the earlier sample."""
    def ranks(values):
        known = [v for v in values if not math.isnan(v)]
        return [len(known) + 1 if math.isnan(v) else 1 + sum(u > v for u in known) for v in values]

    r1, r2 = ranks(clarity), ranks(completeness)
    fused = [1 / (k + r1[i]) + 1 / (k + r2[i]) for i in range(len(clarity))]
    return max(range(len(fused)), key=lambda i: (fused[i], -i))


def completeness_term(nll: float, core: str) -> float:
    """1 / (PPL(a | c) · log|c|) with |c| in words, at least 3; an empty core content scores 0."""
    words = len(core.split())
    if not words:
        return 0.0
    return 1.0 / (math.exp(nll) * math.log(max(3, words)))


def boundary_probability(candidates: dict, norm: str = "pair") -> float:
    """P(split) from the candidates' log-probs: over {split, keep} (``pair``) or as it is (``raw``)."""
    p = {k: math.exp(v) if v is not None else 0.0 for k, v in candidates.items()}
    split, keep = p.get(OPTIONS[0], 0.0), p.get(OPTIONS[1], 0.0)
    if norm == "raw":
        return split
    return split / (split + keep) if split + keep > 0 else 0.5


def merge_short(text_len, groups, lo: int, hi: int):
    """The notebook's merge_short_texts on sentence groups: a group under ``lo`` characters (not the
    first) joins the previous one when together they are at most ``hi``; the first's payload stays."""
    out = []
    for a, b, p in groups:
        if out and text_len(a, b) < lo and text_len(out[-1][0], b) <= hi:
            out[-1] = (out[-1][0], b, out[-1][2])
        else:
            out.append((a, b, p))
    return out


@register
@dataclass(frozen=True)
class MoM(Chunker):
    """MoM's document memories: the LLM, as an expert of the document's field, writes an outline and
    per topic where its chunk begins (a sentence number) and its core content; `paths` samples are
    ranked by boundary clarity and completeness and fused by RRF (`rrf_k`); short chunks merge
    (`merge_min`/`merge_max` characters). Outline and core are stored as memory layers for
    `search --memory`."""

    name = "mom"
    paths: int = 4
    rrf_k: int = 60
    clarity: Literal["pair", "raw"] = "pair"
    merge_min: int = 50
    merge_max: int = 250
    window: int = 0  # tokens per window; 0: from the model's context length
    size: int = 256
    max_tokens: int = 1536  # for the memory reply
    template: Literal["chatml", "plain"] = "chatml"  # of the boundary question
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.paths < 1 or self.size < 1 or self.window < 0 or self.rrf_k < 1 or self.max_tokens < 64:
            raise ValueError("mom: need paths >= 1, size >= 1, window >= 0, rrf_k >= 1, max_tokens >= 64")

    def memory_request(self, sentences: str, m: int, n_max: int, path: int):
        from chunkctl.llm import chat

        memory = {"type": "object", "required": ["first", "core"], "properties": {
            "first": first_sentence_schema(m), "core": {"type": "string"}}}
        schema = {"type": "object", "required": ["field", "outline", "memories"], "properties": {
            "field": {"type": "string"},
            "outline": {"type": "array", "maxItems": n_max, "items": {"type": "string"}},
            "memories": {"type": "array", "minItems": 1, "maxItems": n_max, "items": memory}}}
        return chat(MEMORY.format(sentences=sentences), system=SYSTEM, schema=schema, seed=path,
                    temperature=TEMPERATURES[path % len(TEMPERATURES)],
                    max_tokens=min(self.max_tokens, 64 + 80 * n_max))  # an outline line and a memory: ~80

    def split(self, doc: Document, ctx: ChunkContext):
        text = doc.text
        if not text.strip():
            return []
        bounds = sentence_bounds(text)
        idx = ctx.tokens(text, self.tokenizer)
        wins = sentence_windows(idx, bounds, window_tokens(ctx.llm, self.window, self.size, self.max_tokens))
        proposals = [self._window(text, bounds, a, b, most_chunks(idx, bounds, a, b, self.size), ctx.llm)
                     for a, b in wins]
        groups = starts_to_groups(stitch(proposals, owned_ranges(wins, len(bounds))), len(bounds))
        groups = merge_short(lambda a, b: bounds[b - 1][1] - bounds[a][0], groups, self.merge_min, self.merge_max)
        return capped_spans(idx, bounds, groups, self.size)

    def _window(self, text: str, bounds, a: int, b: int, n_max: int, llm) -> list[tuple[int, dict]]:
        """The chosen memory of sentences a..b-1 as (global sentence, {outline, core, field}) starts."""
        from chunkctl.llm import LLMError

        m = b - a
        sentences = numbered(text, bounds, a, b)
        outs = llm.map([self.memory_request(sentences, m, n_max, p) for p in range(self.paths)], errors="return")
        candidates: dict[tuple[int, ...], list[tuple[int, dict]]] = {}
        for out in outs:
            if isinstance(out, LLMError):
                llm.stats.fallback(f"{WHO}: no valid memory")
                continue
            starts = self._memory(out.data, m, llm)
            if starts:
                candidates.setdefault(tuple(a + k for k, _ in starts), [(a + k, p) for k, p in starts])
        if len(candidates) <= 1:
            return next(iter(candidates.values()), [])
        chosen = list(candidates.values())
        clarity, completeness = self._scores(text, bounds, b, chosen, llm)
        return chosen[rrf_pick(clarity, completeness, self.rrf_k)]

    def _memory(self, data: dict, m: int, llm) -> list[tuple[int, dict]]:
        """(window sentence, memory entry) starts of one reply; outline entry i goes with memory i."""
        outline, memories = clean_questions(data["outline"]), data["memories"]
        if not outline:
            llm.stats.fallback(f"{WHO}: empty outline")
        elif len(outline) != len(memories):
            llm.stats.fallback(f"{WHO}: outline and memories differ in count")
        order = {id(item): i for i, item in enumerate(memories)}
        field = " ".join(str(data.get("field", "")).split())
        return [(k, {"outline": outline[order[id(item)]] if order[id(item)] < len(outline) else "",
                     "core": " ".join(str(item.get("core", "")).split()), "field": field})
                for k, item in clean_starts(memories, m, llm.stats, WHO)]

    def _scores(self, text, bounds, b: int, candidates, llm) -> tuple[list[float], list[float]]:
        """Clarity and completeness of each candidate memory (NaN where the model gave no answer)."""
        from chunkctl.llm import LLMError, Request
        from chunkctl.evaluation.chunkscore import mean_nll

        reqs, plan = [], []
        for starts in candidates:
            ends = [s for s, _ in starts[1:]] + [b]
            chunks = [(text[bounds[s][0]:bounds[e - 1][1]], p["core"]) for (s, p), e in zip(starts, ends)]
            pairs = [boundary_request(x[-PAIR_CHARS:], y[:PAIR_CHARS], self.template)
                     for (x, _), (y, _) in zip(chunks, chunks[1:])]
            scored = [(Request(prompt=core, score=chunk), core) for chunk, core in chunks if core and chunk.strip()]
            plan.append((len(pairs), [core for _, core in scored], len(chunks)))
            reqs += pairs + [r for r, _ in scored]
        outs = iter(llm.map(reqs, errors="return"))
        clarity, completeness = [], []
        for n_pairs, cores, n_chunks in plan:
            probs = [next(outs) for _ in range(n_pairs)]
            nlls = [next(outs) for _ in cores]
            if any(isinstance(o, LLMError) for o in probs) or not probs:
                if probs:
                    llm.stats.fallback(f"{WHO}: clarity unavailable")
                clarity.append(float("nan"))
            else:
                clarity.append(sum(boundary_probability(o.candidates, self.clarity) for o in probs) / len(probs))
            if any(isinstance(o, LLMError) for o in nlls):
                llm.stats.fallback(f"{WHO}: completeness unavailable")
                completeness.append(float("nan"))
            else:
                completeness.append(sum(completeness_term(mean_nll(o), c) for o, c in zip(nlls, cores)) / n_chunks)
        return clarity, completeness
