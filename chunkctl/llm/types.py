"""The one LLM protocol: ``complete(Request) -> Completion``.

A request asks for one of three things:

- **generation** from ``messages`` (chat) or a raw ``prompt``, optionally constrained to a JSON
  ``schema`` (the parsed value comes back in ``Completion.data``) and with ``top_logprobs``
  alternatives per generated token;
- **scoring** (``score``): the log-probability of each token of a given text conditioned on
  ``prompt`` as context; nothing is generated (perplexity chunking, ChunkScore, MoM completeness);
- **next-token candidates** (``candidates``): the log-probability that the token after ``prompt``
  is each candidate's first token, over the full vocabulary (margin sampling, MoM clarity).

Everything here is plain data, so a request has one canonical JSON form: the cache key.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class Request:
    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    top_logprobs: int = 0
    score: str | None = None
    candidates: tuple[str, ...] = ()

    def __post_init__(self):
        if bool(self.messages) == (self.prompt is not None):
            raise ValueError("a request needs messages or a prompt (one of them)")
        if (self.score is not None or self.candidates) and self.messages:
            raise ValueError("scoring and candidates condition on a raw prompt, not messages")
        if self.score is not None and self.candidates:
            raise ValueError("ask for scoring or for candidates, not both in one request")
        if self.score == "":
            raise ValueError("nothing to score: the text is empty")

    @property
    def kind(self) -> str:
        return "score" if self.score is not None else "candidates" if self.candidates else "generate"

    def canonical(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chat(user: str, system: str | None = None, **kw) -> Request:
    """A chat request from a user message (and an optional system message)."""
    msgs = ((Message("system", system),) if system else ()) + (Message("user", user),)
    return Request(messages=msgs, **kw)


@dataclass(frozen=True)
class TokenLogprob:
    """One token with its log-probability (natural log) and, for generated tokens, the top
    alternatives at that position. ``start`` is its character offset in the text it belongs to
    (the generated text, or the scored text)."""

    token: str
    logprob: float | None
    start: int = 0
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str = ""
    data: Any = None  # the parsed JSON value when the request had a schema
    logprobs: tuple[TokenLogprob, ...] = ()  # generated tokens, or the scored text's tokens
    candidates: dict[str, float | None] = field(default_factory=dict)  # None: not among the top
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    model: str = ""
    finish_reason: str = ""
    scored_by: str = ""  # which model produced the log-probs, when it is not ``model``
    cached: bool = False
    repaired: bool = False  # the JSON came from the one repair retry

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> "Completion":
        d = json.loads(raw)
        d["logprobs"] = tuple(
            TokenLogprob(t["token"], t["logprob"], t["start"], tuple(tuple(x) for x in t["top"]))
            for t in d["logprobs"])
        return cls(**d)


class LLMError(Exception):
    """An LLM call that failed for good (after retries): the message names the server and cause."""


class SchemaError(LLMError):
    """The reply was not valid JSON for the requested schema, even after the repair retry."""


class BudgetExhausted(LLMError):
    """``--llm-max-tokens-total`` was reached; the request was not sent."""


class Backend(Protocol):
    name: str  # local | openai
    model_id: str  # what the cache key and the summaries name
    where: str  # the server's URL or the model's file, for messages

    def complete(self, req: Request) -> Completion: ...


def cache_key(backend: str, model_id: str, req: Request) -> str:
    return hashlib.sha256(f"{backend}\0{model_id}\0{req.canonical()}".encode()).hexdigest()
