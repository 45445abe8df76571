"""QChunker and MoM on Chroma's benchmark, beside recursive 200/0, ppl and cluster: recall, IoU and
precision-Ω at k = 5 (MiniLM int8, true offsets), ChunkScore, model calls and tokens, chunking time,
and the time to chunk again from the LLM cache (a fresh store, the same cache: no model call).

    .venv/bin/python bench/qchunker_mom.py [--corpora state_of_the_union wikitexts] [--chars 8000]

The four agents and the memory sampling make hundreds of calls per document; with the embedded
SmolLM2-135M on two CPU cores that is minutes per thousand words. So the corpus is the first
``--chars`` characters (cut at a paragraph end) of each named Chroma corpus, and the questions are
those whose references lie inside that prefix. Everything lives in .benchdata/qchunker_mom/; a
re-run answers from the LLM cache. With a stronger model behind vLLM (``--llm-base-url``), see
docs/llm-chunkers.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMA = ROOT.parent / "shared" / "bench-data" / "chroma"
OUT = ROOT / ".benchdata" / "qchunker_mom"
# (spec, memory mode); the qchunker variants re-use the same model answers (the cache), and the
# MoM rows the same chunks: only what is embedded or how it is retrieved differs
RUNS = [("recursive:size=200", "none"), ("cluster:size=200", "none"), ("ppl", "none"),
        ("qchunker", "none"), ("qchunker:embed=original", "none"), ("qchunker:embed=question+original", "none"),
        ("mom", "none"), ("mom", "mixed"), ("mom", "per-layer")]


def prefix_corpus(names: list[str], chars: int) -> list[Path]:
    """The first ``chars`` characters of each corpus, ending at a paragraph break."""
    folder = OUT / f"corpus-{chars}"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in names:
        text = (CHROMA / "corpora" / f"{name}.md").read_text()
        cut = text.rfind("\n\n", 0, chars)
        target = folder / f"{name}.md"
        target.write_text(text[:cut if cut > 0 else chars])
        files.append(target)
    return files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", nargs="*", default=["state_of_the_union", "wikitexts"])
    ap.add_argument("--chars", type=int, default=8000)
    ap.add_argument("--only", nargs="*", help="Run only these specs.")
    ap.add_argument("--llm-base-url", help="An OpenAI-compatible server (vLLM) instead of the embedded model.")
    ap.add_argument("--llm-model", help="The server's model name.")
    ap.add_argument("--llm-concurrency", type=int, default=8)
    args = ap.parse_args()

    from chunkctl.chunkers import parse_spec
    from chunkctl.embed import get_embedder
    from chunkctl.evaluation.qa import load_qa
    from chunkctl.evaluation.run import EvalOptions, evaluate
    from chunkctl.retrieval import PLAIN, Retrieval
    from chunkctl.llm import LLMSettings, open_llm
    from chunkctl.store import Store

    files = prefix_corpus(args.corpora, args.chars)
    qa = load_qa(CHROMA / "questions_df.csv")
    qa = dataclasses.replace(qa, questions=[q for q in qa.questions if Path(q.refs[0].doc).stem in args.corpora])
    settings = LLMSettings(cache=str(OUT / "llm-cache.sqlite"), concurrency=args.llm_concurrency,
                           **({"backend": "openai", "base_url": args.llm_base_url, "model": args.llm_model}
                              if args.llm_base_url else {}))
    llm = open_llm(settings)  # ChunkScore's scorer
    tok = llm.backend.hf().tok if hasattr(llm.backend, "hf") else None
    input_tokens = sum(len(tok(f.read_text(), add_special_tokens=False).input_ids) for f in files) if tok else 0
    emb = get_embedder("minilm", "auto")
    tag = f"{args.chars}-{llm.model_id.replace('/', '_')}"
    db, rerun_db = OUT / f"store-{tag}.duckdb", OUT / f"rerun-{tag}.duckdb"
    rows, n_questions = [], 0
    for spec, memory in RUNS:
        if args.only and spec not in args.only:
            continue
        ch = parse_spec(spec)
        opts = EvalOptions([ch], ks=[5], embedder=emb, llm=llm, llm_settings=settings,
                           retrieval=Retrieval(mode="vector", memory=memory, **PLAIN))
        t0 = time.perf_counter()
        with Store(db) as store:
            rep = evaluate(store, qa, opts, corpus=[str(f) for f in files])
        wall = time.perf_counter() - t0
        n_questions = rep.n_questions
        r = rep.strategies[0]
        rerun = None
        if r.llm is not None:  # chunk again into a fresh store: every answer from the cache
            rerun_db.unlink(missing_ok=True)
            t1 = time.perf_counter()
            with Store(rerun_db) as store:
                again = evaluate(store, qa, dataclasses.replace(opts, llm=None), corpus=[str(f) for f in files])
            rerun = (time.perf_counter() - t1, again.strategies[0].llm)
        rows.append((spec, memory, r, wall, rerun))
        print(f"  done {spec} --memory {memory} in {wall:.0f} s"
              + (f" (LLM: {r.llm.line()})" if r.llm is not None else ""), flush=True)
    rerun_db.unlink(missing_ok=True)

    print(f"\nChroma benchmark, first {args.chars:,} characters of {', '.join(args.corpora)} ({n_questions} questions, "
          f"{input_tokens:,} model tokens); {emb.model_id}, k = 5, by true offsets, ×100; "
          f"LLM {llm.model_id} on this CPU\n")
    head = (f"{'strategy':<34}{'memory':>10}{'chunks':>7}{'tok':>5}{'recall':>8}{'IoU':>6}{'PΩ':>6}{'ChunkScore':>11}"
            f"{'calls':>7}{'LLM tok/in':>11}{'fallbacks':>10}{'wall s':>8}  re-run s")
    print(head)
    print("-" * len(head))
    for spec, memory, r, wall, rerun in rows:
        row, st = r.rows[0], r.llm
        ratio = f"{st.tokens / input_tokens:.2f}" if st is not None and input_tokens else "-"
        again = f"{rerun[0]:.0f}" + ("" if rerun[1] is None or not rerun[1].calls else
                                     f" ({rerun[1].calls} calls)") if rerun else "-"
        print(f"{spec:<34}{memory:>10}{row['chunks']:>7}{row['tokens_mean']:>5.0f}{100 * row['recall']:>8.1f}"
              f"{100 * row['iou']:>6.1f}{100 * row['precision_omega']:>6.1f}{row['chunkscore']:>11.3f}"
              f"{st.calls if st else 0:>7}{ratio:>11}{sum(st.fallbacks.values()) if st else 0:>10}{wall:>8.0f}"
              f"  {again}")
    print("\ncalls, LLM tok/in: model calls and prompt + completion tokens of chunking per input token (0/'-' when the "
          "chunks were already stored); wall s: chunk + embed + retrieve + ChunkScore; re-run s: the same eval into a "
          "fresh store with the LLM cache (only answers that failed are asked again).")
    for spec, memory, r, _, _ in rows:
        if r.llm is not None and r.llm.fallbacks:
            print(f"fallbacks of {spec}: " + "; ".join(f"{k} x{n}" for k, n in sorted(r.llm.fallbacks.items())))


if __name__ == "__main__":
    main()
