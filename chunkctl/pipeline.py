"""Ingest: walk -> read -> parse -> chunk -> store, one transaction per document.

Stages are plain functions; ``ingest`` composes them and keeps the books. Unchanged bytes
(sha256) for strategies already stored are skipped; a changed document replaces all of its
chunks (other strategies' offsets would point into the old text); ``prune`` removes documents
whose files disappeared. Every unusable input becomes a Reject and the run goes on.

Enrichment (``chunkctl.enrich``) runs on new chunks before their transaction; stored chunks whose
recorded enrichment differs from the one asked for are enriched again without re-chunking (their
vectors are replaced only where the embedded text changed). No enrichment asked: stored chunks
keep whatever enrichment they have.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import duckdb

from chunkctl.chunkers import Chunker, ChunkContext, chunk_all
from chunkctl.parse import doc_id_for, kind_of, load_document
from chunkctl.store import Store
from chunkctl.store.catalog import completion_records
from chunkctl.store.memory import put_memories
from chunkctl.store.vectors import put_chunk_vectors
from chunkctl.types import Document, Reject, RejectError
from chunkctl.walk import Found, walk

STREAM_THRESHOLD = 64 << 20  # text files above this are read, chunked and stored block by block
STREAM_BLOCK = 1 << 20  # characters chunked at a time: a block's token encodings stay small


@dataclass(frozen=True)
class IngestOptions:
    chunkers: Sequence[Chunker]
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    force: bool = False
    prune: bool = False
    pdf_backend: str = "pdfium"
    stream_threshold: int = STREAM_THRESHOLD
    embedder: Any = None  # the embedding stage's model; None skips the stage
    device: str = "auto"  # where embedding chunkers (semantic, cluster, late) run their model
    llm: Any = None  # chunkctl.llm.LLMSettings for LLM chunkers and enrichers; None: the defaults
    enrichment: Any = None  # chunkctl.enrich.Enrichment; None: leave stored chunks' enrichment as it is
    # builds the embedding stage in place of EmbedStage(store, embedder): the Ray engine's hand-off
    # of each committed document's chunks (and their token ids) to its actor pool
    embed_stage: Callable[[Store], Any] | None = None


@dataclass
class IngestResult:
    run_id: str
    seen: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    pruned: int = 0
    chunks: Counter = field(default_factory=Counter)  # strategy_id -> chunks written
    enriched: Counter = field(default_factory=Counter)  # strategy_id -> stored chunks enriched again
    trimmed: int = 0  # chunks whose metadata block was shortened to fit the embedder's window
    rejects: list[Reject] = field(default_factory=list)
    embedding: Any = None  # the embedding stage's EmbedResult, when it ran
    llm: Any = None  # the LLM's LLMStats, when a chunker used it
    seconds: float = 0.0

    @property
    def wrote_anything(self) -> bool:
        return bool(self.new or self.updated or self.pruned or self.rejects or sum(self.chunks.values())
                    or sum(self.enriched.values()) or (self.embedding is not None and self.embedding.chunks))

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id, "seen": self.seen, "new": self.new, "updated": self.updated,
            "unchanged": self.unchanged, "pruned": self.pruned, "rejected": len(self.rejects),
            "chunks_written": dict(self.chunks), "chunks_enriched": dict(self.enriched),
            "prefixes_trimmed": self.trimmed, "seconds": round(self.seconds, 3),
            "rejects": [{"path": r.path, "stage": r.stage, "reason": r.reason} for r in self.rejects],
            **({"embedding": self.embedding.as_dict()} if self.embedding is not None else {}),
            **({"llm": self.llm.as_dict()} if self.llm is not None else {}),
        }


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class _Run:
    """The books of one ingest: the run row is written lazily, so a run that changes nothing
    writes nothing at all."""

    def __init__(self, store: Store, command: str):
        self.store, self.command = store, command
        self.result = IngestResult(run_id=uuid.uuid4().hex[:12])
        self.started = False

    def ensure_started(self) -> None:
        if not self.started:
            self.store.start_run(self.result.run_id, self.command)
            self.started = True

    def reject(self, rej: Reject) -> None:
        self.ensure_started()
        self.result.rejects.append(rej)
        self.store.put_rejects(self.result.run_id, [rej])

    def enrich(self, doc: Document, chunks, enrichment, ctx) -> tuple[list, bool]:
        """The chunks enriched; each failure is a reject row (stage "enrich") and the run goes on.
        Returns (chunks, complete)."""
        from chunkctl.enrich import enrich_chunks

        res = enrich_chunks(doc, chunks, enrichment, ctx)
        for reason in res.problems:
            self.reject(Reject(doc.path, "enrich", reason))
        self.result.trimmed += res.trimmed
        return res.chunks, not res.problems

    def finish(self, stage, ctx: ChunkContext, t0: float) -> IngestResult:
        """Embed what is left, then record the run (only when it changed anything)."""
        res = self.result
        if stage is not None:
            res.embedding = stage.finish()  # also embeds chunks left without a vector by a killed run
        res.llm = ctx.llm_stats
        res.seconds = time.perf_counter() - t0
        if res.wrote_anything:
            self.ensure_started()
            self.store.finish_run(res.run_id, res.as_dict())
        return res


def ingest(store: Store, paths: Sequence[str | Path], options: IngestOptions, command: str = "ingest",
           on_file: Callable[[str, str, int], None] | None = None) -> IngestResult:
    """Ingest files and folders into ``store``. ``on_file(path, status, total)`` reports each
    path as it is done, with the number of paths found (the walk runs first: it is cheap)."""
    t0 = time.perf_counter()
    run = _Run(store, command)
    res = run.result
    ctx = ChunkContext(device=options.device, llm_settings=options.llm)
    stage = None
    if options.embed_stage is not None:
        stage = options.embed_stage(store)
    elif options.embedder is not None:
        from chunkctl.store.vectors import EmbedStage

        stage = EmbedStage(store, options.embedder)
    seen_ids: set[str] = set()
    for ch in options.chunkers:
        store.put_strategy(ch.strategy_id, ch.name, ch.params())  # writes only a new strategy
    found = list(walk(paths, options.include, options.exclude))
    total = len(found)
    for item in found:
        if isinstance(item, Reject):
            run.reject(item)
            on_file and on_file(item.path, "rejected", total)
            continue
        res.seen += 1
        seen_ids.add(doc_id_for(item.path))
        try:
            status = _ingest_file(store, run, item, options, ctx, stage)
        except RejectError as err:
            run.reject(Reject(str(item.path), err.stage, err.reason))
            status = "rejected"
        except duckdb.Error as err:  # the document's transaction was rolled back; the run goes on
            run.reject(Reject(str(item.path), "store", f"{type(err).__name__}: {err}"))
            status = "rejected"
        finally:
            ctx.forget()
        on_file and on_file(str(item.path), status, total)
    if options.prune:
        roots = [os.path.abspath(p) for p in paths]
        for doc_id, path in store.documents_under(roots):
            if doc_id not in seen_ids and not os.path.exists(path):
                run.ensure_started()
                with store.transaction():
                    store.delete_document(doc_id)
                res.pruned += 1
                on_file and on_file(path, "pruned", total)
    return run.finish(stage, ctx, t0)


def enrich_store(store: Store, enrichment, strategies: Sequence[str] | None = None, embedder: Any = None,
                 llm: Any = None, command: str = "enrich") -> IngestResult:
    """Enrich what is stored (``chunkctl enrich``): every document's chunks of the given strategies
    (ids or names; all with None) whose recorded enrichment differs from ``enrichment``, then embed
    what changed. Nothing is re-parsed or re-chunked."""
    t0 = time.perf_counter()
    run = _Run(store, command)
    ctx = ChunkContext(llm_settings=llm)
    enrich_id = _enrichment_id(enrichment, ctx)
    rows = completion_records(store)
    if strategies:
        known = {r[1] for r in rows} | {r[3] for r in rows}
        missing = [s for s in strategies if s not in known]
        if missing:
            raise ValueError(f"no stored chunks of strategy {', '.join(missing)}")
        rows = [r for r in rows if r[1] in strategies or r[3] in strategies]
    by_doc: dict[str, list] = {}
    for doc_id, sid, have, _ in rows:
        if have != enrich_id:
            by_doc.setdefault(doc_id, []).append(sid)
    for doc_id, sids in by_doc.items():
        _enrich_stored(store, run, doc_id, sids, enrichment, enrich_id, ctx)
    from chunkctl.store.vectors import EmbedStage

    return run.finish(EmbedStage(store, embedder) if embedder is not None else None, ctx, t0)


def _ingest_file(store: Store, run: _Run, item: Found, options: IngestOptions, ctx: ChunkContext, stage) -> str:
    path = item.path
    kind = kind_of(path)  # unsupported types are rejected before reading a byte
    if item.size == 0:
        raise RejectError("read", "empty file (0 bytes)")
    streamed = kind == "text" and item.size > options.stream_threshold
    try:
        data = None if streamed else path.read_bytes()
        sha = file_sha256(path) if streamed else hashlib.sha256(data).hexdigest()
    except OSError as err:
        raise RejectError("read", f"cannot read: {err.strerror or err}") from None
    doc_id = doc_id_for(path)
    stored_sha, done = store.document_state(doc_id)
    wanted = {ch.strategy_id for ch in options.chunkers}
    same = stored_sha == sha and not options.force
    todo = [ch for ch in options.chunkers if not (same and ch.strategy_id in done)]
    enrichment, enrich_id = options.enrichment, _enrichment_id(options.enrichment, ctx)
    stale = [ch for ch in options.chunkers if ch not in todo and enrichment is not None
             and done[ch.strategy_id] != enrich_id]
    if not todo and not stale:
        run.result.unchanged += 1
        return "unchanged"
    if not todo:
        _enrich_stored(store, run, doc_id, [ch.strategy_id for ch in stale], enrichment, enrich_id, ctx)
        return "enriched"
    if streamed:
        _ingest_streamed(store, run, path, doc_id, sha, todo, ctx, keep_others=same, enrichment=enrichment,
                         enrich_id=enrich_id)
    else:
        doc = load_document(path, data, pdf_backend=options.pdf_backend, sha256=sha)
        chunks = chunk_all(doc, todo, ctx)
        complete = dict.fromkeys(chunks, True)
        if enrichment is not None:
            for sid in chunks:
                chunks[sid], complete[sid] = run.enrich(doc, chunks[sid], enrichment, ctx)
        run.ensure_started()
        with store.transaction():
            if not same:
                store.put_document(doc_id, str(path), sha, doc.mime, doc.text, doc.metadata)
                store.drop_document_chunks(doc_id)
            else:
                store.drop_document_chunks(doc_id, [ch.strategy_id for ch in todo])
            for ch in todo:
                store.put_chunks(chunks[ch.strategy_id])
                put_memories(store, chunks[ch.strategy_id])
                put_chunk_vectors(store, chunks[ch.strategy_id])
                store.mark_done(doc_id, ch.strategy_id, sha, len(chunks[ch.strategy_id]),
                                enrich_id if complete[ch.strategy_id] else None)
        for sid, cs in chunks.items():
            run.result.chunks[sid] += len(cs)
            if stage is not None:
                stage.add(cs, doc.text, ctx)
    if stale:
        _enrich_stored(store, run, doc_id, [ch.strategy_id for ch in stale], enrichment, enrich_id, ctx)
    if stored_sha is None:
        run.result.new += 1
        return "new"
    run.result.updated += 1
    return "updated" if stored_sha != sha or options.force else f"added {len(todo)}/{len(wanted)} strategies"


def _enrichment_id(enrichment, ctx: ChunkContext) -> str | None:
    if enrichment is None:
        return None
    return enrichment.identity(ctx.llm.model_id if enrichment.uses_llm else None)


def _enrich_stored(store: Store, run: _Run, doc_id: str, strategy_ids: Sequence[str], enrichment, enrich_id: str,
                   ctx: ChunkContext) -> None:
    """Enrich a document's stored chunks again (another enrichment was asked): no re-chunking.
    The embedding stage's ``finish`` embeds the chunks whose embedded text changed."""
    doc = store.load_document(doc_id)
    for sid in strategy_ids:
        old = store.load_chunks(doc_id, sid)
        new, complete = run.enrich(doc, old, enrichment, ctx)
        run.ensure_started()
        with store.transaction():
            store.update_enrichment(old, new)
            store.mark_enriched(doc_id, sid, enrich_id if complete else None)
        run.result.enriched[sid] += len(new)


