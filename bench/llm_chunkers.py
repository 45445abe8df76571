"""The LLM-guided chunkers on Chroma's benchmark, beside recursive 200/0 and cluster: recall, IoU
and precision-Ω at k = 5 (MiniLM int8, chunks by their true offsets), ChunkScore (QChunker's
λ·LI + (1−λ)·SD, LI scored by the same local model), chunking time, and model tokens per input
token, with the embedded SmolLM2-135M on this CPU.

    .venv/bin/python bench/llm_chunkers.py [--corpora chatlogs state_of_the_union] [--only SPEC ...]

A 135M model on two cores scores ~200 tokens/s, so the default is two of the five corpora (89k
characters, 132 questions); ChunkScore is computed on state_of_the_union only (it scores every
chunk twice). The store and the LLM cache live in .benchdata/: a re-run makes no model calls.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMA = ROOT.parent / "shared" / "bench-data" / "chroma"
STRATEGIES = ["recursive-lc:size=200", "cluster:size=200", "ppl", "margin:context=pair", "lumber", "idc",
              "adaptive",
              # the same model answers (from the cache), merged to the baseline's mean size: recall at a
              # fixed k grows with chunk size, so small chunks must be compared at equal size too
              "ppl:target=175", "margin:context=pair,target=175"]
CHUNKSCORE_CORPUS = "state_of_the_union"


def subset(qa, names):
    keep = [q for q in qa.questions if Path(q.refs[0].doc).stem in names]
    return dataclasses.replace(qa, questions=keep)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", nargs="*", default=["chatlogs", "state_of_the_union"])
    ap.add_argument("--only", nargs="*", help="Run only these specs.")
    ap.add_argument("--db", default=str(ROOT / ".benchdata" / "llm_chunkers.duckdb"))
    args = ap.parse_args()

    from chunkctl.chunkers import parse_spec
    from chunkctl.embed import get_embedder
    from chunkctl.evaluation.qa import load_qa
    from chunkctl.evaluation.run import EvalOptions, evaluate
    from chunkctl.llm import LLMSettings, open_llm
    from chunkctl.retrieval import PLAIN, Retrieval
    from chunkctl.store import Store

    vector = Retrieval(mode="vector", **PLAIN)  # the retrieval its documented results used

    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    settings = LLMSettings(cache=str(Path(args.db).with_suffix(".llm-cache.sqlite")))
    llm = open_llm(settings)
    files = [str(CHROMA / "corpora" / f"{c}.md") for c in args.corpora]
    qa_all = load_qa(CHROMA / "questions_df.csv")
    qa, qa_cs = subset(qa_all, set(args.corpora)), subset(qa_all, {CHUNKSCORE_CORPUS})
    tok = llm.backend.hf().tok  # the model's own tokenizer: tokens per input token
    input_tokens = sum(len(tok(Path(f).read_text(), add_special_tokens=False).input_ids) for f in files)
    emb = get_embedder("minilm", "auto")
    rows = []
    with Store(args.db) as store:
        for spec in STRATEGIES:
            if args.only and spec not in args.only:
                continue
            ch = parse_spec(spec)
            t0 = time.perf_counter()
            rep = evaluate(store, qa, EvalOptions([ch], ks=[5], embedder=emb, llm_settings=settings, retrieval=vector),
                           corpus=files)
            r = rep.strategies[0]
            cs = evaluate(store, qa_cs, EvalOptions([ch], ks=[5], embedder=emb, llm=llm, llm_settings=settings,
                                                    retrieval=vector),
                          corpus=[str(CHROMA / "corpora" / f"{CHUNKSCORE_CORPUS}.md")]).strategies[0].chunk_stats
            rows.append((spec, r, cs, time.perf_counter() - t0))
            print(f"  done {spec} in {rows[-1][3]:.0f} s"
                  + (f" (LLM: {r.llm.line()})" if r.llm is not None else ""), flush=True)

    print(f"\nChroma benchmark, corpora {', '.join(args.corpora)} ({len(qa.questions)} questions, {input_tokens:,} "
          f"model tokens); {emb.model_id}, k = 5, by true offsets, ×100; LLM {llm.model_id} on this CPU; "
          f"ChunkScore on {CHUNKSCORE_CORPUS}\n")
    head = (f"{'strategy':<32}{'chunks':>7}{'tok':>5}{'recall':>8}{'IoU':>6}{'PΩ':>6}{'ChunkScore':>11}{'LI':>6}"
            f"{'SD':>7}{'chunk s':>9}{'LLM tok/in':>11}{'fallbacks':>10}")
    print(head)
    print("-" * len(head))
    for spec, r, cs, _ in rows:
        row = r.rows[0]
        used = r.chunk_stats.get("llm_tokens")
        ratio = f"{used / input_tokens:.2f}" if used is not None else "-"
        print(f"{spec:<32}{row['chunks']:>7}{row['tokens_mean']:>5.0f}{100 * row['recall']:>8.1f}"
              f"{100 * row['iou']:>6.1f}{100 * row['precision_omega']:>6.1f}{cs['chunkscore']:>11.3f}"
              f"{cs['chunkscore_li']:>6.2f}{cs['chunkscore_sd']:>7.3f}{r.seconds.get('chunk_store_s', 0):>9.0f}"
              f"{ratio:>11}{r.chunk_stats.get('llm_fallbacks', 0):>10}")
    print("\nchunk s: parse + chunk + store, without embedding; LLM tok/in: prompt + completion tokens of "
          "chunking per input token ('-': no LLM call: a strategy without one, or a re-run of stored chunks).")


if __name__ == "__main__":
    main()
