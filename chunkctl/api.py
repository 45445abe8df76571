"""chunkctl as a library: the four things the CLI does most, as plain functions with the CLI's
defaults. ``import chunkctl`` exposes them (``chunkctl.ingest``, ``chunkctl.parse``,
``chunkctl.chunk``, ``chunkctl.search``, ``chunkctl.evaluation``); README "Python API" shows them
running (a test runs that example as a doctest).

Progress goes nowhere unless you listen (``chunkctl.progress.listen``); errors are exceptions
(``ValueError`` for a bad argument, ``chunkctl.types.RejectError`` for a file that cannot be read,
``chunkctl.store.db.StoreBusy`` when another process holds the store).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

DEFAULT_DB = "chunkctl.duckdb"


def _chunkers(chunkers: str | Sequence[str] | None) -> list:
    from chunkctl.chunkers import DEFAULT_SPEC, parse_spec

    specs = [chunkers] if isinstance(chunkers, str) else list(chunkers or [DEFAULT_SPEC])
    return [parse_spec(s) for s in specs]


def ingest(paths: str | Path | Sequence[str | Path], db: str | Path = DEFAULT_DB,
           chunkers: str | Sequence[str] | None = None, embed: str | None = "minilm", device: str = "auto",
           **options: Any):
    """Parse, chunk, store and embed files and folders into the store ``db`` (created if needed),
    as `chunkctl ingest` does; unchanged files are skipped. ``chunkers``: specs such as
    ``"recursive:size=256"`` (default: the CLI's); ``embed``: the embedding model, None for none;
    ``options``: any other field of ``chunkctl.pipeline.IngestOptions`` (``exclude``, ``force``,
    ``prune``, ``strict``, ...). Returns the ``IngestResult`` (counts, rejects, skipped files)."""
    from chunkctl.embed import get_embedder
    from chunkctl.pipeline import IngestOptions
    from chunkctl.pipeline import ingest as run_ingest
    from chunkctl.store import Store

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    embedder = get_embedder(embed, device) if embed else None
    opts = IngestOptions(_chunkers(chunkers), embedder=embedder, device=device, **options)
    with Store(db) as store:
        return run_ingest(store, [str(p) for p in paths], opts, command="python: chunkctl.ingest")


def document(path: str | Path, fmt: str | None = None):
    """One file as a ``chunkctl.types.Document``: its normalised text, elements (with heading
    paths) and pages. ``fmt`` (text, markdown, html, docx, pdf) overrides the suffix."""
    from chunkctl.parse import load_document

    return load_document(str(path), Path(path).read_bytes(), kind=fmt)


def chunk(source, chunker: str | None = None, device: str = "auto") -> list:
    """The chunks of a Document (or of a file path, parsed first) by one strategy spec (default:
    the CLI's); every chunk satisfies ``doc.text[c.char_start:c.char_end] == c.text``."""
    from chunkctl.chunkers import ChunkContext, chunk_all

    doc = document(source) if isinstance(source, (str, Path)) else source
    (strategy,) = _chunkers(chunker)
    return chunk_all(doc, [strategy], ChunkContext(device=device))[strategy.strategy_id]


def search(query: str, db: str | Path = DEFAULT_DB, k: int = 10, strategy: str | None = None,
           embed: str = "minilm", device: str = "auto", **retrieval: Any) -> list:
    """`chunkctl search`: the results (``chunkctl.retrieval.Hit``: path, pages, headings, exact
    span, text, snippet, score) for ``query`` from one strategy of the store (the default one, as
    the CLI picks it, unless named). ``retrieval``: fields of ``chunkctl.retrieval.Retrieval``
    (``mode="bm25"``, ``expand=0``, ...)."""
    from chunkctl.embed import get_embedder
    from chunkctl.retrieval import Retrieval
    from chunkctl.retrieval import search as run_search
    from chunkctl.store import Store

    r = Retrieval(**retrieval)
    with Store(db) as store:  # not read-only: the first BM25 search of a strategy builds its index
        return run_search(store, query, k, r, strategy, get_embedder(embed, device) if r.dense else None)


def evaluate(qa: str | Path, corpus: str | Path | None = None, db: str | Path = "chunkctl.eval.duckdb",
             chunkers: str | Sequence[str] | None = None, k: int | Sequence[int] = 5, embed: str = "minilm",
             device: str = "auto", **retrieval: Any):
    """`chunkctl eval`: each strategy's chunks of ``corpus`` (ingested into ``db`` first; without
    it, the documents already in ``db``) ranked for every question of the QA set ``qa``. Returns
    the ``EvalReport``: ``rows()`` has one dict per (strategy, k) with recall, precision, IoU, ...;
    ``strategies[i].per_question`` each question's scores."""
    from chunkctl.embed import get_embedder
    from chunkctl.evaluation.qa import load_qa
    from chunkctl.evaluation.run import EvalOptions
    from chunkctl.evaluation.run import evaluate as run_eval
    from chunkctl.retrieval import Retrieval
    from chunkctl.store import Store

    r = Retrieval(**retrieval)
    ks = [k] if isinstance(k, int) else list(k)
    opts = EvalOptions(_chunkers(chunkers), ks=ks, retrieval=r, device=device,
                       embedder=get_embedder(embed, device) if r.dense else None)
    with Store(db) as store:
        return run_eval(store, load_qa(qa), opts, corpus=[str(corpus)] if corpus else None)
