"""Reranking through the LLM layer, pointwise: for each (question, passage) pair the model's
next-token probabilities of " yes" and " no" after a relevance question; the passage's score is
log P(yes) − log P(no). Cached like every LLM request, so a re-run costs no calls.

No cross-encoder reranker ships its weights in a PyPI package (searched: flashrank and the
sentence-transformers rerankers download from the Hugging Face hub at run time), so the LLM layer
is the reranker: the embedded SmolLM2 offline, or a capable model behind any OpenAI-compatible
server (``--llm openai``). A failed request leaves that query's order as it was (counted as a
fallback in the LLM's statistics)."""
from __future__ import annotations

import math
from typing import Sequence

from chunkctl.llm import Request

PROMPT = ("Passage:\n{passage}\n\nQuestion: {question}\n"
          "Does the passage contain the answer to the question? Answer yes or no.\nAnswer:")
OPTIONS = (" yes", " no")
PASSAGE_CHARS = 2000  # a passage longer than this is judged by its beginning (the prompt stays small)


def relevance_request(question: str, passage: str) -> Request:
    return Request(prompt=PROMPT.format(passage=passage[:PASSAGE_CHARS], question=question), candidates=OPTIONS)


def relevance(candidates: dict) -> float:
    """log P(yes) − log P(no); an option missing from the model's top tokens counts as very unlikely."""
    yes, no = (candidates.get(o) for o in OPTIONS)
    return (yes if yes is not None else -30.0) - (no if no is not None else -30.0)


class LLMReranker:
    def __init__(self, llm):
        self.llm = llm

    def rerank(self, queries: Sequence[str], passages: Sequence[Sequence[str]], ranked: Sequence[list],
               depth: int) -> list[list]:
        """Each query's first ``depth`` candidates reordered by relevance (ties keep their order);
        those below ``depth`` follow in their order."""
        reqs = [relevance_request(q, p) for q, ps in zip(queries, passages) for p in ps]
        replies = iter(self.llm.map(reqs, errors="return"))
        out = []
        for q_ranked, ps in zip(ranked, passages):
            got = [next(replies) for _ in ps]
            if any(isinstance(g, Exception) for g in got):
                self.llm.stats.fallback("rerank: no answer")
                out.append(list(q_ranked))
                continue
            scores = [relevance(g.candidates) for g in got]
            order = sorted(range(len(ps)), key=lambda j: (-scores[j], j))
            # P(yes) as the score, so expansion and the cut-off read a share as with fused scores;
            # candidates the reranker did not read follow at 0
            out.append([(q_ranked[j][0], sigmoid(scores[j])) for j in order] + [(p, 0.0) for p, _ in q_ranked[depth:]])
        return out


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))
