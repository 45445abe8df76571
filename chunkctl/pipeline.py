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
import time
import uuid
from collections import Counter, deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import duckdb

from chunkctl import progress, stop
from chunkctl.chunkers import Chunker, ChunkContext
from chunkctl.parse import doc_id_for, kind_of, readable
from chunkctl.store import Store
from chunkctl.store.db import StoreError, store_failure
from chunkctl.store.catalog import completion_records
from chunkctl.store.memory import put_memories
from chunkctl.store.vectors import put_chunk_vectors
from chunkctl.parse.isolated import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S
from chunkctl.types import Document, Reject, RejectError
from chunkctl.walk import Found, check_regular, open_regular, walk
from chunkctl.bigdocs import STREAM_THRESHOLD, chunk_in_blocks, ingest_streamed, remove_stale_temp_files

MAX_FILE_MB = 512  # files a parser must hold whole (all but text) larger than this are rejected


@dataclass(frozen=True)
class IngestOptions:
    chunkers: Sequence[Chunker]
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    force: bool = False
    prune: bool = False
    pdf_backend: str = "pdfium"
    stream_threshold: int = STREAM_THRESHOLD
    max_file_mb: int | None = MAX_FILE_MB  # None: no size limit
    follow_symlinks: bool = False  # follow links that lead outside the given roots
    strict: bool = False  # files of types no parser takes are rejects (exit 3), not skipped
    parse_workers: int = 2  # parser processes; 0 parses in this process (no time or memory limit)
    document_timeout: float | None = DEFAULT_TIMEOUT_S  # seconds one file's parse may take
    parse_memory_mb: int | None = DEFAULT_MEMORY_MB  # resident memory one parse may use
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
    skipped: list[str] = field(default_factory=list)  # files of types no parser takes (not with --strict)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, what): stored, but not quite whole
    embedding: Any = None  # the embedding stage's EmbedResult, when it ran
    llm: Any = None  # the LLM's LLMStats, when a chunker used it
    seconds: float = 0.0
    interrupted: bool = False  # Ctrl-C ended the run early

    @property
    def wrote_anything(self) -> bool:
        return bool(self.new or self.updated or self.pruned or self.rejects or sum(self.chunks.values())
                    or sum(self.enriched.values()) or (self.embedding is not None and self.embedding.chunks))

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id, "seen": self.seen, "new": self.new, "updated": self.updated,
            "unchanged": self.unchanged, "pruned": self.pruned, "rejected": len(self.rejects),
            "skipped": len(self.skipped), "skipped_files": self.skipped,
            "chunks_written": dict(self.chunks), "chunks_enriched": dict(self.enriched),
            "prefixes_trimmed": self.trimmed, "seconds": round(self.seconds, 3),
            **({"interrupted": True} if self.interrupted else {}),
            "rejects": [{"path": r.path, "stage": r.stage, "reason": r.reason} for r in self.rejects],
            "warnings": [{"path": p, "warning": w} for p, w in self.warnings],
            **({"embedding": self.embedding.as_dict()} if self.embedding is not None else {}),
            **({"llm": self.llm.as_dict()} if self.llm is not None else {}),
        }


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during an ingest, with what the run did before it (``result``)."""

    def __init__(self, result: IngestResult):
        super().__init__()
        self.result = result


def skip_unreadable(found, strict: bool) -> tuple[list, list[str]]:
    """(what to ingest, paths skipped): files of a type no parser takes (an image, a .jsonl beside
    the documents) are skipped and listed, not failures; ``strict`` keeps them, to be rejected."""
    keep, skipped = [], []
    for item in found:
        if not strict and not isinstance(item, Reject) and not readable(item.path):
            skipped.append(str(item.path))
        else:
            keep.append(item)
    return keep, skipped


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

    def interrupt(self, stage, ctx: ChunkContext, t0: float) -> IngestResult:
        """Ctrl-C: leave at once. What is committed stays (the document being written was rolled
        back); the batch being embedded is dropped; the run row gets its end and its counts."""
        res = self.result
        res.interrupted = True
        if stage is not None:
            stage.abandon()
            res.embedding = stage.result
        res.llm = ctx.llm_stats
        res.seconds = time.perf_counter() - t0
        try:
            self.store.con.execute("ROLLBACK")  # a transaction the interrupt left open, if any
        except duckdb.Error:
            pass
        try:  # closing would checkpoint the log (seconds after a big batch); the next open replays it
            self.store.con.execute("PRAGMA disable_checkpoint_on_shutdown")
        except duckdb.Error:
            pass
        try:
            self.ensure_started()
            self.store.finish_run(res.run_id, res.as_dict())
        except Exception:
            pass  # the store may be what was interrupted; the next run starts its own row
        return res

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
    path as it is done, with the number of paths found (the walk runs first: it is cheap).

    Files are read and checked here, parsed in the worker pool (``chunkctl.parse.isolated``: up to
    ``parse_workers`` at once, each within ``document_timeout`` and ``parse_memory_mb``), then
    chunked and stored here in walk order. Any failure of one file is a reject row and the run
    goes on; a store that cannot be written (disk full, an invalidated database) raises StoreError."""
    from chunkctl.parse.isolated import ParsePool

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
    remove_stale_temp_files(store)
    found, res.skipped = skip_unreadable(walk(paths, options.include, options.exclude,
                                              follow_symlinks=options.follow_symlinks), options.strict)
    res.seen = len(res.skipped)  # seen = new + updated + unchanged + skipped + rejected files
    total = len(found)
    pending: deque[tuple[Found, _Plan]] = deque()

    files = progress.Step("ingest")  # replaced by the open step below

    def report(path: str, status: str) -> None:
        counts = f"{res.new} new, {res.updated} updated, {res.unchanged} unchanged, {len(res.rejects)} rejected"
        files.advance(0 if status == "pruned" else 1, f"{counts}  {Path(path).name}")
        on_file and on_file(path, status, total)

    def settle(item: Found, work: Callable[[], Any]) -> Any:
        """Run one file's step; report the file unless the step hands back a parse still running."""
        try:
            status = work()
            if isinstance(status, _Plan):
                return status
        except RejectError as err:
            stop.check()  # Ctrl-C may surface as a library's own error, made a reject on the way
            run.reject(Reject(str(item.path), err.stage, err.reason))
            status = "rejected"
        except (duckdb.Error, OSError) as err:
            stop.check()
            why = store_failure(err)
            if why:
                raise StoreError(why) from err
            where = "store" if isinstance(err, duckdb.Error) else "read"  # rolled back; the run goes on
            run.reject(Reject(str(item.path), where, f"{type(err).__name__}: {err}"))
            status = "rejected"
        except Exception as err:  # a bug or an exotic input: this file only, said plainly
            stop.check()
            run.reject(Reject(str(item.path), "internal", f"{type(err).__name__}: {err}"[:1000]))
            status = "rejected"
        finally:
            ctx.forget()
        report(str(item.path), status)
        stop.check()
        store.let_readers_in()  # between documents: commands waiting with --wait read now
        return None

    def drain() -> None:
        item, plan = pending.popleft()
        settle(item, lambda: _store_parsed(store, run, plan, options, ctx, stage, pool))

    try:
        with ParsePool(options.parse_workers, options.document_timeout, options.parse_memory_mb) as pool, \
                progress.step("ingest", total) as files, progress.step("embed") if stage else nullcontext() as embed:
            if stage is not None:
                stage.step = embed
            for item in found:
                res.seen += 1
                if isinstance(item, Reject):
                    run.reject(item)
                    report(item.path, "rejected")
                    continue
                seen_ids.add(doc_id_for(item.path))
                plan = settle(item, lambda: _plan_file(store, run, item, options, ctx, pool))
                if plan is not None:
                    pending.append((item, plan))
                while pending and (len(pending) > pool.size or pending[0][1].job.done.is_set()):
                    drain()
            while pending:
                drain()
            if options.prune:
                _prune(store, run, paths, seen_ids, report)
            return run.finish(stage, ctx, t0)
    except (KeyboardInterrupt, duckdb.InterruptException):
        raise Interrupted(run.interrupt(stage, ctx, t0)) from None


