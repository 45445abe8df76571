"""Retrieval, once, for ``search``, ``eval`` and ``tune``: a frozen ``Retrieval`` of every option,
validated when it is made, and ``rank(store, queries, k, retrieval)``, which both commands call
(eval with many queries at once, so the dense side is one matrix product).

The steps, each optional but the first:

1. **candidates**: the dense side (exact cosine over the strategy's vectors, an HNSW index, MoM's
   memory layers, or text and metadata vectors fused: ``store/fusion.py``) and the lexical side
   (BM25), ``depth`` of each, independent of ``k``;
2. **combine** (``mode=hybrid``): ``score`` fusion (each side min–max normalised per query, then
   ``dense_weight``·dense + (1 − ``dense_weight``)·BM25, plus ``neighbour_weight`` × the better
   neighbouring chunk's fused score) or ``rrf``;
3. **rerank** the best ``rerank_depth`` with the LLM layer (``chunkctl.rerank``);
4. **widen** each hit by ``expand`` neighbouring chunks of its document and merge touching spans,
   so a small retrieval unit can return a larger exact span;
5. **cut**: ``k`` results, or SAGE's relevance-drop rule over them.

A result is an exact span of its document (``doc.text[char_start:char_end]``); eval scores exactly
those spans.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

from chunkctl import ranking

# Okapi BM25's parameters: DuckDB fts's defaults and Lucene's (tests/test_retrieval.py checks the
# store's scores against an independent implementation of the formula on the same chunks)
BM25_K1 = 1.2
BM25_B = 0.75

MODES = ("vector", "bm25", "hybrid")
COMBINES = ("score", "rrf")
INDEXES = ("exact", "hnsw")
CUTOFFS = ("k", "sage")
MEMORY_MODES = ("none", "mixed", "per-layer")
FUSIONS = ("none", "unified", "late")
RERANKS = ("none", "llm")
# the top k chunks as ranked, nothing around them and no cut-off: what most retrievers return, and
# what published benchmarks (Chroma's) measured
PLAIN = {"neighbour_weight": 0.0, "expand": 0, "cutoff": "k"}


@dataclass(frozen=True)
class Retrieval:
    """Every retrieval option; the field names are the CLI's option names (``--combine``, …) and
    the keys of ``chunkctl.toml``. Invalid combinations raise ``ValueError`` here, once."""
    mode: str = "hybrid"
    combine: str = "score"  # how hybrid joins its sides
    dense_weight: float = 0.4  # the dense side's share in score fusion
    neighbour_weight: float = 0.3  # the share of its better neighbour's score a chunk gets
    depth: int = 50  # candidates from each side before combining (at least k)
    bm25_k1: float = BM25_K1
    bm25_b: float = BM25_B
    index: str = "exact"
    memory: str = "none"
    fusion: str = "none"  # text and metadata vectors (enrichment)
    alpha: float = 0.7  # the text vector's share in --fusion
    rerank: str = "none"
    rerank_depth: int = 20
    expand: int = 3  # neighbouring chunks a hit may take on either side ...
    expand_ratio: float = 0.35  # ... each scoring at least this share of the hit's score
    cutoff: str = "sage"
    cutoff_gap: float = 0.35  # sage: stop before the first relative drop in score larger than this

    def __post_init__(self):
        for name, allowed in (("mode", MODES), ("combine", COMBINES), ("index", INDEXES), ("cutoff", CUTOFFS),
                              ("memory", MEMORY_MODES), ("fusion", FUSIONS), ("rerank", RERANKS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")
        if not all(0.0 <= x <= 1.0 for x in (self.dense_weight, self.neighbour_weight, self.alpha, self.bm25_b,
                                             self.expand_ratio, self.cutoff_gap)):
            raise ValueError("--dense-weight, --neighbour-weight, --alpha, --bm25-b, --expand-ratio and --cutoff-gap "
                             "must be between 0 and 1")
        if self.depth < 1 or self.rerank_depth < 1 or self.expand < 0 or self.bm25_k1 < 0:
            raise ValueError("--depth and --rerank-depth must be positive, --expand and --bm25-k1 not negative")
        dense_only = [f"--{n} {getattr(self, n)}" for n in ("memory", "fusion") if getattr(self, n) != "none"]
        if self.index != "exact":
            dense_only.append(f"--index {self.index}")
        if self.mode == "bm25" and dense_only:
            raise ValueError(f"{dense_only[0]} shapes the dense side: use it with --mode vector or hybrid")
        if self.index != "exact" and (self.memory != "none" or self.fusion != "none"):
            raise ValueError("--memory and --fusion score exact vectors: use them with --index exact")
        if self.memory != "none" and self.fusion != "none":
            raise ValueError("--memory and --fusion are two ways to score the dense side: choose one")

    @property
    def dense(self) -> bool:
        return self.mode != "bm25"

    @property
    def lexical(self) -> bool:
        return self.mode != "vector"

    def label(self) -> str:
        """A short description of the settings that differ from plain ``mode``, for reports."""
        parts = [self.mode]
        if self.mode == "hybrid":
            parts.append(self.combine + (f" w={self.dense_weight:g}" if self.combine == "score" else ""))
        if self.neighbour_weight:
            parts.append(f"n={self.neighbour_weight:g}")
        for name in ("memory", "fusion", "rerank"):
            if getattr(self, name) != "none":
                parts.append(f"{name}={getattr(self, name)}")
        if self.fusion != "none":
            parts.append(f"alpha={self.alpha:g}")
        if self.index != "exact":
            parts.append(f"index={self.index}")
        if self.expand:
            parts.append(f"expand={self.expand}" + (f"@{self.expand_ratio:g}" if self.expand_ratio else ""))
        if self.cutoff != "k":
            parts.append(f"cutoff={self.cutoff}@{self.cutoff_gap:g}")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Result:
    """One returned span, ``char_start``..``char_end`` of its document: the consecutive chunks
    ``chunk_ids`` (one, or a hit with the neighbours it took in), ranked by ``score``; ``chunk_id``
    is the hit that brought it."""
    chunk_id: str
    score: float
    doc_id: str
    strategy_id: str
    char_start: int
    char_end: int
    chunk_ids: list[str] = field(default_factory=list)


class ChunkTable:
    """One strategy's chunks (every strategy's with None) in document order, loaded once per
    ``rank``; the vector matrix is read on first use."""

    def __init__(self, store, strategy: str | None):
        from chunkctl.store import index as ix

        self.store, self.strategy = store, strategy
        rows = ix.chunk_table(store, strategy)
        self.ids = [r[0] for r in rows]
        self.docs = [r[1] for r in rows]
        self.strategies = [r[2] for r in rows]
        self.groups = list(zip(self.docs, self.strategies))  # neighbours: same document and strategy
        self.spans = [(r[3], r[4]) for r in rows]
        self.tokens = [r[5] for r in rows]
        self.pos = {cid: i for i, cid in enumerate(self.ids)}
        self._vectors: dict[str, Any] = {}
        self._texts: list[str] | None = None

    @property
    def texts(self) -> list[str]:
        """The chunks' texts, read on first use (reranking and eval need them; search does not)."""
        if self._texts is None:
            from chunkctl.store import index as ix

            self._texts = ix.chunk_texts(self.store, self.strategy)
        return self._texts

    def __len__(self) -> int:
        return len(self.ids)

    def vectors(self, store, model_id: str):
        """(n, d) unit vectors in table order; rows of chunks without a vector are zero."""
        if model_id not in self._vectors:
            import numpy as np

            from chunkctl.store import index as ix

            ids, mat = ix.vector_matrix(store, model_id, self.strategy)
            out = np.zeros((len(self.ids), mat.shape[1] if len(ids) else 0), dtype=np.float32)
            for i, cid in enumerate(ids):
                if (p := self.pos.get(cid)) is not None:
                    out[p] = mat[i]
            self._vectors[model_id] = out
        return self._vectors[model_id]


