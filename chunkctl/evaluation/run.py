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

from chunkctl.evaluation import metrics as M
from chunkctl.evaluation.qa import QASet, Question, place
from chunkctl.retrieval import ChunkTable, Retrieval, rank

K_MIN = "min"  # k = the number of chunks that touch the question's references (capped at 20)
K_MIN_CAP = 20
LOCATES = ("offsets", "find")


@dataclass(frozen=True)
class EvalOptions:
    chunkers: Sequence[Any]  # Chunker instances; a baseline, when given, is among them
    ks: Sequence[int | str] = (5,)
    retrieval: Retrieval = Retrieval()  # what search does with the same settings (chunkctl.retrieval)
    locate: str = "offsets"
    embedder: Any = None  # needed for vector and hybrid
    baseline: Any = None  # a Chunker: paired statistics of every other strategy against it
    device: str = "auto"
    intrinsic: bool = False  # Adaptive Chunking's SC, ICC, DCC, BI (RC unavailable offline)
    llm: Any = None  # a chunkctl.llm.LLM: with it, ChunkScore per document (QChunker) is reported
    llm_settings: Any = None  # chunkctl.llm.LLMSettings for LLM chunkers; None: the defaults
    enrichment: Any = None  # chunkctl.enrich.Enrichment applied to every strategy's chunks; None: as stored
    reranker: Any = None  # a chunkctl.rerank.LLMReranker, for --rerank llm


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
    returned: list[list[dict]] = field(default_factory=list)  # per question: what retrieval returned, best first


@dataclass
class EvalReport:
    strategies: list[StrategyResult]
    n_questions: int
    problems: list[str]  # references moved or not placed, questions left out
    retrieval: Retrieval
    locate: str
    model_id: str | None
    baseline: str | None = None
    paired: list[dict] = field(default_factory=list)
    question_docs: list[str] = field(default_factory=list)  # each scored question's document (file name)
    questions: list[str] = field(default_factory=list)  # each scored question's text

    @property
    def mode(self) -> str:
        return self.retrieval.mode

    def rows(self) -> list[dict]:
        return [r for s in self.strategies for r in s.rows]


