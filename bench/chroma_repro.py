"""Chroma's chunking benchmark (5 corpora, 472 questions) with all-MiniLM-L6-v2, beside the
published MiniLM table: dense retrieval with chunks placed by first occurrence (``find``, as
Chroma's code does) and by their true offsets, and BM25 over the same chunks. k = 5, ×100.

    .venv/bin/python bench/chroma_repro.py [--db .benchdata/chroma.duckdb] [--only SPEC ...]

The store keeps chunks and vectors, so a re-run embeds nothing.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

CHROMA = Path(__file__).resolve().parent.parent.parent / "shared" / "bench-data" / "chroma"
# (chunkctl spec, Chroma's chunker name, size, overlap) — None where Chroma published no MiniLM row
STRATEGIES = [
    ("recursive-lc:size=200", "Recursive", "200", "0"),
    ("recursive-lc:size=250", "Recursive", "250", "0"),
    ("recursive-lc:size=250,overlap=125", "Recursive", "250", "125"),
    ("fixed:size=200,tokenizer=cl100k", "TokenText", "200", "0"),
    ("fixed:size=250,tokenizer=cl100k", "TokenText", "250", "0"),
    ("fixed:size=250,overlap=125,tokenizer=cl100k", "TokenText", "250", "125"),
    ("cluster:size=200", "Cluster", "200", "0"),
    ("cluster:size=250", "Cluster", "250", "0"),
    ("cluster:size=250,compat=true", "Cluster", "250", "0"),
    ("recursive:size=200,tokenizer=cl100k", None, None, None),
    ("semantic:size=256", None, None, None),
    ("semantic-double:size=256", None, None, None),
]


def published() -> dict[tuple[str, str, str], dict[str, float]]:
    out = {}
    with open(CHROMA / "published_results_headline.csv") as fh:
        for r in csv.DictReader(fh):
            if r["embedding"] == "all-MiniLM-L6-v2":
                out[(r["chunker"], r["size"], r["overlap"])] = {m: float(r[m]) for m in
                                                                ("recall", "iou", "precision", "precision_omega")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=str(Path(__file__).resolve().parent.parent / ".benchdata" / "chroma.duckdb"))
    ap.add_argument("--only", nargs="*", help="Run only these specs.")
    args = ap.parse_args()

    from chunkctl.chunkers import parse_spec
    from chunkctl.embed import get_embedder
    from chunkctl.evaluation.qa import load_qa
    from chunkctl.evaluation.run import EvalOptions, evaluate
    from chunkctl.retrieval import PLAIN, Retrieval
    from chunkctl.store import Store

    pub = published()
    qa = load_qa(CHROMA / "questions_df.csv")
    emb = get_embedder("minilm", "auto")
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with Store(args.db) as store:
        for spec, name, size, overlap in STRATEGIES:
            if args.only and spec not in args.only:
                continue
            ch = parse_spec(spec)
            t0 = time.perf_counter()
            res = {}
            for label, mode, locate in (("find", "vector", "find"), ("offsets", "vector", "offsets"),
                                        ("bm25", "bm25", "offsets")):
                rep = evaluate(store, qa, EvalOptions([ch], ks=[5], retrieval=Retrieval(mode=mode, **PLAIN), locate=locate,
                                                                   embedder=emb),
                               corpus=[str(CHROMA / "corpora")])
                res[label] = rep.rows()[0]
            rows.append((spec, pub.get((name, size, overlap)) if name else None, res, time.perf_counter() - t0))
            print(f"  done {spec} in {rows[-1][3]:.0f} s", flush=True)

    print(f"\nChroma benchmark, {qa and len(qa.questions)} questions, {emb.model_id}, k=5, ×100 "
          "(published: Chroma's all-MiniLM-L6-v2 table; Δ = ours − published)\n")
    head = (f"{'strategy':<46}{'chunks':>7}{'tok':>5} | {'published R / IoU / PΩ':>24} | "
            f"{'find: recall (Δ)':>17}{'IoU (Δ)':>13}{'PΩ (Δ)':>14} | {'offsets R / IoU':>16} | {'BM25 R / IoU':>13}")
    print(head)
    print("-" * len(head))
    for spec, p, res, _ in rows:
        f, o, b = res["find"], res["offsets"], res["bm25"]

        def cell(metric, width):
            ours = 100 * f[metric]
            return (f"{ours:.1f} ({ours - p[metric]:+.1f})" if p else f"{ours:.1f}").rjust(width)

        pubs = f"{p['recall']:.1f} / {p['iou']:.1f} / {p['precision_omega']:.1f}" if p else "—"
        print(f"{spec:<46}{f['chunks']:>7}{f['tokens_mean']:>5.0f} | {pubs:>24} | {cell('recall', 17)}"
              f"{cell('iou', 13)}{cell('precision_omega', 14)} | "
              f"{100 * o['recall']:>7.1f} / {100 * o['iou']:<6.1f} | {100 * b['recall']:>5.1f} / {100 * b['iou']:<5.1f}")
    worst = max((abs(100 * r[2]["find"][m] - r[1][m]), r[0], m) for r in rows if r[1]
                for m in ("recall", "iou", "precision_omega")) if any(r[1] for r in rows) else None
    if worst:
        print(f"\nlargest difference from a published cell (find mode): {worst[0]:.1f} points ({worst[1]}, {worst[2]})")
    print("seconds per strategy (chunk + embed + three evaluations; 0 embedding on a cached re-run): "
          + ", ".join(f"{s.split(':')[0]}:{s.split(':', 1)[1] if ':' in s else ''} {t:.0f}" for s, _, _, t in rows))


if __name__ == "__main__":
    main()
