"""``chunkctl ingest --engine ray``: the local pipeline's stages on Ray Data, writing a Parquet
dataset (``chunkctl.store.dataset``) instead of one DuckDB file.

    files (walked by the driver, with the dataset's manifest beside each)
      -> parse, chunk, enrich: CPU tasks; each runs ``chunkctl.pipeline.ingest`` itself on an
         in-memory Store primed with the manifest's records, so skipping, rejects and enrichment
         follow the local engine's rules exactly, then writes that Store's rows as shards
      -> embed: an actor pool (one model load per actor; a GPU each when the cluster has GPUs),
         fed the chunks' token ids from the chunkers' tokenization (tokenize once)
      -> the driver writes the manifest and commits the run (``runs/<run>.parquet``)

Ray retries a task or actor call whose worker dies; shard names come from the task's inputs, so a
retry rewrites the same files and no row is written twice. Ray is imported only here.
"""
from __future__ import annotations

import json
import math
import pickle
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from chunkctl.pipeline import IngestOptions, IngestResult, ingest, skip_unreadable
from chunkctl.store import Store
from chunkctl.store.dataset import (live_state, new_run_id, part_name, prime_records, remove_uncommitted,
                                    write_commit, write_task_shards, write_vector_shards)
from chunkctl.store.memory import memory_texts, put_memory_texts
from chunkctl.store.vectors import missing_vectors, stage_rows
from chunkctl.types import Reject
from chunkctl.walk import walk

TASK_MEMORY = 1 << 30  # bytes a parse/chunk task reserves: its in-memory Store's cap (768 MB) and its files
# what the CPU tasks hand to the actor pool: one row per text to embed, plus each task's results
HANDOFF = ("table", "id", "text", "ids", "blob")


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray; "auto": the running cluster; ray://host:port
    model: str | None = "minilm"  # the embedder's name; None: no embedding stage
    embed_actors: int = 1  # the actor pool's size
    embed_batch: int = 512  # texts per actor call
    gpus_per_actor: float | None = None  # None: 1 when the cluster has GPUs, else none (CPU actors)
    files_per_task: int = 8  # files per parse/chunk task (and per shard)
    cpu_tasks: int | None = None  # parse/chunk tasks at once; None: as many as the CPUs allow


def _handoff(rows: Sequence[tuple]):
    import pyarrow as pa

    cols = list(zip(*rows)) if rows else [[] for _ in HANDOFF]
    return pa.table({"table": pa.array(cols[0], pa.string()), "id": pa.array(cols[1], pa.string()),
                     "text": pa.array(cols[2], pa.string()), "ids": pa.array(cols[3], pa.list_(pa.int32())),
                     "blob": pa.array(cols[4], pa.binary())})


class _Collector:
    """The embedding stage as the CPU task sees it: committed chunks and their token ids are
    collected (the same selection EmbedStage makes), then handed to the actor pool."""

    def __init__(self, store: Store, model_id: str, tokenizer: str | None):
        self.store, self.model_id, self.tokenizer = store, model_id, tokenizer
        self.rows: list[tuple] = []

    def add(self, chunks, text: str, ctx) -> None:
        rows, ids = stage_rows(chunks, text, ctx, self.model_id, self.tokenizer)
        for i, (cid, t) in enumerate(rows):
            self.rows.append(("embeddings", cid, t, ids[i] if ids else None, None))

    def abandon(self) -> None:
        """Ctrl-C: nothing runs here (the actors embed); what was collected is dropped with the task."""

    result = None  # EmbedStage's counts: the actors report theirs

    def finish(self):
        """What EmbedStage.finish embeds from the store: chunks still without a vector of the model
        (embedded from their own text: a QChunker completion, an enriched prefix, a streamed document)
        and memory entries."""
        queued, after = {r[1] for r in self.rows}, ""
        while rows := missing_vectors(self.store, self.model_id, after=after, limit=4096):
            self.rows += [("embeddings", cid, text, None, None) for cid, text in rows if cid not in queued]
            after = rows[-1][0]
        for mid, text in memory_texts(self.store):
            self.rows.append(("memory_embeddings", mid, text, None, None))
        return None


def _prime(store: Store, batch, enrich_id: str | None, re_enrich: bool) -> None:
    """The manifest's records of the batch's documents, so ``ingest`` skips what is done. A stub
    document row (no text, no time) stands for a stored version and is never written out; records
    of another enrichment are left out, so those strategies are chunked and enriched again."""
    records = zip(*(batch.column(c).to_pylist() for c in ("doc_id", "path", "sha", "done")))
    prime_records(store, ((d, p, sha, json.loads(done)) for d, p, sha, done in records),
                  lambda enrichment: not re_enrich or enrichment == enrich_id)