@dataclass
class Candidates:
    """Each query's dense and lexical lists (``(position, score)``, best first), from which any
    setting of combine, weight, rerank, expand and cut-off can be ranked without the store."""
    dense: list[list[tuple[int, float]]] | None
    lexical: list[list[tuple[int, float]]] | None
    dense_of: Any = None  # (query i) -> (position -> exact cosine), when the dense side is exact cosine


def candidates(store, table: ChunkTable, queries: Sequence[str], r: Retrieval, embedder=None,
               qvecs=None) -> Candidates:
    """Both sides' top ``r.depth`` for every query (``qvecs``: the queries' vectors, when known)."""
    import numpy as np

    from chunkctl.store import index as ix

    dense = lexical = dense_of = None
    if r.dense:
        if embedder is None:
            raise ValueError(f"--mode {r.mode} needs an embedding model")
        if not len(table):
            return Candidates([[] for _ in queries], [[] for _ in queries] if r.lexical else None)
        qv = np.asarray(embedder.embed(list(queries)) if qvecs is None else qvecs, dtype=np.float32)
        dense, dense_of = _dense(store, table, qv, r, embedder)
    if r.lexical:
        lists = ix.bm25_ranks(store, queries, table.strategy, r.depth, r.bm25_k1, r.bm25_b)
        lexical = [[(table.pos[c], s) for c, s in ranked if c in table.pos] for ranked in lists]
    return Candidates(dense, lexical, dense_of)


