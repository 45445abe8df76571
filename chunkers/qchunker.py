"""``qchunker``: QChunker (Zhao et al., 2026; spec §1) — understanding, retrieval, augmentation by
four LLM agents, each with one task and a JSON answer.

1. **Outline**: questions that probe the window (motivation, assumptions, method, conclusions, how
   they follow), the prior that guides segmentation.
2. **Segmenter**, multi-path: ``paths`` partitions sampled at ``temperature``/``top_p`` with
   different seeds, each the numbers of the sentences that start a chunk, with the outline question
   the chunk answers (``chunkers/windows.py``); the candidate whose size-capped chunks have the best
   ChunkScore wins (one candidate: no scoring).
3. **Reviewer**, per chunk: what the chunk needs to be understood but lacks, each item with the
   document sentence that states it, copied. An item whose quote is not in the document outside the
   chunk is dropped by code: the paper's "explicitly stated, no extrapolation" made checkable.
4. **Completer**, per chunk with items left: re-checks each item (needed, stated, on topic), then
   rewrites the chunk with the kept items woven in. A rewrite that drops the chunk's words or adds
   names, numbers or many words found neither in the chunk nor in the kept quotes is refused; the
   chunk is then completed by code (the kept quotes before the chunk) and the refusal is counted.

The chunk's ``text`` is always its source span. The outline question (``metadata.question``), the
kept items (``metadata.missing``) and the completed text (``metadata.completed``) live beside it;
``embed`` chooses what the embedding stage embeds: the completed text (the paper's output), the
original, or the question before the original (the paper's retrieval index).

Departures (see docs/llm-chunkers.md): sentence numbers instead of ``head[MASK]tail`` anchors;
windows of the document instead of the whole (small models' contexts); the reviewer reads
``context`` tokens around the chunk, not the whole document; p = 4, T = 0.7, top_p = 0.8 are the
spec's inferred defaults (the paper does not give p).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from chunkctl.chunkers.base import ChunkContext, Chunker, Span, register
from chunkctl.chunkers.groups import capped_spans
from chunkctl.chunkers.idc import clean_questions
from chunkctl.chunkers.sentence import sentence_bounds
from chunkctl.chunkers.windows import (clean_starts, first_sentence_schema, most_chunks, numbered, owned_ranges,
                                       sentence_windows, starts_to_groups, stitch, window_tokens)
from chunkctl.types import Document

WHO = "qchunker"
SYSTEM = "You are a careful analyst of documents. You answer with JSON only and never rewrite the document."
OUTLINE = (
    "Document:\n\"\"\"\n{doc}\n\"\"\"\n\n"
    "Write the questions this document answers, in the order it answers them: why it was written, what it "
    "assumes, how it proceeds, what it concludes and how each step leads to the next. One short question "
    'for each part of the document. Reply as {{"questions": ["...", "..."]}}.'
)
SEGMENT = (
    "Questions the document answers:\n{outline}\n\n"
    "The document, one numbered sentence per line:\n{sentences}\n\n"
    "Split the document into chunks so that each chunk answers one of the questions completely and reads as "
    "a whole; avoid very short chunks. For each chunk give the number of its first sentence (the first chunk "
    'starts at 1, numbers increase) and the question it answers. Reply as {{"chunks": [{{"first": 1, '
    '"question": "..."}}, ...]}}.'
)
REVIEW = (
    "Document:\n\"\"\"\n{doc}\n\"\"\"\n\nA chunk cut from it:\n\"\"\"\n{chunk}\n\"\"\"\n\n"
    "Someone will read this chunk alone. List what they need to understand it that the chunk does not say "
    "(what a pronoun or an abbreviation refers to, a term defined elsewhere, the subject of a number) and "
    "that the document states outside the chunk. For each, copy the sentence of the document that states it, "
    'word for word. If the chunk is clear alone, give an empty list. Reply as {{"missing": [{{"fact": "...", '
    '"quote": "..."}}]}}.'
)
RECHECK = (
    "A chunk of a document:\n\"\"\"\n{chunk}\n\"\"\"\n\nFacts proposed to complete it:\n{facts}\n\n"
    "For each fact answer true only if all three hold: a reader of the chunk needs it, the quoted document "
    "sentence states it, and it does not bring in a new topic. "
    'Reply as {{"keep": [true or false for each fact, in order]}}.'
)
REWRITE = (
    "A chunk of a document:\n\"\"\"\n{chunk}\n\"\"\"\n\nFacts from the same document that it lacks:\n{facts}\n\n"
    "Rewrite the chunk so that it can be understood alone: weave each fact in where it belongs. Keep the "
    "chunk's wording and style, leave nothing out and add nothing that is not in the chunk or the facts. "
    'Reply as {{"completed": "..."}}.'
)
MIN_QUOTE = 20  # characters: a shorter "quote" (a word or two) is found anywhere and proves nothing
MAX_ITEMS = 5
NEW_WORDS = 0.15  # share of a rewrite's words that may come from neither the chunk nor the quotes
KEEP_WORDS = 0.9  # share of the chunk's distinct words (glue words aside) a rewrite must keep
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_GLUE = frozenset(  # words a rewrite may add to join a fact in: they carry no fact of their own
    "a an the this that these those it its they their them he she his her who whom whose which what where when "
    "and or but so as of in on at to for with by from into about also is are was were be been being has have "
    "had not which while because since here there such both each".split())


def _norm(s: str) -> str:
    return " ".join(s.split()).lower()


def stated_outside(text: str, quote: str, start: int, end: int) -> bool:
    """Does the document state ``quote`` (whitespace and case aside) outside text[start:end]?"""
    q = _norm(quote).strip(" .\"'")
    return len(q) >= MIN_QUOTE and (q in _norm(text[:start]) or q in _norm(text[end:]))


def faithful(completed: str, chunk: str, quotes: list[str]) -> bool:
    """Is the rewrite the chunk plus the quotes' facts, no more and no less (by words)?"""
    have = {w.lower() for src in (chunk, *quotes) for w in _WORD.findall(src)} | _GLUE
    words = _WORD.findall(completed)
    new = [w for w in words if w.lower() not in have]
    named = [w for w in new if w[0].isupper() or any(ch.isdigit() for ch in w)]
    kept = {w.lower() for w in words}
    chunk_words = {w.lower() for w in _WORD.findall(chunk)} - _GLUE  # a pronoun may give way to its referent
    return (not named and len(new) <= NEW_WORDS * max(1, len(words))
            and len(chunk_words & kept) >= KEEP_WORDS * len(chunk_words))


