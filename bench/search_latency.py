"""Search latency at ~25k and ~125k chunks, in a warm process (issue #21, item 3).

The stores are built once under .benchdata/: the benchmark text (bench/corpus.py) copied as many
times as needed, chunked with the default strategy, no embedding; then every chunk gets a random
unit vector under the default model's id (embedding 125k chunks on 2 cores would take most of an
hour, and the scan's speed does not depend on what the vectors hold). Queries are Chroma's
questions, embedded by the real model. Each row: the first call (loads the chunk table and the
vectors), then the median and p90 of the next calls; the "numpy" row is a brute-force scan of the
same matrix once loaded, the floor any exact search can reach.

    python bench/search_latency.py [--sizes 25000,125000] [--queries 20]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / ".benchdata"


def build(target: int) -> Path:
    import numpy as np

    from corpus import BENCH, bench_texts

    from chunkctl.chunkers import DEFAULT_SPEC, parse_spec
    from chunkctl.embed import get_embedder
    from chunkctl.pipeline import IngestOptions, ingest
    from chunkctl.store import Store
    from chunkctl.store.vectors import put_vectors

    db = OUT / f"search-{target}.duckdb"
    if db.exists():
        return db
    texts = bench_texts()
    folder = OUT / f"search-corpus-{target}"
    folder.mkdir(parents=True, exist_ok=True)
    model_id = get_embedder("minilm", "cpu").model_id
    tmp = db.with_suffix(".building.duckdb")
    tmp.unlink(missing_ok=True)
    with Store(tmp) as store:
        copy = 0
        while store.query("SELECT count(*) FROM chunks")[0][0] < target:
            for name, text in texts:
                (folder / f"{copy:02d}-{name}.txt").write_text(text)
            ingest(store, [str(folder)], IngestOptions([parse_spec(DEFAULT_SPEC)]))
            copy += 1
        rng = np.random.default_rng(0)
        ids = [r[0] for r in store.query("SELECT chunk_id FROM chunks ORDER BY chunk_id")]
        for a in range(0, len(ids), 32768):
            part = ids[a:a + 32768]
            m = rng.standard_normal((len(part), 384)).astype(np.float32)
            m /= np.linalg.norm(m, axis=1, keepdims=True)
            with store.transaction():
                put_vectors(store, part, model_id, m)
        store.con.execute("CHECKPOINT")
    tmp.rename(db)
    print(f"built {db.name}: {len(ids)} chunks from {copy} copies of the text under {BENCH}", file=sys.stderr)
    return db


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="25000,125000")
    ap.add_argument("--queries", type=int, default=20)
    args = ap.parse_args()
    import numpy as np

    from chunkctl.embed import get_embedder
    from chunkctl.retrieval import Retrieval, search
    from chunkctl.store import Store
    from chunkctl.store import index as ix

    with open(ROOT.parent / "shared" / "bench-data" / "chroma" / "questions_df.csv", newline="") as fh:
        questions = [r["question"] for r in csv.DictReader(fh)][: args.queries + 1]
    embedder = get_embedder("minilm", "cpu")
    embedder.embed(["warm the model up"])
    print(f"{'chunks':>8} {'mode':<8} {'first ms':>9} {'median ms':>10} {'p90 ms':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        db = build(size)
        with Store(db) as store:
            n = store.query("SELECT count(*) FROM chunks")[0][0]
            for mode in ("vector", "bm25", "hybrid"):
                r = Retrieval(mode=mode)
                times = []
                for q in questions:
                    t0 = time.perf_counter()
                    search(store, q, 5, r, None, embedder if r.dense else None)
                    times.append(1000 * (time.perf_counter() - t0))
                rest = sorted(times[1:])
                print(f"{n:>8} {mode:<8} {times[0]:>9.0f} {statistics.median(rest):>10.0f} "
                      f"{rest[int(0.9 * (len(rest) - 1))]:>8.0f}")
            ids, mat = ix.vector_matrix(store, embedder.model_id, None)
            qv = embedder.embed(questions)
            times = []
            for v in qv:
                t0 = time.perf_counter()
                np.argpartition(-(mat @ v), 50)[:50]
                times.append(1000 * (time.perf_counter() - t0))
            print(f"{n:>8} {'numpy':<8} {'':>9} {statistics.median(times):>10.1f} "
                  f"{sorted(times)[int(0.9 * (len(times) - 1))]:>8.1f}   (brute force over the loaded matrix)")


if __name__ == "__main__":
    main()