def _ingest_streamed(store: Store, run: _Run, path: Path, doc_id: str, sha: str,
                     chunkers: Sequence[Chunker], ctx: ChunkContext, keep_others: bool, enrichment=None,
                     enrich_id: str | None = None) -> None:
    """A very large text file, in bounded memory.

    Pass 1 decodes and normalises it block by block into a temporary UTF-8 file. Then three steps,
    each committed: (1) the new text replaces the document row (DuckDB reads the file itself) and
    the old chunks go; (2) pass 2 chunks the file block by block and commits each block's chunks;
    (3) the completion records are written. DuckDB holds an open transaction's rows in memory, so
    one transaction per document would grow with the file. Every committed chunk points into the
    stored text, so offsets never lie; after a kill between (1) and (3) the document simply has no
    completion record, and the next run redoes its chunks."""
    from chunkctl.parse.text import paragraphs, stream_text_blocks

    run.ensure_started()
    encoding, n_chars = "utf-8", 0
    tmp_dir = None if store.path == ":memory:" else os.path.dirname(os.path.abspath(store.path)) or None
    fd, tmp_name = tempfile.mkstemp(suffix=".txt", prefix=".chunkctl-", dir=tmp_dir)
    sids = [ch.strategy_id for ch in chunkers]
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            for encoding, block in stream_text_blocks(path):
                out.write(block)
                n_chars += len(block)
        with store.transaction():
            store.drop_document_chunks(doc_id, sids if keep_others else None)
            store.put_document(doc_id, str(path), sha, "text/plain", None,
                               {"parser": "text", "encoding": encoding, "streamed": True},
                               text_file=tmp_name, n_chars=n_chars)
        seq = dict.fromkeys(sids, 0)
        complete = dict.fromkeys(sids, True)
        base = 0
        try:
            for _, block in stream_text_blocks(Path(tmp_name), block_chars=STREAM_BLOCK):
                # block_start: where the block's chunks' offsets (the document's) begin in the block's text
                doc = Document(doc_id, str(path), sha, "text/plain", block, paragraphs(block), [],
                               {"block_start": base})
                chunks = chunk_all(doc, chunkers, ctx, base=base, first_seq=seq)
                if enrichment is not None:
                    for sid in chunks:
                        chunks[sid], ok = run.enrich(doc, chunks[sid], enrichment, ctx)
                        complete[sid] = complete[sid] and ok
                ctx.forget()
                with store.transaction():
                    for sid, cs in chunks.items():
                        store.put_chunks(cs)
                        put_memories(store, cs)
                        put_chunk_vectors(store, cs)
                        seq[sid] += len(cs)
                        run.result.chunks[sid] += len(cs)
                base += len(block)
            if base != n_chars:
                raise RejectError("chunk", f"streamed text changed between passes ({base} != {n_chars} chars)")
        except BaseException:
            with store.transaction():  # leave no partial chunk set behind
                store.drop_document_chunks(doc_id, sids)
            raise
        with store.transaction():
            for sid in sids:
                store.mark_done(doc_id, sid, sha, seq[sid], enrich_id if complete[sid] else None)
    finally:
        os.unlink(tmp_name)
