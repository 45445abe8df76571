"""chunkctl ``ppl`` beside Meta-Chunking's official code (PyPI ``lmchunker``) with the same model
(SmolLM2-135M, the same weights) on the same text, cut into the same sentences, on this CPU.

    .venv/bin/python bench/ppl_vs_reference.py [--file F] [--threshold 0]

The reference needs transformers < 5 and NLTK's punkt data (which cannot be downloaded here), so it
runs in its own environment, made on first use under .benchdata/ref-venv, with its sentence
splitter replaced by chunkctl's sentences (the reference strips each one and joins them with no
space). Reported: seconds and scored tokens per second of each (model loading excluded), the
boundary agreement (sentence indices that end a chunk), characters the output alters, and the
boundary rule alone (the reference's ``find_minima`` and chunkctl's on the same scores).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".benchdata" / "ref-venv"
DEFAULT = ROOT.parent / "shared" / "bench-data" / "chroma" / "corpora" / "state_of_the_union.md"

REFERENCE = r"""
import json, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
import lmchunker.modules.ppl_chunking as pc

job = json.load(open(sys.argv[1]))
pc.sent_tokenize = lambda text: job["sentences"]  # the same sentences as chunkctl
folder, name = job["gguf"].rsplit("/", 1)  # the same GGUF, dequantized to float32 as chunkctl's copy
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32).eval()
model.lm_head.weight = model.model.embed_tokens.weight  # SmolLM2 ties them; this GGUF loader does not
t0 = time.perf_counter()
chunks = pc.llm_chunker_ppl(job["text"], model, tok, job["threshold"], "en")
seconds = time.perf_counter() - t0
json.dump({"chunks": chunks, "seconds": seconds,
           "minima_on_given_scores": pc.find_minima(job["scores"], job["threshold"])}, open(sys.argv[2], "w"))
"""


def reference_env() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)  # the local CPU wheel first
        subprocess.run(pip + ["lmchunker==0.5.1", "transformers==4.46.3", "nltk", "gguf", "accelerate"], check=True)
    return py


def ends_of(chunks: list[str], sentences: list[str]) -> set[int]:
    """Sentence indices ending each reference chunk (its chunks are sentences joined with '')."""
    ends, i = set(), 0
    for c in chunks:
        n = 0
        while i < len(sentences) and n < len(c):
            n += len(sentences[i])
            i += 1
        ends.add(i - 1)
    return ends


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=str(DEFAULT))
    ap.add_argument("--threshold", type=float, default=0.0)
    args = ap.parse_args()

    from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec
    from chunkctl.chunkers.ppl import find_minima
    from chunkctl.chunkers.sentence import sentence_bounds
    from chunkctl.llm import LLMSettings, Request
    from chunkctl.llm.local import resolve_model
    from chunkctl.types import Document

    text = Path(args.file).read_text(encoding="utf-8")
    bounds = sentence_bounds(text)
    kept = [(s, e) for s, e in bounds if text[s:e].strip()]
    sentences = [text[s:e].strip() for s, e in kept]
    cache = Path("~/.cache/chunkctl/models").expanduser()
    gguf = resolve_model(None, cache).gguf
    doc = Document("d", args.file, "x", "text/plain", text)

    tmp_cache = tempfile.mkdtemp()
    ctx = ChunkContext(device="cpu", llm_settings=LLMSettings(cache=str(Path(tmp_cache) / "llm.sqlite")))
    ctx.llm.complete(Request(prompt="", score="Warm up."))  # load the model outside the timing
    spec = parse_spec(f"ppl:threshold={args.threshold},size=100000")  # no size cap: as the reference
    t0 = time.perf_counter()
    ours = chunk_document(doc, spec, ctx)
    ours_s = time.perf_counter() - t0
    n_tokens = len(ctx.llm.backend.hf().tok(text, add_special_tokens=False).input_ids)
    our_ends = {max(i for i, (s, e) in enumerate(kept) if s < c.char_end) for c in ours[:-1]}

    # the rule alone: both find_minima on chunkctl's sentence scores (from the cache: no new calls)
    per, _ = spec.scores(text, bounds, ctx)
    scores = [v for (s, e), v in zip(bounds, per) if text[s:e].strip()]

    py = reference_env()
    with tempfile.TemporaryDirectory() as tmp:
        job, res = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job.write_text(json.dumps({"text": text, "sentences": sentences, "gguf": str(gguf),
                                   "threshold": args.threshold, "scores": scores}))
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        subprocess.run([str(py), "-c", REFERENCE, str(job), str(res)], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        ref = json.loads(res.read_text())
    ref_ends = ends_of(ref["chunks"], sentences) - {len(sentences) - 1}
    altered = sum(1 for c in ref["chunks"] if c not in text)
    lost = len(text) - sum(len(c) for c in ref["chunks"])
    both = len(ref_ends & our_ends)
    f1 = 2 * both / (len(ref_ends) + len(our_ends)) if ref_ends or our_ends else 1.0

    print(f"{Path(args.file).name}: {len(text):,} characters, {n_tokens:,} model tokens, {len(sentences)} sentences, "
          f"threshold {args.threshold}, {ctx.llm.model_id} on CPU\n")
    print(f"{'':<28}{'seconds':>9}{'tokens/s':>10}{'chunks':>8}{'chunks not in source':>22}{'chars dropped':>15}")
    print(f"{'lmchunker 0.5.1 (reference)':<28}{ref['seconds']:>9.1f}{n_tokens / ref['seconds']:>10.0f}"
          f"{len(ref['chunks']):>8}{altered:>22}{lost:>15}")
    print(f"{'chunkctl ppl':<28}{ours_s:>9.1f}{n_tokens / ours_s:>10.0f}{len(ours):>8}"
          f"{sum(1 for c in ours if text[c.char_start:c.char_end] != c.text):>22}{0:>15}")
    print(f"\nspeed: chunkctl {ref['seconds'] / ours_s:.2f}x the reference (target >= 2x)")
    print(f"boundaries: {len(ref_ends)} reference, {len(our_ends)} chunkctl, {both} shared "
          f"(F1 {f1:.2f}); identical: {ref_ends == our_ends}")
    mine = find_minima(scores, args.threshold)
    print(f"the rule alone on the same {len(scores)} sentence scores: reference find_minima "
          f"{len(ref['minima_on_given_scores'])} minima, chunkctl {len(mine)}; identical: "
          f"{mine == ref['minima_on_given_scores']}")


if __name__ == "__main__":
    main()
