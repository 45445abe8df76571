"""The local engine against the Ray engine (`ingest --engine ray`) on one corpus of >= 50 MB, stage
by stage, in one run on this machine.

The corpus: Chroma's five benchmark corpora, copied with their paragraphs shuffled per copy (so the
copies chunk into different texts and the local engine's embedding cache finds little to reuse),
plus the real PDFs, DOCX and HTML of bench-data/docs once each. Built in a temporary folder; no
text of it enters the project.

Stage 1 (parse + chunk + store) runs on the whole corpus with no embedding. Stage 2 (embedding)
runs on the first --embed-mb of the Markdown copies: on 2 CPU cores MiniLM embeds ~40 chunks of
256 tokens a second, so the whole corpus would take ~20 minutes per engine. Its wall time is the
full ingest of the slice minus its stage 1. Ray's start-up and shutdown are timed apart.

    python bench/ray_scaling.py [--mb 50] [--embed-mb 4] [--chunker recursive:size=256]
    python bench/ray_scaling.py --sweep 1,2      # stage 1 on Ray by tasks at a time only
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT.parent / "shared" / "bench-data"


def build_corpus(folder: Path, mb: float) -> tuple[Path, Path]:
    """(whole corpus, embedding slice); the slice's files are also in the whole corpus."""
    md = folder / "md"
    md.mkdir(parents=True)
    sources = sorted((BENCH / "chroma" / "corpora").glob("*.md"))
    texts = [(s.stem, s.read_text(encoding="utf-8").split("\n\n")) for s in sources]
    for f in sorted((BENCH / "docs").rglob("*")):
        if f.is_file() and f.suffix.lower() in (".pdf", ".docx", ".html"):
            shutil.copy(f, folder / f"doc-{f.parent.name}-{f.name}")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    copy = 0
    while size < mb * 1e6:
        for name, paras in texts:
            shuffled = paras[:]
            random.Random(copy).shuffle(shuffled)
            path = md / f"{copy:03d}-{name}.md"
            path.write_text("\n\n".join(shuffled), encoding="utf-8")
            size += path.stat().st_size
        copy += 1
    return folder, md


def take_slice(md: Path, dest: Path, mb: float) -> Path:
    dest.mkdir()
    size = 0
    for f in sorted(md.glob("*.md")):
        if size >= mb * 1e6:
            break
        os.symlink(f, dest / f.name)
        size += f.stat().st_size
    return dest


def mb_of(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def run_local(paths, db: Path, chunker, embed: bool):
    from chunkctl.embed import get_embedder
    from chunkctl.pipeline import IngestOptions, ingest
    from chunkctl.store import Store

    opts = IngestOptions([chunker], embedder=get_embedder("minilm", "cpu") if embed else None)
    t0 = time.perf_counter()
    with Store(db) as store:
        res = ingest(store, paths, opts)
    return res, time.perf_counter() - t0


def run_ray(paths, out: Path, chunker, embed: bool, files_per_task: int, cpu_tasks: int | None = None):
    from chunkctl.pipeline import IngestOptions
    from chunkctl.ray_engine import RayOptions, ingest_ray

    t0 = time.perf_counter()
    res = ingest_ray(paths, out, IngestOptions([chunker]),
                     RayOptions(model="minilm" if embed else None, files_per_task=files_per_task, cpu_tasks=cpu_tasks))
    return res, time.perf_counter() - t0


def sweep(corpus: Path, work: Path, chunker, files_per_task: int, counts: list[int]) -> None:
    """Stage 1 on Ray with at most N tasks at a time, for each N: how it grows with workers."""
    print(f"\nstage 1 (parse+chunk+store) on Ray by tasks at a time, {mb_of(corpus):.1f} MB:")
    print(f"{'tasks':>5} {'wall s':>8} {'MB/s':>7} {'docs/s':>7} {'x 1 task':>9}")
    first = None
    for n in counts:
        res, secs = run_ray([corpus], work / f"sweep-{n}", chunker, False, files_per_task, n)
        first = first or secs
        print(f"{n:5d} {secs:8.1f} {mb_of(corpus) / secs:7.2f} {res.new / secs:7.2f} {first / secs:8.2f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--embed-mb", type=float, default=4.0)
    ap.add_argument("--chunker", default="recursive:size=256")
    ap.add_argument("--files-per-task", type=int, default=8)
    ap.add_argument("--sweep", default="", help="only stage 1 on Ray at these tasks-at-a-time counts, e.g. 1,2")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import ray

    from chunkctl.chunkers import parse_spec

    chunker = parse_spec(args.chunker)
    work = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    try:
        corpus, md = build_corpus(work / "corpus", args.mb)
        part = take_slice(md, work / "slice", args.embed_mb)
        n_files = sum(1 for f in corpus.rglob("*") if f.is_file())
        print(f"corpus: {mb_of(corpus):.1f} MB in {n_files} files; embedding slice {mb_of(part):.1f} MB; "
              f"{args.chunker}; {os.cpu_count()} CPU(s); files per Ray task {args.files_per_task}", flush=True)
        rows = []
        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - t0
        if args.sweep:
            sweep(corpus, work, chunker, args.files_per_task, [int(x) for x in args.sweep.split(",")])
            return
        stage1 = {}
        for engine, run in (("local", lambda p, o, e: run_local(p, o.with_suffix(".duckdb"), chunker, e)),
                            ("ray", lambda p, o, e: run_ray(p, o, chunker, e, args.files_per_task))):
            res, secs = run([corpus], work / f"{engine}-whole", False)
            stage1[engine] = secs
            rows.append((engine, "parse+chunk+store", mb_of(corpus), res.new, sum(res.chunks.values()), secs, 0))
            print(f"  {engine} stage 1 done in {secs:.1f} s", flush=True)
            res0, secs0 = run([part], work / f"{engine}-slice0", False)
            res1, secs1 = run([part], work / f"{engine}-slice1", True)
            emb = res1.embedding
            rows.append((engine, f"embed ({emb.embedded} texts)", mb_of(part), res1.new, emb.chunks,
                         max(secs1 - secs0, 1e-9), emb.embedded))
            print(f"  {engine} stage 2 done: {secs1:.1f} s with embedding, {secs0:.1f} s without", flush=True)
        t0 = time.perf_counter()
        ray.shutdown()
        shutdown = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'engine':<6} {'stage':<26} {'MB':>6} {'docs':>6} {'chunks':>8} {'wall s':>8} {'MB/s':>7} "
          f"{'chunks/s':>9} {'texts/s':>8} {'ray/local':>10}")
    by = {(e, s.split(" ")[0]): secs for e, s, *_, secs, _ in rows}
    for engine, stage, mb, docs, chunks, secs, texts in rows:
        ratio = "" if engine == "local" else f"{by[('local', stage.split(' ')[0])] / secs:.2f}x"
        per_text = f"{texts / secs:8.1f}" if texts else f"{'':8}"
        print(f"{engine:<6} {stage:<26} {mb:6.1f} {docs:6d} {chunks:8d} {secs:8.1f} {mb / secs:7.2f} "
              f"{chunks / secs:9.1f} {per_text} {ratio:>10}")
    print(f"ray    start-up (ray.init)    {startup:6.1f} s;  shutdown {shutdown:.1f} s  (paid once per ingest command)")
    print("ray/local: the local engine's wall time over Ray's (above 1: Ray is faster). Ray's stage rows "
          "exclude start-up; each Ray run pays its job's set-up (actor start, model load). texts/s: distinct "
          "texts the model embedded per second (the local engine's cache skips texts it has embedded before).")


if __name__ == "__main__":
    main()