def _dense(store, table: ChunkTable, qv, r: Retrieval, embedder):
    import numpy as np

    from chunkctl.store import index as ix

    model_id = embedder.model_id
    if r.index == "hnsw":
        lists = [ix.hnsw_ranks(store, q, model_id, table.strategy, r.depth) for q in qv]
        return [[(table.pos[c], s) for c, s in ranked if c in table.pos] for ranked in lists], None
    vecs = table.vectors(store, model_id)
    if r.memory != "none":
        from chunkctl.store.memory import embed_memories, memory_vectors, rank_with_memory

        embed_memories(store, embedder, table.strategy)  # entries stored without a vector
        mem_chunks, layers, mem_vecs = memory_vectors(store, model_id, table.strategy)
        lists = rank_with_memory(qv, table.ids, table.docs, vecs, mem_chunks, layers, mem_vecs, r.memory, r.depth)
        return [[(table.pos[c], s) for c, s in ranked] for ranked in lists], None
    if r.fusion != "none":
        from chunkctl.store.fusion import fusion_scores, metadata_matrix
        from chunkctl.store.memory import embed_memories

        embed_memories(store, embedder, table.strategy)  # metadata blocks stored without a vector
        meta = metadata_matrix(store, model_id, table.strategy, table.ids, vecs.shape[1])
        scores = fusion_scores(qv, vecs, meta, r.fusion, r.alpha)
    else:
        scores = qv @ vecs.T
    depth = min(r.depth, scores.shape[1])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth] if depth < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (len(qv), 1))
    lists = []
    for i, row in enumerate(top):
        order = sorted(row.tolist(), key=lambda j: (-scores[i, j], j))
        lists.append([(j, float(scores[i, j])) for j in order])
    return lists, (lambda i: (lambda p: scores[i, p]))


def combine(c: Candidates, r: Retrieval, i: int, groups) -> list[tuple[int, float]]:
    """Query ``i``'s ranking under ``r`` (its mode, combine and weights; lists cut to ``r.depth``);
    ``groups``: each position's (document, strategy), which says who its neighbours are."""
    dense = c.dense[i][:r.depth] if c.dense is not None else []
    lexical = c.lexical[i][:r.depth] if c.lexical is not None else []
    dense_of = c.dense_of(i) if c.dense_of is not None else None
    if r.mode == "vector":
        fused = ranking.convex(dense, [], 1.0, dense_of)
    elif r.mode == "bm25":
        fused = ranking.convex([], lexical, 0.0)
    elif r.combine == "rrf":
        fused = ranking.scaled(ranking.rrf([dense, lexical]))
    else:
        fused = ranking.convex(dense, lexical, r.dense_weight, dense_of)
    return ranking.with_neighbours(fused, groups, r.neighbour_weight)


def finish(table: ChunkTable, queries: Sequence[str], c: Candidates, k: int, r: Retrieval,
           reranker=None) -> list[list[Result]]:
    """Every query's results from its candidates: combine, rerank, widen, cut."""
    out = []
    ranked_all = [combine(c, r, i, table.groups) for i in range(len(queries))]
    if r.rerank != "none":
        if reranker is None:
            raise ValueError("--rerank llm needs the LLM layer")
        ranked_all = reranker.rerank(queries, [[table.texts[p] for p, _ in rk[:r.rerank_depth]] for rk in ranked_all],
                                     ranked_all, r.rerank_depth)
    for ranked in ranked_all:
        runs = ranking.widen(ranked, table.groups, k, r.expand, r.expand_ratio)
        if r.cutoff == "sage":
            runs = runs[:ranking.sage_cutoff([s for _, _, s in runs], r.cutoff_gap)]
        out.append([Result(table.ids[_hit(ranked, lo, hi)], float(score), table.docs[lo], table.strategies[lo],
                           table.spans[lo][0],
                           max(table.spans[p][1] for p in range(lo, hi + 1)), table.ids[lo:hi + 1])
                    for lo, hi, score in runs])
    return out


def _hit(ranked, lo: int, hi: int) -> int:
    """The best-ranked position inside a run (the hit that brought it)."""
    return next((p for p, _ in ranked if lo <= p <= hi), lo)


