"""``lumber``: the LumberChunker idea (Duarte et al., 2024; chonkie's SlumberChunker).

The model reads a window of numbered sentences from where the last chunk ended and names the first
one that starts a new topic; the chunk runs up to it, and the next window starts there. The model
answers with a number (JSON, validated against the window's range), so it chooses positions and
never text: what it writes is never copied, and offsets are exact whatever it answers.

Choices, and why:
- units are the foundation's sentences (LumberChunker uses paragraphs, which in PDFs and chat logs
  can be thousands of tokens; chonkie uses small recursive pieces);
- the window holds sentences up to ``window`` tokens (at least two), and a chunk is capped at
  ``size`` tokens: when the model's chunk would be longer, the cap cuts it at a sentence edge;
- "no shift in this window" (answer 0) takes as many sentences as fit ``size``;
- an answer that is not valid JSON after one repair turn, is out of the window's range (the schema
  lists the valid numbers), or fails (an error, the token budget) falls back to the same size rule
  for that window and is counted in the run summary.
"""
from __future__ import annotations

from dataclasses import dataclass

from chunkctl.chunkers.base import ChunkContext, Chunker, register
from chunkctl.chunkers.groups import capped_spans, fit_prefix
from chunkctl.chunkers.sentence import sentence_bounds
from chunkctl.types import Document

SYSTEM = ("You split documents into chunks that each keep to one topic. You answer with JSON only and "
          "never repeat or rewrite the document.")
QUESTION = (
    "Here are consecutive sentences of a document, numbered from 1 to {m}.\n\n{units}\n\n"
    "Which sentence is the first one whose topic is clearly different from sentence 1? Give its number "
    "(2 to {m}), or 0 if all {m} sentences are about the same topic. "
    'Reply as {{"first_new_topic": <number>}}.'
)


def answer_schema(m: int) -> dict:
    """Only the valid answers (an enum, which llama.cpp turns into a grammar: a small model cannot
    answer 1 or a number past the window)."""
    return {"type": "object", "required": ["first_new_topic"],
            "properties": {"first_new_topic": {"enum": [0] + list(range(2, m + 1))}}}


def shown(s: str) -> str:
    """A sentence as the model sees it: one line, whitespace collapsed (only for display)."""
    return " ".join(s.split())


@register
@dataclass(frozen=True)
class Lumber(Chunker):
    """LumberChunker's way: the LLM reads a window of numbered sentences (about `window` tokens) and
    names the first one where the topic shifts (JSON, validated); the chunk ends before it and the
    next window starts there. `size` caps a chunk; an invalid answer falls back to the cap."""

    name = "lumber"
    window: int = 512
    size: int = 256
    max_tokens: int = 24
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.size < 1 or self.window < 1 or self.max_tokens < 8:
            raise ValueError("lumber: need size >= 1, window >= 1, max_tokens >= 8")

    def request(self, text: str, units: list[tuple[int, int]]):
        from chunkctl.llm import chat

        listing = "\n".join(f"[{k}] {shown(text[s:e])}" for k, (s, e) in enumerate(units, start=1))
        return chat(QUESTION.format(m=len(units), units=listing), system=SYSTEM, schema=answer_schema(len(units)),
                    max_tokens=self.max_tokens)

    def split(self, doc: Document, ctx: ChunkContext):
        text = doc.text
        if not text.strip():
            return []
        bounds = sentence_bounds(text)
        idx = ctx.tokens(text, self.tokenizer)
        n, first, groups = len(bounds), 0, []
        while first < n:
            last = fit_prefix(idx, bounds, first, n, self.window)
            if last == first + 1 and first + 1 < n:
                last = first + 2  # a question needs two sentences to compare
            capped = fit_prefix(idx, bounds, first, last, self.size)
            if capped == first + 1:  # one sentence fills the cap (or is all there is): nothing to ask
                end = capped
            else:
                answer = self._ask(ctx.llm, text, bounds[first:last])
                end = capped if answer is None else min(first + answer, capped)
            groups.append((first, end, None))
            first = end
        return capped_spans(idx, bounds, groups, self.size)

    def _ask(self, llm, text: str, units) -> int | None:
        """How many sentences the chunk takes by the model's answer, or None to fall back. The
        answer was validated against the window's schema (0 or 2..m), whatever the server is."""
        from chunkctl.llm import LLMError

        try:
            k = llm.complete(self.request(text, units)).data["first_new_topic"]
        except LLMError:
            llm.stats.fallback("lumber: no valid answer")
            return None
        return len(units) if k == 0 else k - 1