def parse_chunk_task(batch, *, out: str, run_id: str, options: IngestOptions, model_id: str | None,
                     tokenizer: str | None, command: str):
    """One CPU task: ingest the batch's files into an in-memory Store, write its rows as shards,
    return the texts to embed and (one row) this task's IngestResult."""
    from chunkctl.chunkers import ChunkContext
    from chunkctl.pipeline import _enrichment_id

    paths = batch.column("path").to_pylist()
    part = part_name(paths)
    if options.llm is not None and options.llm.cache:  # a part file per task, merged after the job
        parts = Path(options.llm.cache + ".parts")
        parts.mkdir(parents=True, exist_ok=True)
        options = replace(options, llm=replace(options.llm, cache=str(parts / f"{run_id}_{part}.sqlite"),
                                               cache_read=(options.llm.cache,)))
    store = Store(":memory:")
    enrich_id = _enrichment_id(options.enrichment, ChunkContext(llm_settings=options.llm))
    _prime(store, batch, enrich_id, options.enrichment is not None)
    collector: list[_Collector] = []

    def stage(s: Store) -> _Collector:
        collector.append(_Collector(s, model_id, tokenizer))
        return collector[0]

    statuses: list[tuple[str, str]] = []
    task_options = replace(options, include=(), exclude=(), prune=False, embedder=None,
                           embed_stage=stage if model_id else None)
    res = ingest(store, paths, task_options, command=command, on_file=lambda p, s, _: statuses.append((p, s)))
    write_task_shards(store, Path(out), run_id, part)
    store.close()
    rows = collector[0].rows if collector else []
    res.embedding = None
    return _handoff([*rows, ("_result", part, None, None, pickle.dumps((res, statuses)))])


class EmbedActor:
    """One embedding model per actor, loaded once; each call embeds a batch through the local
    engine's own functions (in-batch duplicates embedded once) and writes the vectors as shards."""

    def __init__(self, model: str, device: str, out: str, run_id: str):
        from chunkctl.embed import get_embedder

        self.embedder = get_embedder(model, device)
        self.out, self.run_id = Path(out), run_id

    def __call__(self, batch):
        from chunkctl.store.memory import embed_memories
        from chunkctl.store.vectors import EmbedResult, embed_rows

        t0 = time.perf_counter()
        rows = batch.to_pylist()
        passed = [tuple(r[c] for c in HANDOFF) for r in rows if r["table"] == "_result"]
        todo = [r for r in rows if r["table"] != "_result"]
        if not todo:
            return _handoff(passed)
        store = Store(":memory:")
        res = EmbedResult(self.embedder.model_id)
        with_ids = [r for r in todo if r["table"] == "embeddings" and r["ids"] is not None]
        as_text = [r for r in todo if r["table"] == "embeddings" and r["ids"] is None]
        if with_ids and hasattr(self.embedder, "embed_ids"):
            embed_rows(store, self.embedder, [(r["id"], r["text"]) for r in with_ids], res, [r["ids"] for r in with_ids])
        else:
            as_text += with_ids
        if as_text:
            embed_rows(store, self.embedder, [(r["id"], r["text"]) for r in as_text], res)
        memories = [(r["id"], r["text"]) for r in todo if r["table"] == "memory_embeddings"]
        if memories:  # embed_memories reads the memories table: the entries go there first
            put_memory_texts(store, memories)
            res.memories = embed_memories(store, self.embedder)
        write_vector_shards(store, self.out, self.run_id, part_name(r["id"] for r in todo))
        store.close()
        res.seconds = time.perf_counter() - t0
        return _handoff([*passed, ("_embedding", None, None, None, pickle.dumps(res))])


def _merge_llm(stats: list) -> Any:
    from chunkctl.llm.client import LLMStats

    if not stats:
        return None
    total = LLMStats(price=stats[0].price, scored_by=stats[0].scored_by)
    for s in stats:
        for k in ("calls", "cache_hits", "errors", "undone", "repairs", "prompt_tokens", "completion_tokens"):
            setattr(total, k, getattr(total, k) + getattr(s, k))
        total.latencies += s.latencies
        total.fallbacks.update(s.fallbacks)
    return total


def _start_ray(address: str | None, quiet: bool) -> bool:
    """Join or start Ray unless the caller did; True when this call started it."""
    import logging

    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = not quiet
    ctx.print_on_execution_start = False
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=not quiet, configure_logging=True)
    return True