def rank(store, queries: Sequence[str], k: int, r: Retrieval, strategy: str | None = None, embedder=None,
         reranker=None, table: ChunkTable | None = None, qvecs=None) -> list[list[Result]]:
    """The top ``k`` results of every query over one strategy's chunks (None: all strategies)."""
    from chunkctl.store import index as ix

    table = table or ChunkTable(store, ix.resolve_strategy(store, strategy))
    r = replace(r, depth=max(r.depth, k, r.rerank_depth if r.rerank != "none" else 0))
    return finish(table, queries, candidates(store, table, queries, r, embedder, qvecs), k, r, reranker)


@dataclass
class Hit:
    """A result as ``search`` shows it."""
    chunk_id: str
    score: float
    path: str = ""
    strategy_id: str | None = None
    char_start: int = 0
    char_end: int = 0
    page_start: int | None = None
    page_end: int | None = None
    heading_path: list[str] = field(default_factory=list)
    text: str = ""
    chunks: int = 1
    snippet: str = ""  # the part of the text that best matches the query
    relevance: float = 0.0  # score / the best result's score


def search_strategy(store, strategy: str | None = None) -> tuple[str, list[str]]:
    """The strategy a search reads, and the other strategies stored. A span chunked by several
    strategies would otherwise come back once per strategy: with none named, the built-in default
    (recursive:size=96) when stored, else the strategy covering the most documents (then the most
    recently written). ValueError on an empty store or an unknown strategy."""
    from chunkctl.chunkers import DEFAULT_SPEC, parse_spec
    from chunkctl.store import index as ix

    stored = ix.searchable_strategies(store)
    if not stored:
        raise ValueError("the store has no chunks yet: run `chunkctl ingest FOLDER` first")
    if strategy is not None:
        chosen = ix.resolve_strategy(store, strategy)
    else:
        default = parse_spec(DEFAULT_SPEC).strategy_id
        chosen = default if any(sid == default for sid, _, _ in stored) else stored[0][0]
    return chosen, [sid for sid, _, _ in stored if sid != chosen]


def snippet(text: str, query: str, width: int = 240) -> str:
    """About ``width`` characters of ``text`` around its densest run of the query's words (all of
    the text when it is short); cut at spaces, with … where text was left out."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    import re

    words = {w for w in re.findall(r"\w+", query.lower()) if len(w) > 2} or set(re.findall(r"\w+", query.lower()))
    hits = [m.start() for m in re.finditer(r"\w+", flat.lower()) if m.group() in words]
    best, best_n = 0, 0
    j = 0
    for i, a in enumerate(hits):  # the window starting at a hit that holds the most hits
        while j < len(hits) and hits[j] < a + width:
            j += 1
        if j - i > best_n:
            best, best_n = a, j - i
    start = max(0, min(best - width // 5, len(flat) - width))
    if start:
        start = flat.find(" ", start) + 1 or start
    end = min(len(flat), start + width)
    space = flat.rfind(" ", start, end)
    if end < len(flat) and space > start:
        end = space
    return ("…" if start else "") + flat[start:end] + ("…" if end < len(flat) else "")


def search(store, query: str, k: int = 10, r: Retrieval = Retrieval(), strategy: str | None = None,
           embedder=None, reranker=None) -> list[Hit]:
    """One query's results with what a reader needs beside them (document, pages, headings, text,
    the matching snippet), from one strategy (``search_strategy``)."""
    from chunkctl.store import index as ix

    if not query.strip():
        raise ValueError("the query is empty")
    strategy, _ = search_strategy(store, strategy)
    if r.dense and embedder is not None and not ix.has_vectors(store, embedder.model_id):
        raise ValueError(f"no {embedder.model_id} vectors in this store: run `chunkctl embed` first")
    results = rank(store, [query], k, r, strategy, embedder, reranker)[0]
    if not results:
        return []
    docs = ix.documents_text(store, {res.doc_id for res in results})
    details = ix.chunk_details(store, [c for res in results for c in res.chunk_ids])
    hits = []
    top = max(res.score for res in results) or 1.0
    for res in results:
        path, text = docs[res.doc_id]
        pages = [details[c][0] for c in res.chunk_ids if details[c][0] is not None]
        ends = [details[c][1] for c in res.chunk_ids if details[c][1] is not None]
        span = text[res.char_start:res.char_end]
        hits.append(Hit(res.chunk_id, res.score, path, res.strategy_id, res.char_start, res.char_end,
                        min(pages) if pages else None, max(ends) if ends else None,
                        details[res.chunk_id][2], span, len(res.chunk_ids), snippet(span, query), res.score / top))
    return hits
