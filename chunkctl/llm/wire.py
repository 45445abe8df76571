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


def completion(resp: Any, model: str, latency_s: float) -> Completion:
    """A Completion from a chat or legacy completion response. The envelope is checked as carefully
    as the content: LLMError for a reply without a usable choice, text that is not a string, or
    log-probs of the wrong shape. ``usage`` is accounting only: a count that is not a number is 0."""
    choices = resp.get("choices") if isinstance(resp, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMError(f"reply has no usable choices: {str(resp)[:200]}")
    choice = choices[0]
    msg = choice.get("message")
    if msg is not None and not isinstance(msg, dict):
        raise LLMError(f"reply's message is a {type(msg).__name__}, not an object")
    text = msg.get("content") if msg is not None else choice.get("text")
    if text is not None and not isinstance(text, str):
        raise LLMError(f"reply's text is a {type(text).__name__}, not a string: {str(text)[:100]}")
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    try:
        logprobs = parse_logprobs(choice.get("logprobs"))
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise LLMError(f"reply's log-probs are malformed: {type(e).__name__}: {e}"[:300]) from None
    name, reason = resp.get("model"), choice.get("finish_reason")
    return Completion(
        text=text or "",
        logprobs=logprobs,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        latency_s=latency_s,
        model=name if isinstance(name, str) and name else model,
        finish_reason=reason if isinstance(reason, str) else "",
    )


def _count(v: Any) -> int:
    """A token count: a non-negative integer (or an integral float or digit string), else 0."""
    if isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return max(v, 0)
    if isinstance(v, float) and v.is_integer() and v >= 0:
        return int(v)
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    return 0


def parse_logprobs(lp: Any) -> tuple[TokenLogprob, ...]:
    if not lp:
        return ()
    if not isinstance(lp, dict):
        raise TypeError(f"logprobs is a {type(lp).__name__}")
    if lp.get("content") is not None:  # chat shape (and llama.cpp's legacy completions)
        out, pos = [], 0
        for t in lp["content"]:
            tok = _token(t["token"])
            top = tuple((_token(a["token"]), float(a["logprob"])) for a in t.get("top_logprobs") or ())
            out.append(TokenLogprob(tok, _num(t.get("logprob")), pos, top))
            pos += len(tok)
        return tuple(out)
    tokens = [_token(t) for t in lp.get("tokens") or []]
    values = lp.get("token_logprobs") or [None] * len(tokens)
    tops = lp.get("top_logprobs") or [None] * len(tokens)
    offsets = lp.get("text_offset") or _running_offsets(tokens)
    return tuple(
        TokenLogprob(tok, _num(v), int(off),
                     tuple(sorted(((_token(a), float(b)) for a, b in (top or {}).items()), key=lambda x: -x[1])))
        for tok, v, top, off in zip(tokens, values, tops, offsets))


def _token(t: Any) -> str:
    if not isinstance(t, str):
        raise TypeError(f"a token is a {type(t).__name__}, not a string")
    return t


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
