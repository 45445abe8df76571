"""Concurrency of the LLM helper against a real OpenAI-compatible server: llama.cpp's, started
in-process on 127.0.0.1 with the embedded SmolLM2 and 8 slots (continuous batching). 32 chat
requests at concurrency 1, then 8, then the concurrency-8 run again from the completion cache.

    .venv/bin/python bench/llm_concurrency.py [--requests 32] [--max-tokens 64]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    from chunkctl.llm import LLM, chat
    from chunkctl.llm.cache import CompletionCache
    from chunkctl.llm.local import LocalBackend
    from chunkctl.llm.remote import OpenAIBackend

    server = LocalBackend(cache_dir=Path("~/.cache/chunkctl/models").expanduser(), parallel=8)
    url = server.address()
    topics = ["rivers", "bread", "glaciers", "libraries", "bees", "bridges", "tides", "clocks"]
    reqs = [chat(f"Write two sentences about {topics[i % 8]} (note {i}).", max_tokens=args.max_tokens)
            for i in range(args.requests)]
    print(f"server: llama.cpp (xllamacpp) at {url}, 8 slots, model {server.model_id}")
    print(f"{args.requests} chat requests, max_tokens {args.max_tokens}, temperature 0; {os.cpu_count()} CPU cores\n")
    print(f"{'run':<34}{'seconds':>9}{'tokens':>9}{'tokens/s':>10}{'req/s':>8}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = CompletionCache(Path(tmp) / "c.sqlite")
        for name, conc, use_cache in (("concurrency 1", 1, False), ("concurrency 8", 8, True),
                                      ("concurrency 8, cached re-run", 8, True)):
            llm = LLM(OpenAIBackend(url, None, connections=conc), cache=cache if use_cache else None,
                      concurrency=conc)
            t0 = time.perf_counter()
            outs = llm.map(reqs)
            dt = time.perf_counter() - t0
            toks = sum(c.completion_tokens for c in outs)
            rows[name] = (dt, llm.stats)
            print(f"{name:<34}{dt:>9.2f}{toks:>9}{toks / dt:>10.1f}{len(outs) / dt:>8.2f}"
                  f"   calls {llm.stats.calls}, cache hits {llm.stats.cache_hits}")
    one, eight, cached = (rows[k][0] for k in ("concurrency 1", "concurrency 8", "concurrency 8, cached re-run"))
    print(f"\nspeed-up, concurrency 8 over 1: {one / eight:.2f}x   (target >= 4x where the server batches)")
    print(f"cached re-run: {cached * 1000:.0f} ms for {args.requests} requests, 0 model calls "
          f"({one / cached:,.0f}x faster than concurrency 1)")
    st = rows["concurrency 8"][1]
    print(f"latency at concurrency 8: p50 {st.percentile(50):.2f} s, p95 {st.percentile(95):.2f} s")


if __name__ == "__main__":
    main()