def ingest_ray(paths: Sequence[str | Path], out: str | Path, options: IngestOptions, ray_options: RayOptions,
               command: str = "ingest", on_file: Callable[[str, str, int], None] | None = None,
               quiet: bool = True, task: Callable = parse_chunk_task, actor: type = EmbedActor) -> IngestResult:
    """Ingest files and folders into the Parquet dataset ``out`` on Ray (see the module's docstring).
    ``task`` and ``actor`` are the two stages (a test wraps them to kill their workers)."""
    import os

    import ray

    from chunkctl.embed import embedder_identity
    from chunkctl.parse import doc_id_for

    t0 = time.perf_counter()
    if options.llm is not None and options.llm.cache:  # the tasks' working folder is not this one
        options = replace(options, llm=replace(options.llm, cache=os.path.abspath(options.llm.cache)))
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    remove_uncommitted(out)  # shards of a killed run
    run_id = new_run_id()
    result = IngestResult(run_id=run_id)
    state = live_state(out)
    found, result.skipped = skip_unreadable(walk(paths, options.include, options.exclude,
                                                 follow_symlinks=options.follow_symlinks), options.strict)
    files = [f for f in found if not isinstance(f, Reject)]
    walk_rejects = [f for f in found if isinstance(f, Reject)]
    result.rejects = list(walk_rejects)
    result.seen = len(found) + len(result.skipped)
    started = _start_ray(ray_options.address, quiet)
    try:
        gpus = ray_options.gpus_per_actor
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        device = "cuda" if gpus > 0 else "cpu"
        model_id, tokenizer = embedder_identity(ray_options.model, device) if ray_options.model else (None, None)
        items = []
        for f in files:
            doc_id = doc_id_for(f.path)
            path, sha, done = state.get(doc_id, (None, None, {}))
            items.append({"path": str(f.path), "doc_id": doc_id, "sha": sha, "done": json.dumps(done)})
        per_task = max(1, ray_options.files_per_task)
        handoff: list[dict] = []
        if items:
            ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / per_task))
            # a task reserves what its in-memory store may use (DuckDB's cap), so a node never runs more
            # tasks than it can hold; the reservation also keeps Ray from fusing this stage with the
            # actors' into one worker, which would parse only in the actor pool, not on every CPU
            ds = ds.map_batches(task, batch_size=per_task, batch_format="pyarrow", num_cpus=1,
                                memory=TASK_MEMORY,
                                compute=ray.data.TaskPoolStrategy(size=ray_options.cpu_tasks)
                                if ray_options.cpu_tasks else None,
                                fn_kwargs={"out": str(out.resolve()), "run_id": run_id, "options": options,
                                           "model_id": model_id, "tokenizer": tokenizer, "command": command})
            if model_id:
                ds = ds.map_batches(actor, batch_size=ray_options.embed_batch, batch_format="pyarrow",
                                    compute=ray.data.ActorPoolStrategy(size=max(1, ray_options.embed_actors)),
                                    num_gpus=gpus, num_cpus=1,
                                    fn_constructor_kwargs={"model": ray_options.model, "device": device,
                                                           "out": str(out.resolve()), "run_id": run_id})
            handoff = ds.take_all()  # the tasks' and actors' results: the texts stopped at the actors
    finally:
        if started:
            ray.shutdown()
    embedding, llm = None, []
    for row in handoff:
        if row["table"] == "_embedding":
            e = pickle.loads(row["blob"])
            if embedding is None:
                embedding = e
            else:
                for k in ("chunks", "embedded", "cached", "truncated", "seconds", "memories"):
                    setattr(embedding, k, getattr(embedding, k) + getattr(e, k))
            continue
        res, statuses = pickle.loads(row["blob"])
        for k in ("new", "updated", "unchanged", "trimmed"):
            setattr(result, k, getattr(result, k) + getattr(res, k))
        result.chunks.update(res.chunks)
        result.enriched.update(res.enriched)
        result.rejects += res.rejects
        if res.llm is not None:
            llm.append(res.llm)
        for p, status in statuses:
            on_file and on_file(p, status, len(found))
    if model_id and embedding is None:
        from chunkctl.store.vectors import EmbedResult

        embedding = EmbedResult(model_id)
    result.embedding, result.llm = embedding, _merge_llm(llm)
    if options.llm is not None and options.llm.cache:
        from chunkctl.llm.cache import merge_caches

        merge_caches(options.llm.cache, sorted(Path(options.llm.cache + ".parts").glob(f"{run_id}_*.sqlite")))
    tombstones = []
    if options.prune:
        roots = [os.path.abspath(p) for p in paths]
        seen = {i["doc_id"] for i in items}
        prefixes = [r.rstrip("/") + "/" for r in roots]
        for doc_id, (path, _, _) in state.items():
            inside = path in roots or any(path.startswith(x) for x in prefixes)
            if inside and doc_id not in seen and not os.path.exists(path):
                tombstones.append((doc_id, path))
                on_file and on_file(path, "pruned", len(found))
        result.pruned = len(tombstones)
    result.seconds = time.perf_counter() - t0
    if result.wrote_anything:
        _commit(out, run_id, command, result, walk_rejects, items, tombstones)
    else:  # like the local engine, a run that changed nothing leaves no trace
        remove_uncommitted(out)
    return result


def _commit(out: Path, run_id: str, command: str, result: IngestResult, walk_rejects: list[Reject],
            items: list[dict], tombstones: list[tuple[str, str]]) -> None:
    """The driver's part: the walk's rejects, the manifest (from the run's completion records) and,
    last, the run's row, which makes everything the run wrote visible."""
    store = Store(":memory:")
    store.put_rejects(run_id, walk_rejects)
    store.start_run(run_id, command)
    store.finish_run(run_id, result.as_dict())
    write_commit(store, out, run_id, {i["doc_id"]: i["path"] for i in items}, tombstones, part_name(["walk"]))
    store.close()