def _prune(store: Store, run: _Run, paths, seen_ids: set[str], report: Callable[[str, str], None]) -> None:
    """Remove stored documents under ``paths`` whose files are gone."""
    roots = [os.path.abspath(p) for p in paths]
    for doc_id, path in store.documents_under(roots):
        if doc_id not in seen_ids and not os.path.exists(path):
            run.ensure_started()
            with store.transaction():
                store.delete_document(doc_id)
            run.result.pruned += 1
            report(path, "pruned")


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
    with progress.step("enrich", len(by_doc)) as step:
        for doc_id, sids in by_doc.items():
            _enrich_stored(store, run, doc_id, sids, enrichment, enrich_id, ctx)
            step.advance()
            store.let_readers_in()
    from chunkctl.store.vectors import EmbedStage

    return run.finish(EmbedStage(store, embedder) if embedder is not None else None, ctx, t0)


@dataclass
class _Plan:
    """A file read and found to need parsing: what to do with its Document once the pool has it."""
    path: Path
    doc_id: str
    sha: str
    stored_sha: str | None
    same: bool  # the stored version has these bytes (only strategies are missing or forced)
    todo: list
    stale: list
    enrich_id: str | None
    job: Any = None


def _plan_file(store: Store, run: _Run, item: Found, options: IngestOptions, ctx: ChunkContext,
               pool) -> str | _Plan:
    """Read a file and decide: unchanged, enrich again, stream it here, or parse it (a _Plan)."""
    path = item.path
    kind = kind_of(path)  # unsupported types are rejected before reading a byte
    if item.size == 0:
        raise RejectError("read", "empty file (0 bytes)")
    streamed = kind == "text" and item.size > options.stream_threshold
    if not streamed and options.max_file_mb and item.size > options.max_file_mb << 20:
        raise RejectError("read", f"{item.size >> 20} MB is more than the {kind} parser takes "
                                  f"(--max-file-mb {options.max_file_mb}); only text files are streamed")
    if streamed:
        check_regular(item)
        try:
            data, sha = None, file_sha256(path)
        except OSError as err:
            raise RejectError("read", f"cannot read: {err.strerror or err}") from None
    else:
        data = open_regular(item, limit=options.max_file_mb << 20 if options.max_file_mb else None)
        sha = hashlib.sha256(data).hexdigest()
    doc_id = doc_id_for(path)
    stored_sha, done = store.document_state(doc_id)
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
        run.result.unchanged += 1
        return "enriched"
    plan = _Plan(path, doc_id, sha, stored_sha, same, todo, stale, enrich_id)
    if streamed:
        ingest_streamed(store, run, path, doc_id, sha, todo, ctx, keep_others=same, enrichment=enrichment,
                         enrich_id=enrich_id)
        status = _count(run, plan, options)
        _enrich_stale(store, run, plan, options, ctx)
        return status
    plan.job = pool.submit(str(path), data, pdf_backend=options.pdf_backend, sha256=sha)
    return plan


