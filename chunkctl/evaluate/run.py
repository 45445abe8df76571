"""``evaluate``: chunk and embed a corpus (through ingest, so the store and the embedding cache are
reused), retrieve the top-k chunks of every question from one index over the whole corpus, and
score each strategy at each k.

Where a chunk is: ``locate="offsets"`` scores the chunk's true offsets; ``locate="find"`` places
each chunk at the first occurrence of its text in its document, as Chroma's code does (which moves
chunks of repeated passages onto the earlier copy), so results compare with the published tables.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from chunkctl.evaluate import metrics as M
from chunkctl.evaluate.qa import QASet, Question, place

K_MIN = "min"  # k = the number of chunks that touch the question's references (capped at 20)
K_MIN_CAP = 20
LOCATES = ("offsets", "find")


@dataclass(frozen=True)
class EvalOptions:
    chunkers: Sequence[Any]  # Chunker instances; a baseline, when given, is among them
    ks: Sequence[int | str] = (5,)
    mode: str = "vector"  # vector | bm25 | hybrid
    locate: str = "offsets"
    embedder: Any = None  # needed for vector and hybrid
    baseline: Any = None  # a Chunker: paired statistics of every other strategy against it
    device: str = "auto"
    intrinsic: bool = False  # Adaptive Chunking's SC, ICC, DCC, BI (RC unavailable offline)
    llm: Any = None  # a chunkctl.llm.LLM: with it, ChunkScore per document (QChunker) is reported
    llm_settings: Any = None  # chunkctl.llm.LLMSettings for LLM chunkers; None: the defaults
    memory: str = "none"  # none | mixed | per-layer: MoM's memory layers in retrieval (store/memory.py)
    enrichment: Any = None  # chunkctl.enrich.Enrichment applied to every strategy's chunks; None: as stored
    fusion: str = "none"  # none | unified | late: text and metadata vectors fused (store/fusion.py)
    alpha: float = 0.7  # the text side's weight in fusion (bench/enrich_effect.py: 0.7 beat 0.5 in every row)


@dataclass
class StrategyResult:
    spec: str
    strategy_id: str
    rows: list[dict]  # one per k: the aggregate metrics
    per_question: dict[str, dict[str, list[float]]]  # k -> metric -> per-question values
    chunk_stats: dict[str, float]
    seconds: dict[str, float]
    sizes: list[int] = field(default_factory=list)  # every chunk's tokens, for histograms
    llm: Any = None  # the LLMStats of chunking, when this run chunked with an LLM


@dataclass
class EvalReport:
    strategies: list[StrategyResult]
    n_questions: int
    problems: list[str]  # references moved or not placed, questions left out
    mode: str
    locate: str
    model_id: str | None
    baseline: str | None = None
    paired: list[dict] = field(default_factory=list)
    question_docs: list[str] = field(default_factory=list)  # each scored question's document (file name)

    def rows(self) -> list[dict]:
        return [r for s in self.strategies for r in s.rows]


def corpus_documents(store, under: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
    """{doc_id: (path, text)} of the store (or of the documents under the given folders)."""
    rows = store.query("SELECT doc_id, path, text FROM documents")
    if under:  # stored paths are absolute as walked (symlinks kept), so compare in the same form
        roots = [os.path.abspath(u) for u in under]
        rows = [r for r in rows if any(r[1] == root or r[1].startswith(root.rstrip("/") + "/") for root in roots)]
    return {r[0]: (r[1], r[2]) for r in rows}


def _keys(path: str, roots: Sequence[str]) -> list[str]:
    p = Path(path)
    keys = [str(p), p.name, p.stem]
    for root in roots:
        try:
            keys.append(str(p.relative_to(os.path.abspath(root))))
        except ValueError:
            pass
    return keys


def place_questions(qa: QASet, docs: dict[str, tuple[str, str]], roots: Sequence[str]
                    ) -> tuple[list[tuple[Question, str, list[M.Span]]], list[str]]:
    """[(question, doc_id, reference spans)] for every question whose references could be placed in
    one document, and the problems met (moved or unplaced references, questions left out)."""
    index: dict[str, set[str]] = {}
    for doc_id, (path, _) in docs.items():
        for k in _keys(path, roots):
            index.setdefault(k, set()).add(doc_id)
    placed, problems = [], []
    for q in qa.questions:
        spans, doc_ids = [], set()
        for ref in q.refs:
            ids = index.get(ref.doc, set())
            if len(ids) != 1:
                problems.append(f"question {q.qid + 1}: document {ref.doc!r} "
                                + ("not in the corpus" if not ids else f"is ambiguous ({len(ids)} matches)"))
                continue
            doc_id = next(iter(ids))
            got, note = place(ref, docs[doc_id][1])
            if note:
                problems.append(f"question {q.qid + 1}: {note}")
            if got is not None:
                spans.append((got.start, got.end))
                doc_ids.add(doc_id)
        if len(doc_ids) > 1:
            problems.append(f"question {q.qid + 1}: references in several documents; left out")
        elif spans:
            placed.append((q, doc_ids.pop(), spans))
        else:
            problems.append(f"question {q.qid + 1}: no reference could be placed; left out")
    return placed, problems


def _chunks(store, strategy_id: str, doc_ids: set[str], docs, locate: str):
    rows = store.query("SELECT chunk_id, doc_id, char_start, char_end, text, n_tokens FROM chunks "
                       "WHERE strategy_id = ? ORDER BY doc_id, seq", [strategy_id])
    rows = [r for r in rows if r[1] in doc_ids]
    if locate == "find":
        rows = [(cid, d, (s2 := docs[d][1].find(t)), s2 + len(t), t, n) for cid, d, s, e, t, n in rows]
    return rows


def _vectors(store, embedder, strategy_id: str, chunk_ids: list[str]) -> np.ndarray:
    from chunkctl.store.vectors import embed_chunks

    embed_chunks(store, embedder, strategy_id)  # only chunks still without a vector
    tab = store.con.execute("SELECT e.chunk_id, e.vec FROM embeddings e JOIN chunks c USING (chunk_id) "
                            "WHERE c.strategy_id = ? AND e.model_id = ?", [strategy_id, embedder.model_id]).arrow()
    tab = tab.read_all() if hasattr(tab, "read_all") else tab
    ids = tab.column("chunk_id").to_pylist()
    flat = tab.column("vec").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    mat = flat.reshape(len(ids), -1).astype(np.float32)
    pos = {cid: i for i, cid in enumerate(ids)}
    return mat[[pos[c] for c in chunk_ids]]


def _ranked(store, opts: EvalOptions, qvecs, questions: list[str], strategy_id: str, chunk_ids: list[str],
            depth: int) -> list[list[int]]:
    """Top ``depth`` chunk indexes per question."""
    from chunkctl.store.vectors import bm25_ranks, rrf

    pos = {cid: i for i, cid in enumerate(chunk_ids)}
    dense = lexical = None
    fetch = depth if opts.mode != "hybrid" else max(4 * depth, 50)
    if opts.memory != "none":
        if opts.mode != "vector":
            raise ValueError("--memory works with --mode vector")
        return [[pos[cid] for cid, _ in r] for r in _memory_ranked(store, opts, qvecs, strategy_id, chunk_ids, depth)]
    if opts.mode in ("vector", "hybrid"):
        vecs = _vectors(store, opts.embedder, strategy_id, chunk_ids)
        if opts.fusion != "none":
            from chunkctl.store.fusion import fusion_scores, metadata_matrix
            from chunkctl.store.memory import embed_memories

            embed_memories(store, opts.embedder, strategy_id)  # metadata blocks still without a vector
            meta = metadata_matrix(store, opts.embedder.model_id, strategy_id, chunk_ids, vecs.shape[1])
            scores = fusion_scores(qvecs, vecs, meta, opts.fusion, opts.alpha)
        else:
            scores = qvecs @ vecs.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :fetch]
        dense = [[(chunk_ids[j], float(scores[i, j])) for j in row] for i, row in enumerate(top)]
    if opts.mode in ("bm25", "hybrid"):
        lexical = [bm25_ranks(store, q, strategy_id, fetch) for q in questions]
    if opts.mode == "vector":
        ranked = dense
    elif opts.mode == "bm25":
        ranked = lexical
    else:
        ranked = [rrf([d, b], depth) for d, b in zip(dense, lexical)]
    return [[pos[cid] for cid, _ in r[:depth] if cid in pos] for r in ranked]


def _memory_ranked(store, opts: EvalOptions, qvecs, strategy_id: str, chunk_ids: list[str], depth: int):
    from chunkctl.store.memory import embed_memories, memory_vectors, rank_with_memory

    chunk_vecs = _vectors(store, opts.embedder, strategy_id, chunk_ids)
    embed_memories(store, opts.embedder, strategy_id)  # only entries still without a vector
    docs = dict(store.query("SELECT chunk_id, doc_id FROM chunks WHERE strategy_id = ?", [strategy_id]))
    mem_chunks, layers, mem_vecs = memory_vectors(store, opts.embedder.model_id, strategy_id)
    return rank_with_memory(qvecs, chunk_ids, [docs[c] for c in chunk_ids], chunk_vecs, mem_chunks, layers,
                            mem_vecs, opts.memory, depth)


def _chunkscores(chunks, opts: EvalOptions) -> dict[str, float]:
    """Mean over documents of ChunkScore and its parts; LI is MoC's boundary clarity."""
    from chunkctl.evaluate.chunkscore import chunk_score

    if opts.embedder is None:
        raise ValueError("--chunkscore needs an embedding model (semantic dispersion compares vectors)")
    by_doc: dict[str, list[str]] = {}
    for row in chunks:
        by_doc.setdefault(row[1], []).append(row[4])
    scores = [chunk_score(texts, opts.llm, opts.embedder) for texts in by_doc.values()]
    return {"chunkscore": float(np.mean([c.score for c in scores])),
            "chunkscore_li": float(np.mean([c.li for c in scores])),
            "chunkscore_sd": float(np.mean([c.sd for c in scores])),
            "chunkscore_single": sum(c.single_chunk for c in scores)}


