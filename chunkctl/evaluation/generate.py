"""``chunkctl qa generate``: a QA set from the user's own documents, by Chroma's recipe.

For each document, rounds of: show the model a window of the text (``window`` characters at a
seeded random position) and the questions already asked about it, and ask (JSON schema) for one
question plus the verbatim excerpts that answer it. An excerpt is kept only when it is found in the
document (exactly, else with white space normalised); an attempt with an excerpt that is not there,
or with more than ``max_refs`` excerpts, is discarded and retried. Then two filters with the
embedding model: a question whose least similar excerpt has cosine below ``ref_threshold`` (0.36)
is dropped as weakly supported, and a question with cosine above ``dup_threshold`` (0.78) to an
earlier kept question of the same document is dropped as a near-duplicate.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import numpy as np

from chunkctl.llm import LLMError, Request, chat

# Length caps keep a small model's grammar-constrained output from running to max_tokens.
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["question", "references"],
          "properties": {"question": {"type": "string", "minLength": 8, "maxLength": 300},
                         "references": {"type": "array", "minItems": 1, "maxItems": 5,
                                        "items": {"type": "string", "minLength": 8, "maxLength": 800}}}}
SYSTEM = ("You write evaluation questions for a search system. Given an excerpt of a document, write one "
          "question a reader could ask that the excerpt answers, and copy, word for word, the passages of "
          "the excerpt that answer it. Copy passages exactly as they appear; do not paraphrase, shorten or "
          "join them. Prefer a question different from the ones already asked.")


@dataclass(frozen=True)
class GenerateOptions:
    per_doc: int = 5
    window: int = 4000
    max_refs: int = 5
    attempts: int = 3
    ref_threshold: float = 0.36
    dup_threshold: float = 0.78
    seed: int = 0


@dataclass
class GenerateResult:
    rows: list[dict] = field(default_factory=list)  # native QA lines
    asked: int = 0
    failed: int = 0  # LLM errors and invalid answers
    not_found: int = 0  # attempts discarded: an excerpt was not in the document
    weak: int = 0
    duplicates: int = 0


def find_excerpt(text: str, excerpt: str, near: int = 0) -> tuple[int, int] | None:
    """Where ``excerpt`` is in ``text``: the exact occurrence nearest ``near``, else a match with
    every run of white space made flexible (models re-flow line breaks)."""
    excerpt = excerpt.strip()
    if not excerpt:
        return None
    hits = [m.start() for m in re.finditer(re.escape(excerpt), text)]
    if hits:
        s = min(hits, key=lambda p: abs(p - near))
        return s, s + len(excerpt)
    pattern = r"\s+".join(re.escape(w) for w in excerpt.split())
    m = re.search(pattern, text)
    return (m.start(), m.end()) if m else None


def _request(window: str, asked: list[str], seed: int) -> Request:
    prev = "\n".join(f"- {q}" for q in asked[-20:]) or "(none)"
    return chat(f"Questions already asked about this document:\n{prev}\n\nExcerpt:\n<<<\n{window}\n>>>",
                system=SYSTEM, schema=SCHEMA, max_tokens=600, temperature=0.7, seed=seed)


def generate_qa(docs: list[tuple[str, str]], llm, embedder, opts: GenerateOptions = GenerateOptions()) -> GenerateResult:
    """QA lines for ``docs`` ([(key, text)]): ``per_doc`` rounds, each asking about every document at
    once (the LLM helper runs them concurrently), then the two embedding filters."""
    from chunkctl import progress

    res = GenerateResult()
    rng = random.Random(opts.seed)
    kept: dict[str, list[tuple[str, list[tuple[int, int]]]]] = {key: [] for key, _ in docs}

    with progress.step("qa generate", opts.per_doc) as step:
        for _ in range(opts.per_doc):
            _round(docs, llm, opts, rng, kept, res)
            step.advance()
    for key, text in docs:
        for question, spans in _filter(kept[key], text, embedder, opts, res):
            res.rows.append({"question": question, "references": [
                {"doc": key, "char_start": s, "char_end": e, "text": text[s:e]} for s, e in spans]})
    return res


def _round(docs, llm, opts: GenerateOptions, rng, kept, res: GenerateResult) -> None:
    """One question asked about every document (a failed or unverifiable answer asked again)."""
    pending = [(key, text) for key, text in docs if text.strip()]
    for attempt in range(opts.attempts):
        if not pending:
            break
        starts = [rng.randint(0, max(0, len(t) - opts.window)) for _, t in pending]
        reqs = [_request(t[s:s + opts.window], [q for q, _ in kept[k]], rng.randrange(1 << 30))
                for (k, t), s in zip(pending, starts)]
        res.asked += len(reqs)
        retry = []
        for (key, text), start, out in zip(pending, starts, llm.map(reqs, errors="return")):
            if isinstance(out, LLMError) or not isinstance(out.data, dict):
                res.failed += 1
                retry.append((key, text))
                continue
            refs = [find_excerpt(text, e, start) for e in out.data["references"][:opts.max_refs + 1]]
            if len(refs) > opts.max_refs or any(r is None for r in refs):
                res.not_found += 1
                retry.append((key, text))
                continue
            kept[key].append((out.data["question"].strip(), sorted(set(refs))))
        pending = retry


def _filter(items, text: str, embedder, opts: GenerateOptions, res: GenerateResult):
    if not items:
        return []
    qv = embedder.embed([q for q, _ in items])
    out, out_vecs = [], []
    for (q, spans), v in zip(items, qv):
        rv = embedder.embed([text[s:e] for s, e in spans])
        if float(np.min(rv @ v)) < opts.ref_threshold:
            res.weak += 1
            continue
        if out_vecs and float(np.max(np.stack(out_vecs) @ v)) > opts.dup_threshold:
            res.duplicates += 1
            continue
        out.append((q, spans))
        out_vecs.append(v)
    return out
