"""GPU embedding throughput on the same 200-token chunks, in one run:

1. sentence-transformers ``encode()`` on the chunk texts (fp16): tokenizes on the CPU again;
2. the model's GPU-only ceiling: pre-tokenized, pre-padded, length-sorted batches already on the
   GPU, forward + mean pooling only;
3. chunkctl's encoder: ``PretokenizedEncoder.embed_ids`` on the token ids the chunker computed
   (tokenize once), padding on a helper thread, transfers and results included;
4. chunkctl's embed stage as ``ingest`` runs it (``EmbedStage``): the same ids in committed batches,
   text hashes and cache look-ups, the model on a helper thread, and every vector and cache entry
   committed to a DuckDB store file (skipped where duckdb is not installed).

The GPU machine cannot see ../shared and takes at most 64 MiB, so ``--prepare`` (run here) writes
``.benchdata/``: the benchmark text (gzip), an fp16 copy of the packaged MiniLM (45 MB), and this
duckdb wheel for the GPU machine's Python (3.12) as a tar.xz (15 MB; that machine has no duckdb and
no network), unpacked there into /tmp when duckdb is not importable.

    .venv/bin/python bench/embed_gpu.py --prepare          # here
    python3 bench/embed_gpu.py                             # on the GPU machine, carrying .benchdata
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".benchdata"
MODEL = DATA / "minilm-fp16"
SEP = "\n\x1e\n"  # between documents in the carried corpus


def pack_duckdb(python: str) -> None:
    """duckdb's wheel for the GPU machine's Python, repacked as tar.xz (21 MB zip -> 15 MB)."""
    import subprocess
    import tarfile
    import tempfile
    import zipfile

    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", f"duckdb=={duckdb.__version__}", "--no-deps",
                        "--only-binary=:all:", "--python-version", python, "--platform", "manylinux_2_28_x86_64",
                        "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("duckdb-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            keep = [m for m in z.namelist() if m.startswith(("duckdb/", "_duckdb.", "duckdb-"))]
            z.extractall(Path(tmp) / "site", keep)
        with tarfile.open(DATA / "duckdb.tar.xz", "w:xz", preset=9) as tar:
            for item in (Path(tmp) / "site").iterdir():
                tar.add(item, arcname=item.name)


def prepare(python: str = "3.12") -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from corpus import bench_texts
    from safetensors.torch import load_file, save_file

    from chunkctl.embed import minilm_model_dir

    DATA.mkdir(exist_ok=True)
    with gzip.open(DATA / "corpus.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write(SEP.join(t for _, t in bench_texts()))
    src = minilm_model_dir()
    if MODEL.exists():
        shutil.rmtree(MODEL)
    shutil.copytree(src, MODEL, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    weights = {k: v.half() for k, v in load_file(str(src / "model.safetensors")).items()}
    save_file(weights, str(MODEL / "model.safetensors"), metadata={"format": "pt"})
    pack_duckdb(python)
    size = sum(f.stat().st_size for f in DATA.rglob("*") if f.is_file()) / 2**20
    print(f"wrote {DATA} ({size:.1f} MiB)")


def chunks(n_chunks: int, size: int):
    """``fixed:size=200`` windows over the corpus through chunkctl's TokenIndex: (texts, ids)."""
    from chunkctl.tokens import HFTokenizer, TokenIndex

    tok = HFTokenizer(MODEL / "tokenizer.json", "minilm")
    texts, ids = [], []
    with gzip.open(DATA / "corpus.txt.gz", "rt", encoding="utf-8") as fh:
        docs = fh.read().split(SEP)
    for doc in docs:
        idx = TokenIndex(doc, tok)
        for first in range(0, idx.total, size):
            last = min(first + size, idx.total) - 1
            a, b = idx.token_span(first)[0], idx.token_span(last)[1]
            texts.append(doc[a:b])
            ids.append(idx.ids_in(a, b))
    reps = -(-n_chunks // len(texts))
    return (texts * reps)[:n_chunks], (ids * reps)[:n_chunks]


def import_duckdb() -> bool:
    """duckdb, from the environment or from the carried tar.xz."""
    try:
        import duckdb  # noqa: F401
        return True
    except ImportError:
        pass
    packed = DATA / "duckdb.tar.xz"
    if not packed.exists():
        return False
    import tarfile

    target = Path("/tmp/chunkctl-bench-site")
    with tarfile.open(packed) as tar:
        tar.extractall(target)
    sys.path.insert(0, str(target))
    import duckdb  # noqa: F401
    return True


def stage_run(enc, texts, ids, path: Path) -> int:
    """Ingest's embedding stage into a fresh store; returns the vectors written."""
    import chunkctl

    if str(ROOT) not in chunkctl.__path__:  # a bare checkout (no install): map chunkctl.store to store/
        chunkctl.__path__.append(str(ROOT))
    from chunkctl.store import Store
    from chunkctl.store.catalog import count_rows
    from chunkctl.store.vectors import EmbedStage

    path.unlink(missing_ok=True)
    with Store(path) as store:
        stage = EmbedStage(store, enc)
        for i, (text, x) in enumerate(zip(texts, ids)):
            stage.rows.append((f"c{i:07d}", f"{text}\x00{i}"))  # distinct texts: no cache hits
            stage.ids.append(x)
            if len(stage.rows) >= stage.batch:
                stage.flush()
        stage.finish()
        return count_rows(store, "embeddings")


def timed(fn, sync):
    sync()
    t0 = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--device-python", default="3.12", help="with --prepare: the GPU machine's Python")
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--batch", type=int, default=2048)
    args = ap.parse_args()
    if args.prepare:
        return prepare(args.device_python)
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from chunkctl.embed import PretokenizedEncoder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    texts, ids = chunks(args.chunks, args.size)
    t_chunk = time.perf_counter() - t0
    n = len(texts)
    print(f"{n} chunks of <= {args.size} MiniLM tokens (mean {np.mean([len(x) for x in ids]):.0f}); "
          f"chunking them (CPU, tokenize once) took {t_chunk:.1f} s; device {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if device == "cuda" else ""))

    st = SentenceTransformer(str(MODEL), device=device, local_files_only=True)
    if device == "cuda":
        st.half()
    st.encode(texts[:2048], batch_size=512)  # warm-up
    t_st, v_st = timed(lambda: st.encode(texts, batch_size=512, normalize_embeddings=True,
                                         convert_to_numpy=True), sync)

    enc = PretokenizedEncoder(MODEL, device, batch_size=args.batch)
    enc.embed_ids(ids[:4096])  # warm-up
    t_ours, v_ours = timed(lambda: enc.embed_ids(ids), sync)

    # ceiling: the same model and batches, everything already padded and on the GPU
    order = sorted(range(n), key=lambda i: len(ids[i]))
    ready = [(b[1].to(device), b[2].to(device)) for b in enc._batches(ids, order)]

    def model_only():
        with torch.inference_mode():
            for ids_t, mask_t in ready:
                hidden = enc.model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
                m = mask_t.unsqueeze(-1).to(hidden.dtype)
                torch.nn.functional.normalize(((hidden * m).sum(1) / m.sum(1)).float(), dim=-1)

    model_only()  # warm-up
    t_ceiling, _ = timed(model_only, sync)
    t_stage = None
    if import_duckdb():
        store_path = Path("/tmp/chunkctl-embed-bench.duckdb")
        stage_run(enc, texts[:8192], ids[:8192], store_path)  # warm-up
        t_stage, written = timed(lambda: stage_run(enc, texts, ids, store_path), sync)
        assert written == n, f"the stage wrote {written} vectors for {n} chunks"
    # an fp32 reference on a sample tells which fp16 path drifts when the two disagree
    sample = list(range(0, n, max(1, n // 4000)))
    ref = PretokenizedEncoder(MODEL, device, batch_size=256, half=False).embed_ids([ids[i] for i in sample])
    v_st = np.asarray(v_st, dtype=np.float32)
    cos = (v_st * v_ours).sum(1)
    cos_st, cos_ours = (v_st[sample] * ref).sum(1), (v_ours[sample] * ref).sum(1)
    rows = [("sentence-transformers encode(), fp16, batch 512", t_st),
            (f"GPU-only ceiling (pre-tokenized, on the GPU), batch {args.batch}", t_ceiling),
            (f"chunkctl encoder (chunker's token ids), batch {args.batch}", t_ours)]
    if t_stage is not None:
        rows.append(("chunkctl ingest embed stage (cache, DuckDB writes)", t_stage))
    print(f"\n{'':62} {'seconds':>8} {'chunks/s':>10} {'x encode()':>11} {'of ceiling':>11}")
    for name, t in rows:
        print(f"{name:62} {t:>8.2f} {n / t:>10,.0f} {t_st / t:>11.2f} {t_ceiling / t:>10.0%}")
    print(f"\nagreement with encode(): mean cosine {cos.mean():.5f}, min {cos.min():.5f}")
    print(f"against fp32 on {len(sample)} chunks: chunkctl fp16 mean {cos_ours.mean():.5f} min {cos_ours.min():.5f}; "
          f"encode() fp16 mean {cos_st.mean():.5f} min {cos_st.min():.5f}")
    print("target: chunkctl >= 28,000 chunks/s on one H200, >= 10x encode(), >= 80% of the ceiling")


if __name__ == "__main__":
    main()
