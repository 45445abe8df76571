"""The CPU embedding paths side by side: cold start (a fresh process until the first query vector,
as a shell pipeline pays it) and throughput on the same chunks, with their agreement.

    .venv/bin/python bench/embed_cpu.py [--chunks 400] [--size 128]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import bench_texts  # noqa: E402

COLD = "from chunkctl.embed import get_embedder; get_embedder({name!r}, 'cpu').embed(['how long is quarantine?'])"


def cold_start(name: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", COLD.format(name=name)], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=400)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec
    from chunkctl.embed import get_embedder
    from chunkctl.types import Document

    chunker = parse_spec(f"recursive:size={args.size}")
    texts: list[str] = []
    for name, text in bench_texts():
        texts += [c.text for c in chunk_document(Document(name, name, "", "", text), chunker, ChunkContext())]
        if len(texts) >= args.chunks:
            break
    texts = texts[:args.chunks]
    print(f"{len(texts)} chunks of <= {args.size} MiniLM tokens, 2-core CPU\n")
    print(f"{'':40} {'cold start s':>12} {'chunks/s':>9}")
    vectors = {}
    from chunkctl.embed import minilm_model_dir

    paths = {"minilm-onnx": "minilm-onnx (int8 ONNX)", "minilm-st": "minilm-st (fp32, transformers)",
             str(minilm_model_dir()): "sentence-transformers encode() (fp32)"}
    for name, label in paths.items():
        cold = cold_start(name)
        emb = get_embedder(name, "cpu")
        emb.embed(texts[:16])  # warm-up
        t0 = time.perf_counter()
        vectors[name] = emb.embed(texts)
        rate = len(texts) / (time.perf_counter() - t0)
        print(f"{label:40} {cold:>12.2f} {rate:>9.1f}")
    st = vectors[str(minilm_model_dir())]
    for name in ("minilm-onnx", "minilm-st"):
        cos = (vectors[name] * st).sum(1)
        print(f"{name} vs encode(): mean cosine {cos.mean():.5f}, min {cos.min():.5f}")


if __name__ == "__main__":
    main()
