"""The ``openai`` backend: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, LM Studio,
OpenAI) over ``/v1/chat/completions`` and ``/v1/completions``.

Transient failures (429, 5xx, timeouts, refused or dropped connections, a truncated or non-JSON
body) are retried with exponential backoff and full jitter, honouring ``Retry-After`` up to
``max_wait``; any other 4xx fails at once. The final error names the server, the model and the last
cause. Bounds that a misbehaving server cannot stretch: each attempt ends ``timeout`` seconds after
it starts however slowly the bytes trickle in (the body is read in pieces against a deadline), the
whole request (attempts and waits) ends after ``deadline`` seconds, and a reply larger than
``max_reply_bytes`` is dropped unread. Error messages never carry the API key or URL credentials.

Scoring uses prompt log-probs (``echo`` + ``logprobs`` on ``/v1/completions``, as vLLM returns
them). A server that cannot echo them is found out on the first scoring request; from then on
scoring goes to the ``fallback`` scorer (the local model), and each completion says which model
scored in ``scored_by``.
"""
from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from dataclasses import replace
from typing import Any, Callable
from urllib.parse import urlsplit

from chunkctl.llm import wire
from chunkctl.llm.jsonout import with_instruction
from chunkctl.llm.types import Backend, Completion, LLMError, Request
from chunkctl.redact import redact, redact_url

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
DEFAULT_CONTEXT = 4096
MAX_REPLY_BYTES = 16 << 20  # a top-20 log-prob reply for 1,000 tokens is about 1.5 MB


