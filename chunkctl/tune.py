"""``chunkctl tune``: find the chunking and retrieval settings that answer *your* questions best.

Every candidate strategy is ingested and embedded once (through the store, so a re-run reuses its
chunks and vectors: tuning resumes where it stopped); each question's dense and BM25 candidates are
computed once per strategy, and every retrieval setting of the grid is ranked from them without
the store. The questions are split, seeded, into a tuning part and a held-out part: the winner is
the configuration with the best ``metric`` at ``k`` on the tuning part among those that return at
most ``context`` tokens per question on average (the context a question costs a prompt); it is then
compared with the built-in default and with BM25 on the held-out part only, question by question
(paired bootstrap 95% intervals), so the report does not reward the search itself.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from chunkctl.chunkers import DEFAULT_SPEC
from chunkctl.evaluation import metrics as M
from chunkctl.evaluation.run import corpus_documents, place_questions, result_spans, score_strategy
from chunkctl.retrieval import PLAIN, ChunkTable, Retrieval, candidates, finish

# The default search space: chunk sizes around the embedder's window, three ways to split, and the
# retrieval settings that matter (measured: BM25's k1/b and the candidate depth move recall < 0.5).
CHUNKERS = ("recursive:size=64", "recursive:size=96", "recursive:size=128", "recursive:size=192", "recursive",
            "sentence:size=96", "structure:size=96")
RETRIEVALS = (Retrieval(), Retrieval(mode="vector"), Retrieval(mode="bm25"), Retrieval(combine="rrf"),
              Retrieval(dense_weight=0.2), Retrieval(dense_weight=0.6), Retrieval(neighbour_weight=0.0),
              Retrieval(expand=0), Retrieval(expand=3, expand_ratio=0.2), Retrieval(expand=3, expand_ratio=0.5),
              Retrieval(cutoff="k"), Retrieval(cutoff_gap=0.25), Retrieval(cutoff_gap=0.5),
              Retrieval(mode="vector", **PLAIN), Retrieval(mode="bm25", **PLAIN), Retrieval(**PLAIN))
METRICS = ("recall", "iou", "precision", "ndcg", "mrr", "hit")

CONTEXT = 1000  # tokens a question may cost on average (k results together)


@dataclass(frozen=True)
class TuneOptions:
    chunkers: Sequence[Any]  # Chunker instances
    retrievals: Sequence[Retrieval] = RETRIEVALS
    k: int = 5
    metric: str = "recall"
    then: str | None = "iou"  # among those not significantly below the best metric, the best of this one
    context: int = CONTEXT
    test_share: float = 0.3
    seed: int = 0
    budget_s: float | None = None  # stop ingesting new strategies after this long
    embedder: Any = None
    device: str = "auto"
    llm_settings: Any = None


@dataclass
class Config:
    spec: str
    strategy_id: str
    retrieval: Retrieval
    per_question: dict[str, list[float]]  # metric -> one value per placed question
    tokens: list[float]  # tokens returned per question

    def mean(self, metric: str, idx: Sequence[int]) -> float:
        return float(np.mean([self.per_question[metric][i] for i in idx])) if len(idx) else float("nan")

    def mean_tokens(self, idx: Sequence[int]) -> float:
        return float(np.mean([self.tokens[i] for i in idx])) if len(idx) else 0.0


@dataclass
class TuneReport:
    configs: list[Config]
    train: list[int]
    test: list[int]
    winner: Config | None
    default: Config | None
    paired: list[dict] = field(default_factory=list)  # winner against the default and BM25, held out
    skipped: list[str] = field(default_factory=list)  # strategies the budget left out
    problems: list[str] = field(default_factory=list)
    options: TuneOptions | None = None

    def ranked(self) -> list[Config]:
        """Every configuration, best first on the tuning part (those over the context budget last)."""
        o = self.options
        return sorted(self.configs, key=lambda c: (c.mean_tokens(self.train) > o.context,
                                                   -c.mean(o.metric, self.train), c.mean_tokens(self.train)))


def split(n: int, test_share: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of ``n`` question indexes into (tuning, held-out); both keep at least one."""
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    n_test = min(max(1, round(n * test_share)), n - 1) if n > 1 else 0
    return sorted(idx[n_test:]), sorted(idx[:n_test])