def around(text: str, start: int, end: int, chars: int) -> str:
    """The chunk with up to ``chars`` characters of the document on each side, cut at whitespace."""
    a, z = max(0, start - chars), min(len(text), end + chars)
    if a > 0:
        a = text.find(" ", a, start) + 1 or a
    if z < len(text):
        z = text.rfind(" ", end, z) if text.rfind(" ", end, z) > 0 else z
    return text[a:z]


@register
@dataclass(frozen=True)
class QChunker(Chunker):
    """QChunker's four agents: an outline of questions, `paths` sampled partitions (sentence numbers)
    with the best ChunkScore kept, a reviewer per chunk (missing facts, each with a quote the code
    checks) and a completer (re-check, rewrite into `metadata.completed`). `embed` picks what is
    embedded: completed | original | question+original. `complete=false` stops after segmentation."""

    name = "qchunker"
    paths: int = 4
    temperature: float = 0.7
    top_p: float = 0.8
    complete: bool = True
    embed: Literal["completed", "original", "question+original"] = "completed"
    window: int = 0  # tokens per window; 0: from the model's context length
    context: int = 512  # tokens of the document around a chunk the reviewer reads
    size: int = 256
    max_tokens: int = 1024  # for the segmenter's reply
    tokenizer: str = "minilm"
    embedder: str = "minilm"  # ChunkScore's semantic dispersion
    li_mode: Literal["ppl", "nll"] = "ppl"  # ChunkScore's LI: the ratio of PPLs, or of mean NLLs (MoC's code)

    def __post_init__(self):
        if self.paths < 1 or self.size < 1 or self.window < 0 or self.context < 0 or self.max_tokens < 64:
            raise ValueError("qchunker: need paths >= 1, size >= 1, window >= 0, context >= 0, max_tokens >= 64")

    # -- requests -------------------------------------------------------------------------
    def outline_request(self, doc: str, n_max: int):
        from chunkctl.llm import chat

        schema = {"type": "object", "required": ["questions"], "properties": {"questions": {
            "type": "array", "maxItems": n_max, "items": {"type": "string"}}}}
        return chat(OUTLINE.format(doc=doc), system=SYSTEM, schema=schema, max_tokens=40 * n_max)

    def segment_request(self, outline: list[str], sentences: str, m: int, n_max: int, path: int):
        from chunkctl.llm import chat

        item = {"type": "object", "required": ["first", "question"], "properties": {
            "first": first_sentence_schema(m), "question": {"type": "string"}}}
        schema = {"type": "object", "required": ["chunks"], "properties": {"chunks": {
            "type": "array", "minItems": 1, "maxItems": n_max, "items": item}}}
        listing = "\n".join(f"- {q}" for q in outline) or "(none given)"
        return chat(SEGMENT.format(outline=listing, sentences=sentences), system=SYSTEM, schema=schema,
                    temperature=self.temperature, top_p=self.top_p, seed=path,
                    max_tokens=min(self.max_tokens, 32 + 48 * n_max))  # ~48 tokens an item, with its question

    def review_request(self, context: str, chunk: str):
        from chunkctl.llm import chat

        item = {"type": "object", "required": ["fact", "quote"], "properties": {
            "fact": {"type": "string"}, "quote": {"type": "string"}}}
        schema = {"type": "object", "required": ["missing"], "properties": {"missing": {
            "type": "array", "maxItems": MAX_ITEMS, "items": item}}}
        return chat(REVIEW.format(doc=context, chunk=chunk), system=SYSTEM, schema=schema, max_tokens=256)

    def recheck_request(self, chunk: str, items: list[dict]):
        from chunkctl.llm import chat

        n = len(items)
        schema = {"type": "object", "required": ["keep"], "properties": {"keep": {
            "type": "array", "minItems": n, "maxItems": n, "items": {"type": "boolean"}}}}
        return chat(RECHECK.format(chunk=chunk, facts=_facts(items)), system=SYSTEM, schema=schema,
                    max_tokens=16 + 8 * n)

    def rewrite_request(self, chunk: str, items: list[dict]):
        from chunkctl.llm import chat

        chars = len(chunk) + sum(len(i["quote"]) for i in items) + 200  # the chunk, the facts, some glue
        schema = {"type": "object", "required": ["completed"], "properties": {
            "completed": {"type": "string"}}}
        return chat(REWRITE.format(chunk=chunk, facts=_facts(items)), system=SYSTEM, schema=schema,
                    max_tokens=min(4096, chars // 3))

    # -- agents 1 and 2, window by window ---------------------------------------------------
    def split(self, doc: Document, ctx: ChunkContext):
        text = doc.text
        if not text.strip():
            return []
        bounds = sentence_bounds(text)
        idx = ctx.tokens(text, self.tokenizer)
        llm = ctx.llm
        wins = sentence_windows(idx, bounds, window_tokens(llm, self.window, self.size, self.max_tokens))
        proposals = [self._window(text, idx, bounds, a, b, ctx) for a, b in wins]
        groups = starts_to_groups(stitch(proposals, owned_ranges(wins, len(bounds))), len(bounds))
        spans = capped_spans(idx, bounds, [(a, b, {"question": q} if q else None) for a, b, q in groups], self.size)
        if self.complete:
            spans = self._complete(text, spans, llm)
        return [sp._replace(embed_text=self._embed_text(text, sp)) for sp in spans]

    def _window(self, text, idx, bounds, a: int, b: int, ctx) -> list[tuple[int, str | None]]:
        """The chosen partition of sentences a..b-1 as (global sentence, question) starts."""
        from chunkctl.llm import LLMError

        llm, m = ctx.llm, b - a
        n_max = most_chunks(idx, bounds, a, b, self.size)
        try:
            outline = clean_questions(llm.complete(self.outline_request(text[bounds[a][0]:bounds[b - 1][1]], n_max)
                                                   ).data["questions"])
        except LLMError:
            outline = []
        if not outline:
            llm.stats.fallback(f"{WHO}: empty outline")
        sentences = numbered(text, bounds, a, b)
        outs = llm.map([self.segment_request(outline, sentences, m, n_max, p) for p in range(self.paths)],
                       errors="return")
        candidates: dict[tuple[int, ...], list[tuple[int, str | None]]] = {}
        for out in outs:
            if isinstance(out, LLMError):
                llm.stats.fallback(f"{WHO}: no valid partition")
                continue
            starts = [(a + k, (item.get("question") or "").strip() or None)
                      for k, item in clean_starts(out.data["chunks"], m, llm.stats, WHO)]
            if starts:
                candidates.setdefault(tuple(s for s, _ in starts), starts)
        if not candidates:
            return []  # the window is packed up to `size` (stitch starts it; capped_spans cuts it)
        if len(candidates) == 1:
            return next(iter(candidates.values()))
        return self._best(text, idx, bounds, a, b, list(candidates.values()), ctx)

    def _best(self, text, idx, bounds, a, b, candidates, ctx):
        """The candidate whose chunks (as they will be: size-capped) have the highest ChunkScore."""
        from chunkctl.evaluation.chunkscore import chunk_score
        from chunkctl.llm import LLMError

        embedder = ctx.embedder(self.embedder)
        scores = []
        for starts in candidates:
            groups = starts_to_groups([(s - a, None) for s in sorted({a} | {s for s, _ in starts})], b - a)
            spans = capped_spans(idx, bounds[a:b], groups, self.size)
            try:
                scores.append(chunk_score([text[s.start:s.end] for s in spans], ctx.llm, embedder,
                                          li_mode=self.li_mode).score)
            except LLMError:
                ctx.llm.stats.fallback(f"{WHO}: ChunkScore unavailable")
                scores.append(float("-inf"))
        return candidates[max(range(len(candidates)), key=lambda i: (scores[i], -i))]

    # -- agents 3 and 4, chunk by chunk ----------------------------------------------------
    def _complete(self, text: str, spans: list[Span], llm) -> list[Span]:
        from chunkctl.llm import LLMError

        chars = 4 * self.context  # ~4 characters per token of English prose
        reviews = llm.map([self.review_request(around(text, s.start, s.end, chars), text[s.start:s.end])
                           for s in spans], errors="return")
        found: dict[int, list[dict]] = {}
        reviewed = set()
        for i, (sp, out) in enumerate(zip(spans, reviews)):
            if isinstance(out, LLMError):
                llm.stats.fallback(f"{WHO}: review failed")
                continue
            reviewed.add(i)
            stated = [it for it in out.data["missing"] if stated_outside(text, it["quote"], sp.start, sp.end)]
            if len(stated) < len(out.data["missing"]):
                llm.stats.fallback(f"{WHO}: missing fact not stated in the document",
                                   len(out.data["missing"]) - len(stated))
            unique: dict[str, dict] = {}
            for it in stated:  # one item per quote: a fact cited twice is prepended once
                unique.setdefault(_norm(it["quote"]), it)
            if unique:
                found[i] = list(unique.values())
        todo = sorted(found)
        checks = llm.map([self.recheck_request(text[spans[i].start:spans[i].end], found[i]) for i in todo],
                         errors="return")
        kept: dict[int, list[dict]] = {}
        for i, out in zip(todo, checks):
            if isinstance(out, LLMError):
                llm.stats.fallback(f"{WHO}: re-check failed")  # the quotes are verified: keep them
                kept[i] = found[i]
            elif items := [it for it, ok in zip(found[i], out.data["keep"]) if ok]:
                kept[i] = items
        todo = sorted(kept)
        rewrites = llm.map([self.rewrite_request(text[spans[i].start:spans[i].end], kept[i]) for i in todo],
                           errors="return")
        out_spans = [sp._replace(metadata={**(sp.metadata or {}), "missing": []}) if i in reviewed else sp
                     for i, sp in enumerate(spans)]
        for i, out in zip(todo, rewrites):
            chunk, quotes = text[spans[i].start:spans[i].end], [it["quote"] for it in kept[i]]
            if isinstance(out, LLMError) or not faithful(out.data["completed"], chunk, quotes):
                llm.stats.fallback(f"{WHO}: rewrite refused, quotes prepended")
                completed = "\n".join(quotes) + "\n\n" + chunk
            else:
                completed = out.data["completed"]
            out_spans[i] = out_spans[i]._replace(metadata={**out_spans[i].metadata, "missing": kept[i],
                                                           "completed": completed})
        return out_spans

    def _embed_text(self, text: str, sp: Span) -> str | None:
        meta = sp.metadata or {}
        if self.embed == "completed":
            return meta.get("completed")
        if self.embed == "question+original" and meta.get("question"):
            return " ".join(meta["question"].split()) + "\n" + text[sp.start:sp.end]
        return None


def _facts(items: list[dict]) -> str:
    return "\n".join(f"[{k}] {' '.join(it['fact'].split())} (the document says: \"{' '.join(it['quote'].split())}\")"
                     for k, it in enumerate(items, start=1))