class ClientError(LLMError):
    """A 4xx other than 429: the request itself is wrong; retrying cannot help."""

    def __init__(self, message: str, status: int, body: str):
        super().__init__(message)
        self.status, self.body = status, body


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, retries: int = 4, backoff: float = 0.5, max_wait: float = 30.0,
                 connections: int = 8, fallback: Callable[[], Backend] | None = None, deadline: float | None = None,
                 max_reply_bytes: int = MAX_REPLY_BYTES):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.where = redact_url(self.base_url)  # what messages and stats may show
        self._secrets = [x for x in (api_key, urlsplit(self.base_url).password) if x]
        self._model = model
        self.timeout, self.retries, self.backoff, self.max_wait = timeout, retries, backoff, max_wait
        self.deadline = deadline if deadline is not None else 2.5 * timeout
        self.max_reply_bytes = max_reply_bytes
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, timeout=timeout,
                                  limits=httpx.Limits(max_connections=max(connections, 1)))
        self._fallback_factory = fallback
        self._fallback: Backend | None = None
        self._lock = threading.Lock()
        self.native_schema: bool | None = None  # learned: does the server take response_format?
        self.echo_scoring: bool | None = None  # learned: does it return prompt log-probs?
        self._context_length: int | None = None

    @property
    def model_id(self) -> str:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self.models()[0]
        return self._model

    @property
    def context_length(self) -> int:
        """The model's context from GET /models: vLLM's ``max_model_len``, llama.cpp's
        ``meta.n_ctx_train``; 4096 when the server does not say (a safe size for windows)."""
        if self._context_length is None:
            try:
                data = self._request("GET", "/models", None).get("data") or []
            except LLMError:
                data = []
            mine = [m for m in data if m.get("id") == self.model_id] or data[:1]
            info = mine[0] if mine else {}
            found = info.get("max_model_len") or (info.get("meta") or {}).get("n_ctx_train") or info.get("context_length")
            self._context_length = int(found) if found else DEFAULT_CONTEXT
        return self._context_length

    def models(self) -> list[str]:
        """The server's model ids (GET /models); the first is used when no model is named."""
        data = self._request("GET", "/models", None).get("data") or []
        ids = [m.get("id") for m in data if m.get("id")]
        if not ids:
            raise LLMError(f"{self.where}: the server lists no models; name one with --llm-model")
        return ids

    def close(self) -> None:
        self._http.close()

    # -- the protocol ------------------------------------------------------------------------
    def complete(self, req: Request) -> Completion:
        if req.kind == "score":
            return self._score(req)
        if req.kind == "candidates":
            return self._candidates(req)
        return self._generate(req)

    def _generate(self, req: Request) -> Completion:
        native = req.schema is not None and self.native_schema is not False
        sent = req if native or req.schema is None else with_instruction(req)
        path, body = wire.payload(sent, self.model_id, native)
        t0 = time.perf_counter()
        try:
            resp = self._request("POST", path, body)
        except ClientError as e:
            if not (native and _mentions_schema(e.body)):
                raise
            self.native_schema = False  # this server cannot enforce a schema: say it in the prompt
            return self._generate(req)
        if native:
            self.native_schema = True
        return wire.completion(resp, self.model_id, time.perf_counter() - t0)

    def _score(self, req: Request) -> Completion:
        if self.echo_scoring is False:
            return self._fallback_score(req)
        context = req.prompt or ""
        body = {"model": self.model_id, "prompt": context + req.score, "max_tokens": 1, "temperature": 0.0,
                "echo": True, "logprobs": 1}
        t0 = time.perf_counter()
        resp = self._request("POST", "/completions", body)
        comp = wire.completion(resp, self.model_id, time.perf_counter() - t0)
        lo, hi = len(context), len(context) + len(req.score)
        scored = tuple(replace(t, start=t.start - lo, top=()) for t in comp.logprobs if lo <= t.start < hi)
        if not scored or any(t.logprob is None for t in scored):
            self.echo_scoring = False
            return self._fallback_score(req)
        self.echo_scoring = True
        return replace(comp, text="", logprobs=scored, completion_tokens=0, finish_reason="scored",
                       scored_by=self.model_id)

    def _fallback_score(self, req: Request) -> Completion:
        if self._fallback_factory is None:
            raise LLMError(f"{self.where} ({self.model_id}) returns no prompt log-probs, and no local "
                           "scorer is configured")
        with self._lock:
            if self._fallback is None:
                self._fallback = self._fallback_factory()
        comp = self._fallback.complete(req)
        return replace(comp, scored_by=comp.scored_by or self._fallback.model_id)

    def _candidates(self, req: Request) -> Completion:
        """From the top alternatives of one generated token (the server's full vocabulary is not
        reachable over HTTP): a candidate outside the top 20 comes back as None."""
        path, body = wire.payload(replace(req, candidates=(), max_tokens=1, temperature=0.0,
                                          top_logprobs=wire.MAX_TOP), self.model_id, False)
        t0 = time.perf_counter()
        comp = wire.completion(self._request("POST", path, body), self.model_id, time.perf_counter() - t0)
        if not comp.logprobs:
            raise LLMError(f"{self.where} ({self.model_id}) returned no log-probs for the next token")
        return replace(comp, candidates=wire.pick_candidates(comp.logprobs[0].top, req.candidates))

    # -- HTTP with retries ---------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        import httpx

        url = self.base_url + path
        cause = ""
        end = time.monotonic() + self.deadline
        for attempt in range(self.retries + 1):
            wait = None
            left = end - time.monotonic()
            if left <= 0:
                cause = f"{cause}; the request's deadline ({self.deadline:g} s) passed" if cause else "deadline passed"
                break
            try:
                status, text, retry_after = self._fetch(method, url, body, min(self.timeout, left))
            except _TooSlow as e:
                cause = str(e)
            except httpx.TimeoutException:
                cause = f"no reply within {min(self.timeout, left):g} s"
            except httpx.TransportError as e:  # refused, reset, or a body cut short
                cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if status in RETRY_STATUS:
                    cause = f"HTTP {status}: {self._excerpt(text)}"
                    wait = _retry_after(retry_after)
                elif status >= 400:
                    raise ClientError(f"{self.where}{path}: HTTP {status}: {self._excerpt(text)}", status,
                                      redact(text, self._secrets))
                else:
                    try:
                        value = json.loads(text)
                    except ValueError:
                        cause = f"reply is not JSON: {self._excerpt(text)!r}"
                    else:
                        if isinstance(value, dict):
                            return value
                        raise LLMError(f"{self.where}{path}: the reply is JSON but not an object: "
                                       f"{self._excerpt(text)!r}")
            if attempt < self.retries:
                pause = min(self.max_wait, wait if wait is not None else self._backoff(attempt))
                if pause >= end - time.monotonic():
                    cause += f" (waiting {pause:.0f} s more would pass the request's {self.deadline:g} s deadline)"
                    break
                time.sleep(pause)
        model = f" ({self._model})" if self._model else ""
        raise LLMError(f"{self.where}{model}: gave up after {attempt + 1} attempt(s): {cause}")

    def _fetch(self, method: str, url: str, body: dict[str, Any] | None, limit: float) -> tuple[int, str, str | None]:
        """(status, body text, Retry-After) of one attempt, read against a wall-clock deadline of
        ``limit`` seconds and the reply size cap."""
        import httpx

        stop = time.monotonic() + limit
        timeout = httpx.Timeout(limit)
        with self._http.stream(method, url, json=body, timeout=timeout) as r:
            declared = r.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_reply_bytes:
                raise LLMError(f"{self.where}: the reply is {int(declared) >> 20} MB, more than the "
                               f"{self.max_reply_bytes >> 20} MB a reply may be; not read")
            parts, size = [], 0
            for piece in r.iter_bytes():  # decoded: a gzip bomb counts at its real size
                size += len(piece)
                if size > self.max_reply_bytes:
                    raise LLMError(f"{self.where}: the reply passed {self.max_reply_bytes >> 20} MB, the most a "
                                   "reply may be; stopped reading")
                parts.append(piece)
                if time.monotonic() > stop:
                    raise _TooSlow(f"the reply was still arriving after {limit:g} s (a server trickling bytes)")
            text = b"".join(parts).decode(r.encoding or "utf-8", errors="replace")
            return r.status_code, text, r.headers.get("retry-after")

    def _excerpt(self, text: str, n: int = 200) -> str:
        return redact(" ".join(text[:4 * n].split())[:n], self._secrets)

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, self.backoff * 2 ** attempt)  # full jitter


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _mentions_schema(body: str) -> bool:
    low = body.lower()
    return "response_format" in low or "json_schema" in low


class _TooSlow(LLMError):
    """One attempt passed its wall-clock limit while the body was still arriving."""