def corpus_documents(store, under: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
    """{doc_id: (path, text)} of the store (or of the documents under the given folders)."""
    from chunkctl.store.catalog import documents

    rows = documents(store, with_text=True)
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


def _located(table: ChunkTable, docs, locate: str) -> list[M.Span]:
    """Each chunk's span as scored: its true offsets, or the first occurrence of its text (``find``)."""
    if locate != "find":
        return list(table.spans)
    out = []
    for d, t, span in zip(table.docs, table.texts, table.spans):
        s = docs[d][1].find(t) if d in docs else -1
        out.append((s, s + len(t)) if s >= 0 else span)
    return out


def result_spans(results, table: ChunkTable, located: Sequence[M.Span]) -> list[tuple[str, M.Span]]:
    """(doc_id, span) of each result, its chunks placed as ``located`` says."""
    out = []
    for res in results:
        ps = [table.pos[c] for c in res.chunk_ids]
        out.append((res.doc_id, (min(located[p][0] for p in ps), max(located[p][1] for p in ps))))
    return out


def _chunkscores(chunks, opts: EvalOptions) -> dict[str, float]:
    """Mean over documents of ChunkScore and its parts; LI is MoC's boundary clarity."""
    from chunkctl.evaluation.chunkscore import chunk_score

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


def score_strategy(placed, chunks: dict[str, list[M.Span]], ranked: Sequence[Sequence[tuple[str, M.Span]]],
                   ks: Sequence[int | str]) -> dict[str, dict[str, list[float]]]:
    """Per-question metrics at each k (all pure range arithmetic): ``chunks`` are each document's
    chunk spans, ``ranked`` each question's returned (doc_id, span), best first."""
    out = {str(k): {m: [] for m in ("recall", "precision", "iou", "precision_omega", "hit", "mrr", "ndcg",
                                    "coverage")} for k in ks}
    for (q, doc_id, refs), top in zip(placed, ranked):
        doc_chunks = chunks.get(doc_id, [])
        pomega, touching = M.precision_omega(refs, doc_chunks)
        coverage = M.covered_whole(refs, doc_chunks)
        n_relevant = sum(M.overlaps(c, refs) for c in doc_chunks)
        for k in ks:
            kk = min(touching, K_MIN_CAP) if k == K_MIN else int(k)
            got = [(span, d == doc_id) for d, span in top[:kk]]
            recall, precision, iou = M.retrieval_scores(refs, got)
            hit, rr, ndcg = M.rank_scores([same and M.overlaps(c, refs) for c, same in got], n_relevant)
            row = out[str(k)]
            for name, v in (("recall", recall), ("precision", precision), ("iou", iou), ("precision_omega", pomega),
                            ("hit", hit), ("mrr", rr), ("ndcg", ndcg), ("coverage", coverage)):
                row[name].append(v)
    return out


def evaluate(store, qa: QASet, opts: EvalOptions, corpus: Sequence[str] | None = None,
             exclude: Sequence[str] = ()) -> EvalReport:
    """Chunk (with ``corpus``) and rank every strategy of ``opts`` on ``qa``; progress: an "eval"
    step with one unit per strategy chunked and one per strategy ranked."""
    from chunkctl import progress

    if opts.retrieval.dense and opts.embedder is None:
        raise ValueError(f"--mode {opts.retrieval.mode} needs an embedding model")
    chunkers = list(opts.chunkers)

    with progress.step("eval", 2 * len(chunkers)) as step:
        return _evaluate(store, qa, opts, corpus, exclude, chunkers, step)


def _evaluate(store, qa: QASet, opts: EvalOptions, corpus, exclude, chunkers, step) -> EvalReport:
    from chunkctl.pipeline import IngestOptions, ingest

    r = opts.retrieval
    seconds: dict[str, dict[str, float]] = {}
    rejected: list[str] = []
    llm_stats: dict[str, Any] = {}
    if corpus:
        for ch in chunkers:  # one ingest per strategy, so each one's chunking and embedding are timed
            step.advance(0, f"chunk and embed {ch.spec}")
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
            step.advance()
    elif opts.enrichment is not None:  # the stored chunks, enriched as asked
        from chunkctl.pipeline import enrich_store
        from chunkctl.store.catalog import has_chunks

        for ch in chunkers:
            if has_chunks(store, ch.strategy_id):
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
    qvecs = opts.embedder.embed(questions) if r.dense and questions else None
    depth = max([K_MIN_CAP if k == K_MIN else int(k) for k in opts.ks] or [5])
    doc_ids = set(docs)
    results = []
    step.update(done=len(chunkers))
    for ch in chunkers:
        step.advance(0, f"rank with {ch.spec}")
        sid = ch.strategy_id
        table = ChunkTable(store, sid)
        inside = [p for p, d in enumerate(table.docs) if d in doc_ids]
        if not inside:
            raise ValueError(f"no chunks of {ch.spec} in the store for this corpus (ingest it, or pass --corpus)")
        if r.dense:
            from chunkctl.store.vectors import embed_chunks

            embed_chunks(store, opts.embedder, sid)  # only chunks still without a vector
        located = _located(table, docs, opts.locate)
        by_doc: dict[str, list[M.Span]] = {}
        for p in inside:
            by_doc.setdefault(table.docs[p], []).append(located[p])
        t0 = time.perf_counter()
        found = rank(store, questions, depth, r, sid, opts.embedder, opts.reranker, table=table, qvecs=qvecs)
        retrieve_s = time.perf_counter() - t0
        per_q = score_strategy(placed, by_doc, [result_spans(res, table, located) for res in found], opts.ks)
        chunks = [(table.ids[p], table.docs[p], *located[p], table.texts[p], table.tokens[p]) for p in inside]
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
            from chunkctl.evaluation.intrinsic import intrinsic_scores

            if opts.embedder is None:
                raise ValueError("--intrinsic needs an embedding model (ICC and DCC compare vectors)")
            cstats.update({f"intrinsic_{k}": v for k, v in intrinsic_scores(docs, chunks, opts.embedder.embed).items()})
        if opts.llm is not None:
            cstats.update(_chunkscores(chunks, opts))
        rows = []
        for k in opts.ks:
            row = {"strategy": ch.spec, "strategy_id": sid, "k": k, "questions": len(placed),
                   "mode": r.mode, "retrieval": r.label(), "memory": r.memory, "locate": opts.locate,
                   "enrich": opts.enrichment.label if opts.enrichment is not None else "as stored",
                   "fusion": r.fusion if r.fusion == "none" else f"{r.fusion}:alpha={r.alpha:g}",
                   "model": getattr(opts.embedder, "model_id", None)}
            for name, vals in per_q[str(k)].items():
                row[name], row[name + "_std"] = M.mean_std(vals)
            rows.append({**row, **cstats, **secs})
        returned = [[{"chunk_id": res.chunk_id, "char_start": s, "char_end": e, "score": res.score, "doc": d}
                     for res, (d, (s, e)) in zip(q, result_spans(q, table, located))] for q in found]
        results.append(StrategyResult(ch.spec, sid, rows, per_q, cstats, secs, sizes.tolist(), llm_stats.get(sid),
                                      returned))
        step.advance()
    report = EvalReport(results, len(placed), problems, r, opts.locate,
                        getattr(opts.embedder, "model_id", None),
                        question_docs=[Path(docs[d][0]).name for _, d, _ in placed], questions=questions)
    if opts.baseline is not None:
        report.baseline = opts.baseline.spec
        base = next(r for r in results if r.strategy_id == opts.baseline.strategy_id)
        for r in results:
            if r is base:
                continue
            for k in opts.ks:
                for metric in ("recall", "iou", "precision"):
                    report.paired.append({"strategy": r.spec, "k": k, "metric": metric,
                                          **M.paired(r.per_question[str(k)][metric], base.per_question[str(k)][metric])})
    return report
