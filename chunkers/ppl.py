"""``ppl``: Meta-Chunking's perplexity chunking (Zhao et al., arXiv 2410.12788; spec §3.2).

Each sentence's score is the mean negative log-likelihood of its tokens given all the text before
it (within ``context`` characters), from the LLM layer's scorer; a sentence whose score is a local
minimum by the code's rule ends its chunk. The model only scores: boundaries are sentence edges of
the source, so offsets are exact whatever it returns.

Where chunkctl departs from the reference code, and why:
- the text is scored in windows of whole sentences (``stride`` characters) with the preceding
  ``context`` characters re-read as context — one cached request per window, windows in parallel,
  and the same requests work against a server — instead of one KV-cached pass: the price is
  re-reading the context, context/stride = 25% more tokens with the defaults, which the shorter
  forward passes win back on a CPU (bench/ppl_vs_reference.py); a token belongs to the sentence
  its first character is in;
- the first token of the text is predicted from the model's start token (the code gives it none);
- ``size`` caps a chunk in tokens (split at sentence edges, then words): the code has no cap, and a
  chunk the embedding model cannot read whole would be searched by its first part only;
- ``target`` merges neighbouring chunks up to that many tokens (the code counts words or characters);
- a window the LLM could not score (an error, the token budget) has no minima: its sentences fall to
  the size cap, and its chunks say so in ``metadata.ppl_unscored``.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Literal, Sequence

from chunkctl.chunkers.base import ChunkContext, Chunker, register
from chunkctl.chunkers.groups import capped_spans, cuts_to_groups
from chunkctl.chunkers.sentence import sentence_bounds
from chunkctl.types import Document

DYNAMIC_AFTER = 100  # accepted drops before the dynamic threshold takes over (the code's value)


def find_minima(values: Sequence[float | None], threshold: float, rule: str = "or",
                dynamic: bool = False) -> list[int]:
    """Indexes of local minima (never the first or last): ``v[i]`` below both neighbours with a
    drop >= θ on either side (``rule="and"``: both sides), or below the left one and equal to the
    right one with a left drop >= θ (a plateau). ``dynamic``: once 100 minima were accepted, θ
    becomes the smallest drop accepted so far. Unscored sentences (None) are never minima."""
    out, drops = [], []
    theta = threshold
    for i in range(1, len(values) - 1):
        left, mid, right = values[i - 1], values[i], values[i + 1]
        if left is None or mid is None or right is None:
            continue
        dl, dr = left - mid, right - mid
        if mid < left and mid < right:
            ok = (dl >= theta and dr >= theta) if rule == "and" else (dl >= theta or dr >= theta)
            drop = min(dl, dr)
        elif mid < left and mid == right:
            ok, drop = dl >= theta, dl
        else:
            continue
        if ok:
            out.append(i)
            if dynamic:
                drops.append(drop)
                if len(drops) >= DYNAMIC_AFTER:
                    theta = min(drops)
    return out


def sentence_scores(token_nll: Sequence[tuple[int, float]], starts: Sequence[int]) -> list[float | None]:
    """Mean NLL per sentence from (character offset, NLL) of each token; a token belongs to the
    sentence its first character is in."""
    sums, counts = [0.0] * len(starts), [0] * len(starts)
    for pos, nll in token_nll:
        j = max(0, bisect_right(starts, pos) - 1)
        sums[j] += nll
        counts[j] += 1
    return [s / c if c else None for s, c in zip(sums, counts)]


def windows(bounds: Sequence[tuple[int, int]], stride: int) -> list[tuple[int, int]]:
    """Runs of whole sentences of about ``stride`` characters (a longer sentence is a run alone)."""
    out, first = [], 0
    for i in range(1, len(bounds) + 1):
        if i == len(bounds) or bounds[i][1] - bounds[first][0] > stride:
            out.append((first, i))
            first = i
    return out


@register
@dataclass(frozen=True)
class PPL(Chunker):
    """Meta-Chunking's perplexity chunking: sentences scored by the LLM (mean token NLL given the
    text before them), a chunk ends at each local minimum whose drop on either side is at least
    `threshold` nats (`rule=and`: both sides); `dynamic` adapts θ; `target` merges neighbours up to
    that many tokens; `size` caps a chunk. The model (global --llm options) never writes text."""

    name = "ppl"
    threshold: float = 0.0
    rule: Literal["or", "and"] = "or"
    dynamic: bool = False
    target: int = 0
    size: int = 256
    stride: int = 4000
    context: int = 1000
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.size < 1 or self.stride < 1 or self.context < 0 or self.target < 0:
            raise ValueError("ppl: need size >= 1, stride >= 1, context >= 0, target >= 0")

    def scores(self, text: str, bounds, ctx: ChunkContext) -> tuple[list[float | None], set[int]]:
        """Each sentence's mean token NLL (None where unscored) and the sentences left unscored."""
        from chunkctl.llm import LLMError, Request

        runs = windows(bounds, self.stride)
        reqs = [Request(prompt=text[max(0, bounds[a][0] - self.context):bounds[a][0]],
                        score=text[bounds[a][0]:bounds[b - 1][1]]) for a, b in runs]
        tokens, unscored = [], set()
        for (a, b), out in zip(runs, ctx.llm.map(reqs, errors="return")):
            if isinstance(out, LLMError):
                ctx.llm.stats.fallback("ppl: window not scored")
                unscored.update(range(a, b))
                continue
            base = bounds[a][0]
            tokens += [(base + t.start, -t.logprob) for t in out.logprobs if t.logprob is not None]
        scores = sentence_scores(tokens, [s for s, _ in bounds])
        return [None if i in unscored else v for i, v in enumerate(scores)], unscored

    def split(self, doc: Document, ctx: ChunkContext):
        text = doc.text
        if not text.strip():
            return []
        bounds = sentence_bounds(text)
        scores, unscored = self.scores(text, bounds, ctx)
        cuts = find_minima(scores, self.threshold, self.rule, self.dynamic)
        idx = ctx.tokens(text, self.tokenizer)
        groups = [(a, b, {"ppl_unscored": True} if any(i in unscored for i in range(a, b)) else None)
                  for a, b in cuts_to_groups(len(bounds), cuts)]
        return capped_spans(idx, bounds, groups, self.size, self.target)