def score_strategy(placed, chunks, ranked: list[list[int]], ks: Sequence[int | str]) -> dict[str, dict[str, list[float]]]:
    """Per-question metrics at each k (all pure range arithmetic)."""
    by_doc: dict[str, list[M.Span]] = {}
    for _, d, s, e, _, _ in chunks:
        by_doc.setdefault(d, []).append((s, e))
    out = {str(k): {m: [] for m in ("recall", "precision", "iou", "precision_omega", "hit", "mrr", "ndcg",
                                    "coverage")} for k in ks}
    for (q, doc_id, refs), top in zip(placed, ranked):
        doc_chunks = by_doc.get(doc_id, [])
        pomega, touching = M.precision_omega(refs, doc_chunks)
        coverage = M.covered_whole(refs, doc_chunks)
        n_relevant = sum(M.overlaps(c, refs) for c in doc_chunks)
        for k in ks:
            kk = min(touching, K_MIN_CAP) if k == K_MIN else int(k)
            got = [((chunks[i][2], chunks[i][3]), chunks[i][1] == doc_id) for i in top[:kk]]
            recall, precision, iou = M.retrieval_scores(refs, got)
            hit, rr, ndcg = M.rank_scores([same and M.overlaps(c, refs) for c, same in got], n_relevant)
            row = out[str(k)]
            for name, v in (("recall", recall), ("precision", precision), ("iou", iou), ("precision_omega", pomega),
                            ("hit", hit), ("mrr", rr), ("ndcg", ndcg), ("coverage", coverage)):
                row[name].append(v)
    return out


