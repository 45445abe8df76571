"""The OpenAI wire format, shared by the HTTP backend and the embedded llama.cpp server (which takes
the same JSON in-process): request payloads out, completions in.

Servers differ in how they return log-probs: chat completions carry ``logprobs.content`` (a list of
``{token, logprob, top_logprobs}``), legacy completions carry ``tokens`` / ``token_logprobs`` /
``top_logprobs`` / ``text_offset``, and llama.cpp answers legacy completions in the chat shape.
``parse_logprobs`` reads all three.
"""
from __future__ import annotations

import math
from typing import Any

from chunkctl.llm.types import Completion, LLMError, Request, TokenLogprob

# OpenAI caps top_logprobs at 20; vLLM and llama.cpp accept more, but 20 is what all of them take.
MAX_TOP = 20


def payload(req: Request, model: str, native_schema: bool) -> tuple[str, dict[str, Any]]:
    """(endpoint, JSON body) of a generation request."""
    body: dict[str, Any] = {"model": model, "max_tokens": req.max_tokens, "temperature": req.temperature,
                            "top_p": req.top_p}
    if req.seed is not None:
        body["seed"] = req.seed
    if req.stop:
        body["stop"] = list(req.stop)
    if req.schema is not None and native_schema:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "answer", "schema": req.schema, "strict": True}}
    k = min(req.top_logprobs, MAX_TOP)
    if req.messages:
        body["messages"] = [{"role": m.role, "content": m.content} for m in req.messages]
        if k:
            body["logprobs"], body["top_logprobs"] = True, k
        return "/chat/completions", body
    body["prompt"] = req.prompt
    if k:
        body["logprobs"] = k
    return "/completions", body


def completion(resp: dict[str, Any], model: str, latency_s: float) -> Completion:
    """A Completion from a chat or legacy completion response; LLMError if it has no choice."""
    try:
        choice = resp["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"reply has no choices: {str(resp)[:200]}") from None
    msg = choice.get("message")
    text = (msg or {}).get("content") if msg is not None else choice.get("text")
    usage = resp.get("usage") or {}
    return Completion(
        text=text or "",
        logprobs=parse_logprobs(choice.get("logprobs")),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_s=latency_s,
        model=resp.get("model") or model,
        finish_reason=choice.get("finish_reason") or "",
    )


def parse_logprobs(lp: dict[str, Any] | None) -> tuple[TokenLogprob, ...]:
    if not lp:
        return ()
    if lp.get("content") is not None:  # chat shape (and llama.cpp's legacy completions)
        out, pos = [], 0
        for t in lp["content"]:
            top = tuple((a["token"], float(a["logprob"])) for a in t.get("top_logprobs") or ())
            out.append(TokenLogprob(t["token"], _num(t.get("logprob")), pos, top))
            pos += len(t["token"])
        return tuple(out)
    tokens = lp.get("tokens") or []
    values = lp.get("token_logprobs") or [None] * len(tokens)
    tops = lp.get("top_logprobs") or [None] * len(tokens)
    offsets = lp.get("text_offset") or _running_offsets(tokens)
    return tuple(
        TokenLogprob(tok, _num(v), int(off),
                     tuple(sorted(((a, float(b)) for a, b in (top or {}).items()), key=lambda x: -x[1])))
        for tok, v, top, off in zip(tokens, values, tops, offsets))


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _running_offsets(tokens: list[str]) -> list[int]:
    out, pos = [], 0
    for t in tokens:
        out.append(pos)
        pos += len(t)
    return out


def pick_candidates(alternatives: tuple[tuple[str, float], ...], candidates: tuple[str, ...]) -> dict[str, float | None]:
    """Each candidate's log-prob among a server's top alternatives for the next token: an exact token
    match, else one equal up to surrounding white space (" 1" for "1"); None when it is not there."""
    out: dict[str, float | None] = {}
    for cand in candidates:
        exact = [lp for tok, lp in alternatives if tok == cand]
        loose = [lp for tok, lp in alternatives if tok.strip() == cand.strip()]
        out[cand] = max(exact or loose) if (exact or loose) else None
    return out
