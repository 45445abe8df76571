"""Semantic chunking speed on the CPU: chunkctl ``semantic`` against LangChain's SemanticChunker
(langchain_experimental) and chonkie's SemanticChunker, all with all-MiniLM-L6-v2, on the same text
(>= 1 MB of Chroma's corpora), in one run. Target: chunkctl >= 2x the faster of the two.

    .venv/bin/python bench/semantic_speed.py [--mb 1.0] [--skip-anchors]

The anchors get the fp32 sentence-transformers model the package ships; chunkctl runs twice: with
the same fp32 weights (``model=minilm-st``) and with its CPU default (int8 ONNX, ``model=minilm``).
Each row also reports chunk sizes in MiniLM tokens (the model reads 256) and whether every chunk's
text is found at its place in the source.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import BENCH  # noqa: E402

SIZE = 256  # chunk cap in tokens for the chunkers that have one (chonkie, chunkctl)


def bench_text(mb: float) -> str:
    parts, total = [], 0
    for f in sorted((BENCH / "chroma" / "corpora").glob("*.md")):
        t = f.read_text(encoding="utf-8").replace("\r\n", "\n")
        parts.append(t)
        total += len(t.encode())
        if total >= mb * 1e6:
            break
    text = "\n\n".join(parts)
    cut = text.find("\n\n", int(mb * 1e6))  # stop at a paragraph end just past the target size
    return text if cut == -1 else text[:cut]


def chunkctl_semantic(text: str, model: str) -> list[str]:
    from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec
    from chunkctl.parse.text import paragraphs
    from chunkctl.types import Document

    doc = Document("bench", "bench", "0", "text/plain", text, paragraphs(text))
    chunks = chunk_document(doc, parse_spec(f"semantic:size={SIZE},model={model}"), ChunkContext(device="cpu"))
    assert all(text[c.char_start:c.char_end] == c.text for c in chunks)
    return [c.text for c in chunks]


def langchain_semantic(text: str, model) -> list[str]:
    from langchain_core.embeddings import Embeddings
    from langchain_experimental.text_splitter import SemanticChunker

    class MiniLM(Embeddings):
        def embed_documents(self, texts):
            return model.encode(texts, batch_size=64, normalize_embeddings=True).tolist()

        def embed_query(self, text):
            return self.embed_documents([text])[0]

    return SemanticChunker(MiniLM(), breakpoint_threshold_type="percentile").split_text(text)


def chonkie_semantic(text: str, model) -> list[str]:
    from chonkie import SemanticChunker
    from chonkie.embeddings import SentenceTransformerEmbeddings

    chunker = SemanticChunker(embedding_model=SentenceTransformerEmbeddings(model), chunk_size=SIZE)
    return [c.text for c in chunker.chunk(text)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--skip-anchors", action="store_true", help="only chunkctl (the anchors take ~5 minutes)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from chunkctl.embed import minilm_model_dir
    from chunkctl.tokens import get_tokenizer

    text = bench_text(args.mb)
    tok = get_tokenizer("minilm")
    runs = [("chunkctl semantic (int8 ONNX, CPU default)", lambda: chunkctl_semantic(text, "minilm")),
            ("chunkctl semantic (fp32, model=minilm-st)", lambda: chunkctl_semantic(text, "minilm-st"))]
    if not args.skip_anchors:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(minilm_model_dir()), device="cpu")
        runs += [("LangChain SemanticChunker (percentile 95)", lambda: langchain_semantic(text, st)),
                 ("chonkie SemanticChunker", lambda: chonkie_semantic(text, st))]
    # warm every model once, outside the timings (a shell run would pay the load; all pay it equally)
    chunkctl_semantic("One sentence here. Another one there.", "minilm")
    chunkctl_semantic("One sentence here. Another one there.", "minilm-st")
    print(f"text: {len(text.encode()) / 1e6:.2f} MB, {len(tok.encode_batch([text])[0].ids):,} MiniLM tokens; "
          f"size cap {SIZE} where the chunker has one\n")
    print(f"{'chunker':44} {'seconds':>8} {'chunks':>7} {'mean tok':>8} {'max tok':>8} {'>256':>5} {'in source':>9}")
    results = {}
    for name, fn in runs:
        t0 = time.perf_counter()
        chunks = fn()
        secs = time.perf_counter() - t0
        results[name] = secs
        lens = [len(e.ids) for e in tok.encode_batch(chunks)]
        located = sum(c in text for c in chunks)
        print(f"{name:44} {secs:8.1f} {len(chunks):7} {sum(lens) / len(lens):8.0f} {max(lens):8} "
              f"{sum(n > 256 for n in lens):5} {located / len(chunks):8.0%}", flush=True)
    anchors = [v for k, v in results.items() if not k.startswith("chunkctl")]
    if anchors:
        fastest = min(anchors)
        print(f"\nspeed-up over the faster anchor ({fastest:.1f} s):")
        for k, v in results.items():
            if k.startswith("chunkctl"):
                print(f"  {k:44} {fastest / v:5.2f}x")


if __name__ == "__main__":
    main()