def evaluate(store, qa: QASet, opts: EvalOptions, corpus: Sequence[str] | None = None,
             exclude: Sequence[str] = ()) -> EvalReport:
    from chunkctl.pipeline import IngestOptions, ingest

    if opts.mode in ("vector", "hybrid") and opts.embedder is None:
        raise ValueError(f"--mode {opts.mode} needs an embedding model")
    if opts.fusion != "none" and (opts.mode != "vector" or opts.memory != "none"):
        raise ValueError("--fusion works with --mode vector and without --memory")
    chunkers = list(opts.chunkers)
    seconds: dict[str, dict[str, float]] = {}
    rejected: list[str] = []
    llm_stats: dict[str, Any] = {}
    if corpus:
        for ch in chunkers:  # one ingest per strategy, so each one's chunking and embedding are timed
            res = ingest(store, list(corpus), IngestOptions([ch], exclude=exclude, embedder=opts.embedder,
                                                            device=opts.device, llm=opts.llm_settings,
                                                            enrichment=opts.enrichment), command="eval")
            rejected += [f"{r.path}: rejected at {r.stage}: {r.reason}" for r in res.rejects
                         if f"{r.path}: rejected at {r.stage}: {r.reason}" not in rejected]
            embed_s = res.embedding.seconds if res.embedding is not None else 0.0
            # the embedding stage overlaps parsing and chunking; what is left is chunking and storing
            seconds[ch.strategy_id] = {"ingest_s": res.seconds, "embed_s": embed_s,
                                       "chunk_store_s": max(0.0, res.seconds - embed_s)}
            if res.llm is not None:
                llm_stats[ch.strategy_id] = res.llm
    elif opts.enrichment is not None:  # the stored chunks, enriched as asked
        from chunkctl.pipeline import enrich_store

        for ch in chunkers:
            if store.query("SELECT 1 FROM chunks WHERE strategy_id = ? LIMIT 1", [ch.strategy_id]):
                res = enrich_store(store, opts.enrichment, [ch.strategy_id], opts.embedder, opts.llm_settings,
                                   command="eval")
                rejected += [f"{r.path}: rejected at {r.stage}: {r.reason}" for r in res.rejects]
                if res.llm is not None:
                    llm_stats[ch.strategy_id] = res.llm
    docs = corpus_documents(store, corpus)
    placed, problems = place_questions(qa, docs, corpus or [])
    problems = rejected + problems
    if not placed:
        raise ValueError("no question of the QA set could be placed in the corpus: "
                         + "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))
    questions = [q.question for q, _, _ in placed]
    qvecs = opts.embedder.embed(questions) if opts.mode != "bm25" and questions else None
    depth = max([K_MIN_CAP if k == K_MIN else int(k) for k in opts.ks] or [5])
    doc_ids = set(docs)
    results = []
    for ch in chunkers:
        sid = ch.strategy_id
        chunks = _chunks(store, sid, doc_ids, docs, opts.locate)
        if not chunks:
            raise ValueError(f"no chunks of {ch.spec} in the store for this corpus (ingest it, or pass --corpus)")
        t0 = time.perf_counter()
        ranked = _ranked(store, opts, qvecs, questions, sid, [c[0] for c in chunks], depth)
        retrieve_s = time.perf_counter() - t0
        per_q = score_strategy(placed, chunks, ranked, opts.ks)
        sizes = np.array([c[5] or 0 for c in chunks])
        cstats = {"chunks": len(chunks), "tokens_mean": float(sizes.mean()), "tokens_p50": float(np.median(sizes)),
                  "tokens_p95": float(np.percentile(sizes, 95)), "tokens_max": int(sizes.max()),
                  "chars_mean": float(np.mean([c[3] - c[2] for c in chunks]))}
        secs = {**seconds.get(sid, {}), "retrieve_s": retrieve_s}
        if sid in llm_stats:  # what chunking cost in model calls (zero on a re-run: the chunks are stored)
            st = llm_stats[sid]
            cstats.update({"llm_calls": st.calls, "llm_tokens": st.tokens,
                           "llm_fallbacks": sum(st.fallbacks.values())})
        if opts.intrinsic:
            from chunkctl.evaluate.intrinsic import intrinsic_scores

            if opts.embedder is None:
                raise ValueError("--intrinsic needs an embedding model (ICC and DCC compare vectors)")
            cstats.update({f"intrinsic_{k}": v for k, v in intrinsic_scores(docs, chunks, opts.embedder.embed).items()})
        if opts.llm is not None:
            cstats.update(_chunkscores(chunks, opts))
        rows = []
        for k in opts.ks:
            row = {"strategy": ch.spec, "strategy_id": sid, "k": str(k), "questions": len(placed),
                   "mode": opts.mode, "memory": opts.memory, "locate": opts.locate,
                   "enrich": opts.enrichment.label if opts.enrichment is not None else "as stored",
                   "fusion": opts.fusion if opts.fusion == "none" else f"{opts.fusion}:alpha={opts.alpha:g}",
                   "model": getattr(opts.embedder, "model_id", None)}
            for name, vals in per_q[str(k)].items():
                row[name], row[name + "_std"] = M.mean_std(vals)
            rows.append({**row, **cstats, **secs})
        results.append(StrategyResult(ch.spec, sid, rows, per_q, cstats, secs, sizes.tolist(), llm_stats.get(sid)))
    report = EvalReport(results, len(placed), problems, opts.mode, opts.locate,
                        getattr(opts.embedder, "model_id", None),
                        question_docs=[Path(docs[d][0]).name for _, d, _ in placed])
    if opts.baseline is not None:
        report.baseline = opts.baseline.spec
        base = next(r for r in results if r.strategy_id == opts.baseline.strategy_id)
        for r in results:
            if r is base:
                continue
            for k in opts.ks:
                for metric in ("recall", "iou", "precision"):
                    report.paired.append({"strategy": r.spec, "k": str(k), "metric": metric,
                                          **M.paired(r.per_question[str(k)][metric], base.per_question[str(k)][metric])})
    return report