def tune(store, qa, corpus: Sequence[str], opts: TuneOptions, exclude: Sequence[str] = ()) -> TuneReport:
    """Search ``opts.chunkers`` × ``opts.retrievals`` on the QA set (progress: a "tune" step with
    one unit per strategy chunked and embedded, and one per strategy ranked)."""
    from chunkctl import progress
    from chunkctl.chunkers import parse_spec
    from chunkctl.pipeline import IngestOptions, ingest

    if opts.metric not in METRICS:
        raise ValueError(f"--metric must be one of {', '.join(METRICS)}")
    if opts.embedder is None and any(r.dense for r in opts.retrievals):
        raise ValueError("tuning dense and hybrid retrieval needs an embedding model")
    chunkers = list(opts.chunkers)
    default = parse_spec(DEFAULT_SPEC)  # the built-in default, which the winner is compared with
    if default.strategy_id not in {c.strategy_id for c in chunkers}:
        chunkers.append(default)  # the held-out comparison needs it
    t0 = time.monotonic()
    problems: list[str] = []
    skipped: list[str] = []
    done: list[Any] = []
    with progress.step("tune", 2 * len(chunkers)) as tuning:
        for ch in chunkers:
            tuning.advance(0, f"chunk and embed {ch.spec}")
            if opts.budget_s is not None and time.monotonic() - t0 > opts.budget_s and ch is not default:
                skipped.append(ch.spec)
                tuning.advance(2)
                continue
            res = ingest(store, list(corpus), IngestOptions([ch], exclude=exclude, embedder=opts.embedder,
                                                            device=opts.device, llm=opts.llm_settings), command="tune")
            problems += [f"{r.path}: rejected at {r.stage}: {r.reason}" for r in res.rejects]
            done.append(ch)
            tuning.advance()
        docs = corpus_documents(store, corpus)
        placed, moved = place_questions(qa, docs, corpus)
        if len(placed) < 2:
            raise ValueError("tuning needs at least two questions placed in the corpus")
        train, test = split(len(placed), opts.test_share, opts.seed)
        questions = [q.question for q, _, _ in placed]
        qvecs = opts.embedder.embed(questions) if opts.embedder is not None else None
        widest = replace(Retrieval(), mode="hybrid" if opts.embedder is not None else "bm25",
                         depth=max(r.depth for r in opts.retrievals))
        configs = []
        for ch in done:
            tuning.advance(0, f"rank with {ch.spec}")
            configs += measure(store, ch, placed, questions, qvecs, opts.retrievals, opts.k, docs, opts.embedder,
                               widest)
            tuning.advance()
    report = TuneReport(configs, train, test, None, None, skipped=skipped, problems=problems + moved, options=opts)
    report.winner = choose([c for c in report.ranked() if c.mean_tokens(train) <= opts.context], train, opts)
    report.default = next((c for c in configs if c.strategy_id == default.strategy_id and c.retrieval == Retrieval()),
                          None)
    bm25 = next((c for c in configs if report.winner and c.strategy_id == report.winner.strategy_id
                 and c.retrieval == Retrieval(mode="bm25", **PLAIN)), None)  # plain BM25 over the same chunks
    if report.winner is not None:
        for label, base in (("default", report.default), ("bm25", bm25)):
            if base is None or base is report.winner:
                continue
            for metric in ("recall", "iou"):
                ours = [report.winner.per_question[metric][i] for i in test]
                theirs = [base.per_question[metric][i] for i in test]
                report.paired.append({"against": label, "config": _label(base), "metric": metric,
                                      **M.paired(ours, theirs)})
    return report


def choose(ranked: Sequence[Config], train: Sequence[int], opts: TuneOptions) -> Config | None:
    """The best ``opts.metric`` on the tuning questions; with ``opts.then``, the best ``then`` among
    every configuration whose metric is not significantly below that best's (the paired bootstrap
    95% interval of the difference reaches 0): a recall that only noise separates is no reason to
    return a less precise context."""
    if not ranked:
        return None
    best = ranked[0]
    if opts.then is None:
        return best
    top = [best.per_question[opts.metric][i] for i in train]
    tied = [c for c in ranked
            if M.paired([c.per_question[opts.metric][i] for i in train], top, n_boot=2000)["ci95"][1] >= 0]
    return max(tied, key=lambda c: (c.mean(opts.then, train), c.mean(opts.metric, train)))


def measure(store, ch, placed, questions: Sequence[str], qvecs, retrievals: Sequence[Retrieval], k: int, docs,
            embedder=None, widest: Retrieval | None = None) -> list[Config]:
    """Every question's metrics at ``k`` under each retrieval setting, for one stored strategy: the
    candidates are computed once (as ``widest`` asks) and ranked for each setting from them."""
    widest = widest or replace(Retrieval(), depth=max(r.depth for r in retrievals))
    table = ChunkTable(store, ch.strategy_id)
    by_doc: dict[str, list[M.Span]] = {}
    for p, d in enumerate(table.docs):
        if d in docs:
            by_doc.setdefault(d, []).append(table.spans[p])
    cands = candidates(store, table, questions, widest, embedder, qvecs)
    out = []
    for r in retrievals:
        if r.dense and embedder is None:
            continue
        found = finish(table, questions, cands, k, r)
        per_q = score_strategy(placed, by_doc, [result_spans(res, table, table.spans) for res in found], [k])[str(k)]
        tokens = [float(sum(table.tokens[table.pos[c]] or 0 for res in q for c in res.chunk_ids)) for q in found]
        out.append(Config(ch.spec, ch.strategy_id, r, per_q, tokens))
    return out


def _label(c: Config) -> str:
    return f"{c.spec} · {c.retrieval.label()}"


# -- chunkctl.toml ---------------------------------------------------------------------------------
def config_values(c: Config) -> dict[str, Any]:
    """The winner as chunkctl.toml's top-level keys (option names): the chunker for ingest and
    eval, the retrieval options for search and eval."""
    return {"chunker": [c.spec], **c.retrieval.as_dict()}


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)  # a TOML basic string is a JSON string


def write_config(path, values: dict[str, Any], note: str) -> None:
    """Set ``values`` as top-level keys of the TOML file at ``path``, keeping its other keys and
    tables (comments are not kept)."""
    import tomllib
    from pathlib import Path

    p = Path(path)
    old = tomllib.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    lines = [f"# {line}" for line in note.splitlines()]

    def emit(table: dict[str, Any], name: str | None) -> None:
        if name is not None:
            lines.extend(["", f"[{name}]"])
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict))
        for k, v in table.items():
            if isinstance(v, dict):
                emit(v, f"{name}.{k}" if name else k)

    emit({k: v for k, v in old.items() if not isinstance(v, dict)} | values
         | {k: v for k, v in old.items() if isinstance(v, dict)}, None)
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
