"""``ppl``: Meta-Chunking's perplexity chunking (Zhao et al., arXiv 2410.12788; spec §3.2).

Each sentence's score is the mean negative log-likelihood of its tokens given all the text before
it (within ``context`` characters), from the LLM layer's scorer; a sentence whose score is a local
minimum by the code's rule ends its chunk. The model only scores: boundaries are sentence edges of
the source, so offsets are exact whatever it returns.

Where chunkctl departs from the reference code, and why:
- the text is scored in windows of whole sentences (``stride`` characters) with the preceding
  ``context`` characters as context — one cached request per window, windows in parallel — instead
  of one KV-cached pass; a token belongs to the sentence its first character is in;
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

from chunkctl.chunkers.base import ChunkContext, Chunker, Span, register
from chunkctl.chunkers.pieces import merge, split_span, trim
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
    context: int = 8000
    tokenizer: str = "minilm"

    def __post_init__(self):
        if self.size < 1 or self.stride < 1 or self.context < 0 or self.target < 0:
            raise ValueError("ppl: need size >= 1, stride >= 1, context >= 0, target >= 0")

    def split(self, doc: Document, ctx: ChunkContext):
        from chunkctl.llm import LLMError, Request

        text = doc.text
        if not text.strip():
            return []
        bounds = sentence_bounds(text)
        runs = windows(bounds, self.stride)
        reqs = [Request(prompt=text[max(0, bounds[a][0] - self.context):bounds[a][0]],
                        score=text[bounds[a][0]:bounds[b - 1][1]]) for a, b in runs]
        tokens, unscored = [], set()
        for (a, b), out in zip(runs, ctx.llm.map(reqs, errors="return")):
            if isinstance(out, LLMError):
                unscored.update(range(a, b))
                continue
            base = bounds[a][0]
            tokens += [(base + t.start, -t.logprob) for t in out.logprobs if t.logprob is not None]
        scores = sentence_scores(tokens, [s for s, _ in bounds])
        scores = [None if i in unscored else v for i, v in enumerate(scores)]
        cuts = find_minima(scores, self.threshold, self.rule, self.dynamic)
        groups = [(a, b) for a, b in zip([0] + [c + 1 for c in cuts], [c + 1 for c in cuts] + [len(bounds)]) if b > a]
        idx = ctx.tokens(text, self.tokenizer)
        spans = [(bounds[a][0], bounds[b - 1][1], any(i in unscored for i in range(a, b))) for a, b in groups]
        if self.target:
            spans = _merge_to_target(idx, spans, self.target)
        out: list[Span] = []
        for s, e, flag in spans:
            meta = {"ppl_unscored": True} if flag else None
            a, z = trim(text, s, e)
            if z <= a:
                continue
            n = idx.count(a, z)
            if n <= self.size:
                out.append(Span(a, z, n, meta))
                continue
            pieces = [p for ss, se in bounds if s <= ss and se <= e for p in split_span(idx, ss, se, self.size, (" ", ""))]
            out += [sp._replace(metadata=meta) for sp in merge(idx, pieces, self.size)]
        return out


def _merge_to_target(idx, spans, target: int):
    """The code's dynamic merging: append the next chunk while the joined chunk stays within
    ``target`` tokens, else start a new one."""
    out = []
    for s, e, flag in spans:
        if out and idx.count(out[-1][0], e) <= target:
            out[-1] = (out[-1][0], e, out[-1][2] or flag)
        else:
            out.append((s, e, flag))
    return out
