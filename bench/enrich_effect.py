"""What enrichment does to retrieval on Chroma's benchmark: for `recursive` 200/0 and `cluster`
200 (the best IoU and precision-Ω at this size in the README's Chroma table), each with plain text,
the structure prefix, an LLM prefix (the embedded model's metadata), unified embeddings (α = 0.5,
0.7) and late fusion (α = 0.5, 0.7); recall and IoU at k = 5 (MiniLM int8, true offsets), each
with the paired bootstrap 95% interval of its difference from plain, question by question.

    .venv/bin/python bench/enrich_effect.py                       # structure only, all five corpora
    .venv/bin/python bench/enrich_effect.py --llm keywords --corpora chatlogs state_of_the_union

The LLM enrichers make one call per chunk and enricher; with SmolLM2-135M on two CPU cores that is
~1–2 s per chunk, so they run on the corpora named (all five would take hours here). Fusion reads
the structure block plus whatever the LLM enrichers wrote, beside a plain text vector. Everything
lives in .benchdata/enrich_effect/; a re-run answers from the stored metadata and the LLM cache.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMA = ROOT.parent / "shared" / "bench-data" / "chroma"
OUT = ROOT / ".benchdata" / "enrich_effect"
CHUNKERS = ["recursive:size=200", "cluster:size=200"]


def settings(llm: list[str]) -> list[tuple[str, list[str], str, str, float]]:
    """(label, enricher specs, embed format, fusion, alpha) in the order they run."""
    structure = ["structure"]
    rows = [("plain", [], "plain", "none", 0.5), ("structure prefix", structure, "prefix", "none", 0.5)]
    meta = structure + llm
    if llm:
        rows.append((f"{'+'.join(llm)} prefix", llm, "prefix", "none", 0.5))
        rows.append((f"structure+{'+'.join(llm)} prefix", meta, "prefix", "none", 0.5))
    name = "+".join(meta)
    for fusion in ("unified", "late"):
        for alpha in (0.5, 0.7):
            rows.append((f"{fusion} α={alpha} ({name})", meta, "plain", fusion, alpha))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", nargs="*", default=None, help="Chroma corpora (default: all five).")
    ap.add_argument("--llm", nargs="*", default=[], help="LLM enricher specs for the LLM prefix (e.g. keywords).")
    ap.add_argument("--llm-base-url", help="An OpenAI-compatible server instead of the embedded model.")
    ap.add_argument("--llm-model")
    ap.add_argument("--chunkers", nargs="*", default=CHUNKERS)
    args = ap.parse_args()

    from chunkctl.chunkers import parse_spec
    from chunkctl.embed import get_embedder
    from chunkctl.enrich import Enrichment, parse_enricher
    from chunkctl.evaluation import metrics as M
    from chunkctl.evaluation.qa import load_qa
    from chunkctl.evaluation.run import EvalOptions, evaluate
    from chunkctl.retrieval import PLAIN, Retrieval
    from chunkctl.llm import LLMSettings
    from chunkctl.store import Store
    from chunkctl.store.catalog import count_trimmed

    names = args.corpora or sorted(p.stem for p in (CHROMA / "corpora").glob("*.md"))
    files = [str(CHROMA / "corpora" / f"{n}.md") for n in names]
    qa = load_qa(CHROMA / "questions_df.csv")
    qa = dataclasses.replace(qa, questions=[q for q in qa.questions if Path(q.refs[0].doc).stem in names])
    OUT.mkdir(parents=True, exist_ok=True)
    llm = LLMSettings(cache=str(OUT / "llm-cache.sqlite"),
                      **({"backend": "openai", "base_url": args.llm_base_url, "model": args.llm_model}
                         if args.llm_base_url else {}))
    emb = get_embedder("minilm", "auto")
    window = {"max_tokens": emb.max_tokens, "tokenizer": emb.tokenizer}
    table, n_questions, model = [], 0, None
    for spec in args.chunkers:
        ch = parse_spec(spec)
        db = OUT / f"{'-'.join(names)}-{ch.strategy_id}.duckdb"
        base = None
        for label, specs, fmt, fusion, alpha in settings(args.llm):
            enrichment = Enrichment(tuple(parse_enricher(s) for s in specs), fmt, **window)
            opts = EvalOptions([ch], ks=[5], embedder=emb, llm_settings=llm, enrichment=enrichment,
                               retrieval=Retrieval(mode="vector", fusion=fusion, alpha=alpha, **PLAIN))
            t0 = time.perf_counter()
            with Store(db) as store:
                rep = evaluate(store, qa, opts, corpus=files)
                trimmed = count_trimmed(store, ch.strategy_id)
            wall = time.perf_counter() - t0
            r = rep.strategies[0]
            n_questions = rep.n_questions
            per_q = r.per_question["5"]
            if base is None:
                base = per_q
            if r.llm is not None and r.llm.calls:
                model = r.llm.scored_by or llm.model or "smollm2"
            diffs = [M.paired(per_q[m], base[m]) for m in ("recall", "iou")]
            table.append((spec, label, r.rows[0], diffs, trimmed, r.llm.calls if r.llm else 0, wall))
            print(f"  done {spec} {label} in {wall:.0f} s" + (f" (LLM: {r.llm.line()})" if r.llm else ""), flush=True)

    print(f"\nEnrichment on Chroma's benchmark: {', '.join(names)} ({n_questions} questions); {emb.model_id}, k = 5, "
          f"by true offsets, ×100; Δ = setting − plain, paired bootstrap 95% CI"
          + (f"; LLM metadata: {', '.join(args.llm)} by {model or 'the LLM (cached)'}" if args.llm else "") + "\n")
    head = (f"{'chunker':<20}{'setting':<44}{'recall':>7}{'IoU':>6}  {'Δ recall [95% CI]':<24}{'Δ IoU [95% CI]':<22}"
            f"{'W/T/L':>11}{'trimmed':>8}{'calls':>7}{'s':>6}")
    print(head)
    print("-" * len(head))
    for spec, label, row, (dr, di), trimmed, calls, wall in table:
        fmt = lambda d: f"{100 * d['mean_diff']:+.2f} [{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}]"  # noqa: E731
        print(f"{spec:<20}{label:<44}{100 * row['recall']:>7.1f}{100 * row['iou']:>6.2f}  {fmt(dr):<24}{fmt(di):<22}"
              f"{dr['wins']:>4}/{dr['ties']}/{dr['losses']:<4}{trimmed:>6}{calls:>7}{wall:>6.0f}")
    print("\ntrimmed: chunks whose metadata block was shortened to fit the embedder's 256-token window (text never "
          "cut); calls: LLM calls this row made (0: metadata already stored); s: enrich + embed + retrieve.")


if __name__ == "__main__":
    main()