def _store_parsed(store: Store, run: _Run, plan: _Plan, options: IngestOptions, ctx: ChunkContext, stage,
                  pool) -> str:
    """Chunk, enrich and store a parsed document in one transaction; queue its chunks to embed."""
    doc = pool.result(plan.job)
    plan.job = None  # the Document is not kept beyond this file
    if doc.metadata.get("replaced_chars"):
        run.result.warnings.append((doc.path, f"{doc.metadata['replaced_chars']} character(s) could not be decoded "
                                              f"as {doc.metadata.get('encoding', 'text')} and became U+FFFD"))
    todo, same = plan.todo, plan.same
    chunks = chunk_in_blocks(doc, todo, ctx)
    complete = dict.fromkeys(chunks, True)
    if options.enrichment is not None:
        for sid in chunks:
            chunks[sid], complete[sid] = run.enrich(doc, chunks[sid], options.enrichment, ctx)
    run.ensure_started()
    with stop.shield(), store.transaction():  # committed and counted, or neither: Ctrl-C waits for the commit
        if not same:
            store.put_document(plan.doc_id, doc.path, plan.sha, doc.mime, doc.text, doc.metadata)
            store.drop_document_chunks(plan.doc_id)
        else:
            store.drop_document_chunks(plan.doc_id, [ch.strategy_id for ch in todo])
        for ch in todo:
            store.put_chunks(chunks[ch.strategy_id])
            put_memories(store, chunks[ch.strategy_id])
            put_chunk_vectors(store, chunks[ch.strategy_id])
            store.mark_done(plan.doc_id, ch.strategy_id, plan.sha, len(chunks[ch.strategy_id]),
                            plan.enrich_id if complete[ch.strategy_id] else None)
        status = _count(run, plan, options)
        for sid, cs in chunks.items():
            run.result.chunks[sid] += len(cs)
    stop.check()
    if stage is not None:
        for cs in chunks.values():
            stage.add(cs, doc.text, ctx)
    _enrich_stale(store, run, plan, options, ctx)
    return status


def _enrich_stale(store: Store, run: _Run, plan: _Plan, options: IngestOptions, ctx: ChunkContext) -> None:
    """The document's other stored strategies, enriched again when another enrichment was asked."""
    if plan.stale:
        _enrich_stored(store, run, plan.doc_id, [ch.strategy_id for ch in plan.stale], options.enrichment,
                       plan.enrich_id, ctx)


def _count(run: _Run, plan: _Plan, options: IngestOptions) -> str:
    """Count a stored file as new, updated or unchanged (new strategies only); its status."""
    if plan.stored_sha is None:
        run.result.new += 1
        return "new"
    if plan.stored_sha != plan.sha or options.force:
        run.result.updated += 1
        return "updated"
    run.result.unchanged += 1  # the file is; the chunks written say what was added
    return f"added {len(plan.todo)}/{len(options.chunkers)} strategies"


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
