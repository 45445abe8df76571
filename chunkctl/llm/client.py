"""The one helper every LLM user goes through: cache, structured-output repair, bounded
concurrency, a token budget and the accounting that run summaries print.

Algorithms build ``Request`` objects and call ``llm.complete`` or ``llm.map``; they never see a
backend, a retry or a cache. ``map`` keeps the order of its requests.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

from chunkctl.llm.cache import CompletionCache
from chunkctl.llm.jsonout import parse_json, repair_request
from chunkctl.llm.types import Backend, BudgetExhausted, Completion, LLMError, Request, SchemaError, cache_key

BACKENDS = ("local", "openai")


@dataclass(frozen=True)
class LLMSettings:
    backend: str = "local"
    model: str | None = None  # local: smollm2 | gemma3-270m | a .gguf | a HF folder; openai: the server's name
    base_url: str | None = None  # openai only
    api_key: str | None = field(default=None, repr=False)  # from the environment only; never stored
    timeout: float = 120.0
    retries: int = 4
    concurrency: int = 8
    max_tokens_total: int | None = None
    cache: str | None = None  # the SQLite file; None: no cache
    cache_read: tuple[str, ...] = ()  # caches only read, after ``cache`` (a Ray task's view of the shared one)
    price: tuple[float, float] | None = None  # USD per million prompt / completion tokens
    model_dir: str = "~/.cache/chunkctl/models"  # converted and assembled local models
    device: str = "auto"  # where the local scorer runs (auto: a GPU when there is one)


@lru_cache(maxsize=4)
def local_backend(model: str | None, model_dir: str, parallel: int, device: str) -> Backend:
    """One embedded model per process and configuration: loading it costs seconds."""
    from chunkctl.llm.local import LocalBackend

    return LocalBackend(model, cache_dir=Path(model_dir).expanduser(), parallel=parallel, device=device)


def make_backend(s: LLMSettings) -> Backend:
    if s.backend == "local":
        return local_backend(s.model, s.model_dir, min(s.concurrency, 8), s.device)
    if s.backend == "openai":
        from chunkctl.llm.remote import OpenAIBackend

        if not s.base_url:
            raise LLMError("--llm openai needs a server: --llm-base-url (or CHUNKCTL_LLM_BASE_URL)")
        return OpenAIBackend(s.base_url, s.model, api_key=s.api_key, timeout=s.timeout, retries=s.retries,
                             connections=s.concurrency,
                             fallback=lambda: local_backend(None, s.model_dir, 1, s.device))
    raise LLMError(f"unknown LLM backend {s.backend!r}; known: {', '.join(BACKENDS)}")


def open_llm(s: LLMSettings) -> "LLM":
    cache = CompletionCache(s.cache, s.cache_read) if s.cache else None
    return LLM(make_backend(s), cache=cache, concurrency=s.concurrency, max_tokens_total=s.max_tokens_total,
               price=s.price)


@dataclass
class LLMStats:
    calls: int = 0  # requests the backend answered (a repair retry is a call)
    cache_hits: int = 0
    errors: int = 0
    undone: int = 0  # requests not sent because the budget was spent
    repairs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    price: tuple[float, float] | None = None
    scored_by: str = ""  # the model that scored, when it is not the backend's (a server without echo)
    fallbacks: Counter = field(default_factory=Counter)  # "chunker: what" -> times a deterministic rule stood in

    def fallback(self, what: str, n: int = 1) -> None:
        """Count a place where an algorithm could not use the model's answer (an error, an invalid or
        out-of-range reply) and fell back to its deterministic rule: the run summary says so."""
        self.fallbacks[what] += n

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def used(self) -> bool:
        return bool(self.calls or self.cache_hits or self.errors or self.undone or self.fallbacks)

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]

    @property
    def cost(self) -> float | None:
        if self.price is None:
            return None
        return (self.prompt_tokens * self.price[0] + self.completion_tokens * self.price[1]) / 1e6

    def as_dict(self) -> dict:
        return {"calls": self.calls, "cache_hits": self.cache_hits, "errors": self.errors, "undone": self.undone,
                "repairs": self.repairs, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "latency_p50_s": self.percentile(50),
                "latency_p95_s": self.percentile(95), "latency_max_s": self.percentile(100), "cost_usd": self.cost,
                "scored_by": self.scored_by or None, "fallbacks": dict(self.fallbacks)}

    def line(self) -> str:
        parts = [f"{self.calls} call(s)", f"{self.cache_hits} from the cache",
                 f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens"]
        if self.latencies:
            parts.append(f"latency p50 {self.percentile(50):.2f} s, p95 {self.percentile(95):.2f} s")
        if self.cost is not None:
            parts.append(f"cost ${self.cost:.4f}")
        if self.repairs:
            parts.append(f"{self.repairs} JSON repair(s)")
        if self.errors:
            parts.append(f"{self.errors} failed")
        if self.undone:
            parts.append(f"{self.undone} not sent: token budget spent")
        if self.fallbacks:
            parts.append("fallbacks: " + "; ".join(f"{k} x{n}" for k, n in sorted(self.fallbacks.items())))
        if self.scored_by:
            parts.append(f"scoring by the local {self.scored_by} (the server returns no prompt log-probs)")
        return ", ".join(parts)


class LLM:
    def __init__(self, backend: Backend, cache: CompletionCache | None = None, concurrency: int = 8,
                 max_tokens_total: int | None = None, price: tuple[float, float] | None = None):
        self.backend, self.cache = backend, cache
        self.concurrency = max(1, concurrency)
        self.max_tokens_total = max_tokens_total
        self.stats = LLMStats(price=price)
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def context_length(self) -> int:
        """Tokens the model reads in one request (windowed algorithms size their windows by it)."""
        return int(getattr(self.backend, "context_length", 4096))

    def complete(self, req: Request) -> Completion:
        key = cache_key(self.backend.name, self.backend.model_id, req) if self.cache else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                with self._lock:
                    self.stats.cache_hits += 1
                    self.stats.errors += isinstance(hit, SchemaError)
                if isinstance(hit, SchemaError):
                    raise hit
                return replace(hit, cached=True)
        try:
            comp = self._generate(req)
        except BudgetExhausted:
            with self._lock:
                self.stats.undone += 1
            raise
        except LLMError as e:
            with self._lock:
                self.stats.errors += 1
            if key is not None and isinstance(e, SchemaError):  # the model's answer, though invalid
                self.cache.put_invalid(key, self.backend.name, self.backend.model_id, req.kind, e)
            raise
        if key is not None:
            self.cache.put(key, self.backend.name, self.backend.model_id, req.kind, comp)
        return comp

    def map(self, reqs: Sequence[Request], errors: Literal["raise", "return"] = "raise") -> list:
        """Completions in request order, ``concurrency`` at a time. With ``errors="return"`` a
        failed request yields its LLMError in place (BudgetExhausted for those not sent)."""
        if not reqs:
            return []
        from chunkctl import progress

        pool = ThreadPoolExecutor(min(self.concurrency, len(reqs)))
        try:
            with progress.step(f"LLM {reqs[0].kind}", len(reqs)) as step:
                futures = [pool.submit(self.complete, r) for r in reqs]
                for f in futures:
                    f.add_done_callback(lambda _: step.advance())
                out = []
                for f in futures:
                    try:
                        out.append(f.result())
                    except LLMError as e:
                        if errors == "raise":
                            raise
                        out.append(e)
                return out
        finally:  # an error or Ctrl-C: requests not yet sent are dropped, none is waited for
            pool.shutdown(wait=False, cancel_futures=True)

    # -- one request: the budget, the call, and the JSON repair retry --------------------------
    def _call(self, req: Request) -> Completion:
        with self._lock:
            if self.max_tokens_total is not None and self.stats.tokens >= self.max_tokens_total:
                raise BudgetExhausted(f"the LLM token budget ({self.max_tokens_total:,}) is spent")
        comp = self.backend.complete(req)
        with self._lock:
            if comp.scored_by and comp.scored_by != self.backend.model_id:
                self.stats.scored_by = comp.scored_by
            self.stats.calls += 1
            self.stats.prompt_tokens += comp.prompt_tokens
            self.stats.completion_tokens += comp.completion_tokens
            self.stats.latencies.append(comp.latency_s)
        return comp

    def _generate(self, req: Request) -> Completion:
        comp = self._call(req)
        if req.schema is None:
            return comp
        try:
            return replace(comp, data=parse_json(comp.text, req.schema))
        except SchemaError as first:
            with self._lock:
                self.stats.repairs += 1
            fixed = self._call(repair_request(req, comp.text, str(first)))
            try:
                data = parse_json(fixed.text, req.schema)
            except SchemaError as again:
                raise SchemaError(f"{self.backend.name} {self.backend.model_id}: {again} "
                                  f"(first reply: {first}; one repair retry made)") from None
            return replace(fixed, data=data, repaired=True, prompt_tokens=comp.prompt_tokens + fixed.prompt_tokens,
                           completion_tokens=comp.completion_tokens + fixed.completion_tokens,
                           latency_s=comp.latency_s + fixed.latency_s)

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close:
            close()
        if self.cache:
            self.cache.close()
