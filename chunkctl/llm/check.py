"""``chunkctl llm check``: is the configured model reachable, and which of the LLM layer's features
work with it? Every probe is a live call (the cache is bypassed) and each one reports on its own,
so one missing feature does not hide the others."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from chunkctl.llm.client import LLM
from chunkctl.llm.types import Backend, LLMError, Request, chat

YES_NO = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
          "required": ["answer"], "additionalProperties": False}


SCORED = (" Retrieval systems split long documents into chunks before they embed them. A chunk that is"
          " too small loses the context a reader needs, and one that is too large mixes several topics,"
          " so its vector sits between them and matches none of them well. Good boundaries follow the"
          " structure of the text: sections, paragraphs, and the places where the subject changes."
          " Measuring which boundaries work needs questions whose answers are known spans of the text.")


@dataclass
class Probe:
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


def check(backend: Backend) -> list[Probe]:
    from chunkctl import progress

    llm = LLM(backend)  # no cache: a check measures the model, not the cache
    steps = [("generation", _generate), ("log-probs", _logprobs), ("JSON schema", _json), ("scoring", _score),
             ("next-token candidates", _candidates)]
    probes: list[Probe] = []
    with progress.step("llm check", len(steps)) as step:
        for name, fn in steps:
            step.advance(0, name)
            probes.append(_run(name, lambda: fn(llm)))
            step.advance()
            if not probes[0].ok:
                break  # unreachable: the other probes would fail the same way
    return probes


def _run(name: str, fn) -> Probe:
    t0 = time.perf_counter()
    try:
        ok, detail = True, fn()
    except LLMError as e:
        ok, detail = False, str(e)
    return Probe(name, ok, detail, time.perf_counter() - t0)


def _generate(llm: LLM) -> str:
    c = llm.complete(chat("In one short sentence, what is a document chunk?", max_tokens=32))
    rate = c.completion_tokens / c.latency_s if c.latency_s else 0.0
    line = " ".join(c.text.split())
    return f"{line!r} ({c.completion_tokens} tokens, {rate:.0f} tokens/s)"


def _logprobs(llm: LLM) -> str:
    c = llm.complete(chat("Name a colour.", max_tokens=4, top_logprobs=3))
    if not c.logprobs or c.logprobs[0].logprob is None:
        raise LLMError("the server returned no log-probs for generated tokens")
    t = c.logprobs[0]
    alts = ", ".join(f"{tok!r} {lp:.2f}" for tok, lp in t.top)
    return f"first token {t.token!r} {t.logprob:.2f}; alternatives {alts or 'none'}"


def _json(llm: LLM) -> str:
    c = llm.complete(chat("Is water wet? Answer yes or no.", schema=YES_NO, max_tokens=32))
    return f"{c.data}{' (after a repair retry)' if c.repaired else ''}"


def _score(llm: LLM) -> str:
    c = llm.complete(Request(prompt="A note on chunking.", score=SCORED))
    vals = [t.logprob for t in c.logprobs if t.logprob is not None]
    if not vals:
        raise LLMError("no token of the text was scored")
    rate = c.prompt_tokens / c.latency_s if c.latency_s else 0.0
    by = f" by {c.scored_by}" if c.scored_by and c.scored_by != llm.model_id else ""
    return (f"{len(vals)} tokens scored{by}, perplexity {math.exp(-sum(vals) / len(vals)):.1f} "
            f"({rate:.0f} tokens/s)")


def _candidates(llm: LLM) -> str:
    c = llm.complete(Request(prompt="Question: is the sky blue? Answer yes or no.\nAnswer:",
                             candidates=(" yes", " no")))
    return ", ".join(f"{k!r} {'outside the top 20' if v is None else f'{v:.2f}'}" for k, v in c.candidates.items())
