"""``margin``: Meta-Chunking's margin-sampling chunking (Zhao et al., arXiv 2410.12788; spec §3.3).

For each next sentence the model is asked whether the current chunk and that sentence belong
together: option 1 splits, option 2 keeps. The margin Δ = P(2) − P(1) comes from the next-token
probabilities of the two option tokens (one forward pass, nothing generated); the sentence joins the
chunk when Δ > θ, where θ starts at 0 and becomes the mean of the last five margins once five exist.
The model only answers 1 or 2 about source spans, so offsets are exact whatever it returns.

Where chunkctl departs from the reference code, and why:
- the prompt is chunkctl's own wording; it quotes the source text as it is (the code re-joins
  sentences with spaces, which drops paragraph breaks) and shows the two parts once each (the code
  also repeats them joined: a third of the prompt, for the same question);
- ``size`` caps a chunk in tokens: a sentence that would overflow it starts a new chunk whatever
  the model says (no margin is recorded), a sentence longer than ``size`` is cut at words;
- ``context=pair`` asks about the previous sentence only (the repo's "prob_onlytwo" variant): the
  questions no longer depend on earlier answers, so they run in parallel and prompts stay short;
  the default ``chunk`` asks about the whole current chunk, one question at a time, as the paper;
- an unanswered question (an error, the token budget) keeps the sentence in its chunk (the size cap
  still applies), records no margin, and is counted as a fallback in the run summary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from chunkctl.chunkers.base import ChunkContext, Chunker, register
from chunkctl.chunkers.groups import capped_spans
from chunkctl.chunkers.sentence import sentence_bounds
from chunkctl.types import Document

OPTIONS = ("1", "2")  # split, keep

QUESTION = (
    "You segment documents into self-contained chunks for search. Below are a passage (A) and the "
    "sentence that follows it in the document (B).\n\n"
    "A: \"{a}\"\n\nB: \"{b}\"\n\n"
    "Either:\n1. split: B starts something new, so A and B go into separate chunks;\n"
    "2. keep: B continues A, so they stay one chunk.\n"
    "Answer with 1 or 2 only."
)
TEMPLATES = {  # how the question is wrapped for a raw next-token prompt
    "chatml": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n",
    "plain": "{q}\nAnswer: ",
}


def boundary_request(a: str, b: str, template: str = "chatml"):
    """Next-token candidates "1" (split) and "2" (keep) after the question about passage a and the
    text b that follows it (also MoM's boundary clarity)."""
    from chunkctl.llm import Request

    q = QUESTION.format(a=a.strip(), b=b.strip())
    return Request(prompt=TEMPLATES[template].format(q=q), candidates=OPTIONS)


@dataclass
class AdaptiveThreshold:
    """The code's rule: keep when Δ > θ; θ = 0 until ``window`` margins exist, then their mean over
    the last ``window`` (updated after each decision)."""

    window: int = 5
    theta: float = 0.0
    history: list[float] = field(default_factory=list)

    def keep(self, delta: float) -> bool:
        keep = delta > self.theta
        self.history.append(delta)
        if len(self.history) >= self.window:
            self.theta = sum(self.history[-self.window:]) / self.window
        return keep


def margin_of(candidates: dict) -> float:
    """P(keep) − P(split) from the candidates' log-probs (an option missing from a server's top
    alternatives has probability ~0)."""
    p = {k: math.exp(v) if v is not None else 0.0 for k, v in candidates.items()}
    return p.get(OPTIONS[1], 0.0) - p.get(OPTIONS[0], 0.0)


@register
@dataclass(frozen=True)
class Margin(Chunker):
    """Meta-Chunking's margin sampling: for each next sentence the LLM weighs split (1) against keep
    (2) from next-token probabilities; the sentence joins the chunk when P(2) − P(1) exceeds the mean
    of the last `window` margins (0 at first). `context=pair` asks about the previous sentence only,
    in parallel; `target` merges neighbours up to that many tokens; `size` caps a chunk."""

    name = "margin"
    context: Literal["chunk", "pair"] = "chunk"
    window: int = 5
    target: int = 0
    size: int = 256
    template: Literal["chatml", "plain"] = "chatml"
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.size < 1 or self.window < 1 or self.target < 0:
            raise ValueError("margin: need size >= 1, window >= 1, target >= 0")

    def request(self, text: str, a: tuple[int, int], b: tuple[int, int]):
        return boundary_request(text[a[0]:a[1]], text[b[0]:b[1]], self.template)

    def split(self, doc: Document, ctx: ChunkContext):
        from chunkctl.llm import LLMError

        text = doc.text
        if not text.strip():
            return []
        bounds = sentence_bounds(text)
        idx = ctx.tokens(text, self.tokenizer)
        llm = ctx.llm
        answers = {}
        if self.context == "pair":  # every question is known up front: ask them all at once
            asks = list(range(1, len(bounds)))
            outs = llm.map([self.request(text, bounds[i - 1], bounds[i]) for i in asks], errors="return")
            answers = dict(zip(asks, outs))
        rule = AdaptiveThreshold(self.window)
        groups, first = [], 0
        for i in range(1, len(bounds)):
            if idx.count(bounds[first][0], bounds[i][1]) > self.size:
                groups.append((first, i, None))  # the cap decides; no margin is recorded
                first = i
                continue
            if self.context == "pair":
                out = answers[i]
            else:
                try:
                    out = llm.complete(self.request(text, (bounds[first][0], bounds[i - 1][1]), bounds[i]))
                except LLMError as err:
                    out = err
            if isinstance(out, LLMError):
                llm.stats.fallback("margin: question not answered")
                continue  # keep: the size cap bounds the chunk
            if not rule.keep(margin_of(out.candidates)):
                groups.append((first, i, None))
                first = i
        groups.append((first, len(bounds), None))
        return capped_spans(idx, bounds, groups, self.size, self.target)
