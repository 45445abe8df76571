"""`ingest --engine ray` on a real local Ray: the same rows as the local engine, re-runs, tombstones,
`chunkctl load`, `--db DIR`, and a worker killed mid-job."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_DOCS, run_chunkctl, store_rows
from test_bad_inputs import make_bad_folder

import ray  # the ray extra: make test installs it

from chunkctl.chunkers import parse_spec
from chunkctl.enrich import Enrichment, parse_enricher
from chunkctl.pipeline import IngestOptions, ingest
from chunkctl.ray_engine import EmbedActor, RayOptions, ingest_ray, parse_chunk_task
from chunkctl.store import Store
from chunkctl.store.dataset import DatasetStore

SPECS = ("recursive:size=128", "structure")
ROWS = {  # what must be equal, table by table (times aside)
    "documents": "SELECT doc_id, path, sha256, mime, n_chars, text, metadata FROM documents ORDER BY doc_id",
    "chunks": "SELECT * FROM chunks ORDER BY chunk_id",
    "rejects": "SELECT path, stage, reason FROM rejects ORDER BY path",
    "document_strategies": "SELECT doc_id, strategy_id, sha256, n_chunks, enrichment FROM document_strategies "
                           "ORDER BY doc_id, strategy_id",
    "memories": "SELECT * FROM memories ORDER BY memory_id",
    "strategies": "SELECT * FROM strategies ORDER BY strategy_id",
}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _options(**kw) -> IngestOptions:
    enrichment = Enrichment((parse_enricher("structure"),), "prefix", None)
    return IngestOptions([parse_spec(s) for s in SPECS], enrichment=enrichment, **kw)


def _vectors(store, table: str = "embeddings", key: str = "chunk_id") -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float32) for k, v in store.query(f"SELECT {key}, vec FROM {table}")}


def _assert_same_store(a, b) -> None:
    for table, sql in ROWS.items():
        assert a.query(sql) == b.query(sql), table
    for table, key in (("embeddings", "chunk_id"), ("memory_embeddings", "memory_id")):
        va, vb = _vectors(a, table, key), _vectors(b, table, key)
        assert va.keys() == vb.keys() and va, table
        assert max(float(np.abs(va[k] - vb[k]).max()) for k in va) < 1e-5, table


def test_ray_engine_writes_what_the_local_engine_writes(local_ray, tmp_path):
    """sample_docs plus the bad-input folder: the same documents, chunk ids, offsets, enrichment,
    memories, rejects and (within 1e-5) vectors; the offsets contract holds on every shard row."""
    from chunkctl.embed import get_embedder

    root = tmp_path / "in"
    make_bad_folder(root)
    streamed = 1500  # text files above 1.5 kB take the streamed path (block by block) on both engines
    with Store(tmp_path / "local.duckdb") as local:
        ingest(local, [root], _options(embedder=get_embedder("minilm", "cpu"), stream_threshold=streamed))
    res = ingest_ray([root], tmp_path / "ds", _options(stream_threshold=streamed), RayOptions(files_per_task=3))
    assert res.new == 7 and len(res.rejects) == 11 and res.embedding.chunks > 0
    assert [Path(p).name for p in res.skipped] == ["archive.xyz"]  # a type nothing parses
    with Store(tmp_path / "local.duckdb", read_only=True) as local:
        ds = DatasetStore(tmp_path / "ds")
        _assert_same_store(local, ds)
        assert ds.query("SELECT count(*) FROM documents WHERE metadata->>'streamed' = 'true'")[0][0] >= 1
        assert ds.query("SELECT count(*) FROM chunks c JOIN documents d USING (doc_id) "
                        "WHERE substr(d.text, c.char_start + 1, c.char_end - c.char_start) != c.text") == [(0,)]
        ds.close()
    # the shards carry exactly the store's column names and types
    import duckdb

    con = duckdb.connect()
    for table in ("documents", "chunks", "embeddings", "rejects"):
        shard = sorted((tmp_path / "ds" / table).glob("*.parquet"))[0]
        got = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{shard}')").fetchall()
        want = store_rows(tmp_path / "local.duckdb", f"DESCRIBE SELECT * FROM {table}")
        assert [(r[0], r[1].replace("JSON", "VARCHAR")) for r in got] == \
               [(r[0], r[1].replace("JSON", "VARCHAR")) for r in want], table


def test_rerun_skips_unchanged_documents_and_prune_writes_tombstones(local_ray, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, docs, ignore=shutil.ignore_patterns("*.jsonl"))
    out = tmp_path / "ds"
    first = ingest_ray([docs], out, _options(), RayOptions())
    assert first.new == 5
    again = ingest_ray([docs], out, _options(), RayOptions())
    assert (again.new, again.updated, again.unchanged, sum(again.chunks.values())) == (0, 0, 5, 0)
    assert len(list((out / "runs").glob("*.parquet"))) == 1  # a run that changed nothing leaves no trace
    (docs / "notes.txt").write_text("A short note about drop-box returns.\n", encoding="utf-8")
    (docs / "guide.md").unlink()
    third = ingest_ray([docs], out, _options(prune=True), RayOptions())
    assert (third.new, third.updated, third.unchanged, third.pruned) == (0, 1, 3, 1)
    ds = DatasetStore(out)
    assert [Path(p).name for (p,) in ds.query("SELECT path FROM manifest WHERE deleted")] == ["guide.md"]
    # the same three runs on the local engine give the same store
    with Store(tmp_path / "local.duckdb") as local:
        from chunkctl.embed import get_embedder

        emb = get_embedder("minilm", "cpu")
        shutil.rmtree(docs)
        shutil.copytree(SAMPLE_DOCS, docs, ignore=shutil.ignore_patterns("*.jsonl"))
        ingest(local, [docs], _options(embedder=emb))
        (docs / "notes.txt").write_text("A short note about drop-box returns.\n", encoding="utf-8")
        (docs / "guide.md").unlink()
        ingest(local, [docs], _options(embedder=emb, prune=True))
        for table in ("documents", "chunks", "document_strategies"):
            assert local.query(ROWS[table]) == ds.query(ROWS[table]), table
    ds.close()


def test_load_is_idempotent_and_search_reads_the_dataset_in_place(local_ray, tmp_path):
    """The CLI end to end, joining the running Ray with --ray-address: ingest into a dataset, search
    it with --db DIR, load it into DuckDB twice (the second load changes nothing)."""
    docs = tmp_path / "docs"
    make_bad_folder(docs)
    address = ray.get_runtime_context().gcs_address
    res = run_chunkctl("ingest", docs, "--engine", "ray", "--out", "ds", "--ray-address", address,
                       "-c", "recursive:size=128", "--json", timeout=300)
    assert res.returncode == 3, res.stderr  # rejects: a partial run
    summary = json.loads(res.stdout)
    assert summary["new"] == 7 and summary["rejected"] == 11 and summary["skipped"] == 1
    q = "How long do returned seed packets stay in quarantine?"
    from_ds = run_chunkctl("search", q, "--db", "ds", "-k", "3", "--json")
    assert from_ds.returncode == 0, from_ds.stderr
    loaded = run_chunkctl("load", "ds", "--db", "l.duckdb", "--json")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["documents"] == 7
    before = store_rows(tmp_path / "l.duckdb", "SELECT count(*), sum(hash(chunk_id)) FROM chunks")
    again = run_chunkctl("load", "ds", "--db", "l.duckdb", "--json")
    assert json.loads(again.stdout) == {"documents": 0, "deleted": 0, "runs": 0, "chunks": 0}
    assert store_rows(tmp_path / "l.duckdb", "SELECT count(*), sum(hash(chunk_id)) FROM chunks") == before
    assert store_rows(tmp_path / "l.duckdb", "SELECT count(*) FROM rejects") == [(11,)]
    from_db = run_chunkctl("search", q, "--db", "l.duckdb", "-k", "3", "--json")
    assert [h["chunk_id"] for h in json.loads(from_db.stdout)] == [h["chunk_id"] for h in json.loads(from_ds.stdout)]
    evals = [run_chunkctl("eval", "--qa", SAMPLE_DOCS / "qa.jsonl", "--db", db, "-c", "recursive:size=128",
                          "-k", "3", "--json", "-") for db in ("ds", "l.duckdb")]
    assert all(e.returncode == 0 for e in evals), evals[0].stderr
    ds_report, db_report = ([{k: v for k, v in r.items() if not k.endswith("_s")}  # timings aside
                             for r in json.loads(e.stdout)["results"]] for e in evals)
    assert ds_report == db_report and json.loads(evals[0].stdout)["questions"] > 0
    local = run_chunkctl("ingest", docs, "--db", "ds", "-c", "recursive:size=128")
    assert local.returncode == 2 and "Parquet dataset" in local.stderr


def _die_once(marker: Path) -> None:
    """Kill this worker process the first time only: a crash right after a stage wrote its shards,
    before Ray got its result (the moment a non-idempotent writer would leave duplicates)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def dying_task(batch, **kw):
    result = parse_chunk_task(batch, **kw)
    _die_once(Path(kw["out"]).parent / "task-died")
    return result


class DyingActor(EmbedActor):
    def __call__(self, batch):
        result = super().__call__(batch)
        _die_once(self.out.parent / "actor-died")
        return result


def test_a_worker_killed_mid_job_is_retried_without_duplicate_rows(local_ray, tmp_path):
    """Ray task failures injected: the first parse task's worker and then the first embedding actor
    are killed (SIGKILL) just after writing their shards; Ray retries both, and every row is
    written once."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(8):
        for name in ("guide.md", "report.pdf", "notes.txt"):
            shutil.copy(SAMPLE_DOCS / name, docs / f"{i:02d}-{name}")
    out = tmp_path / "ds"
    res = ingest_ray([docs], out, IngestOptions([parse_spec("recursive:size=128")]),
                     RayOptions(files_per_task=2, embed_batch=64), task=dying_task, actor=DyingActor)
    assert (tmp_path / "task-died").exists() and (tmp_path / "actor-died").exists()
    assert res.new == 24 and not res.rejects
    import duckdb

    con = duckdb.connect()
    for table, key in (("documents", "doc_id"), ("chunks", "chunk_id"), ("embeddings", "chunk_id"),
                       ("document_strategies", "doc_id")):
        n, distinct = con.execute(f"SELECT count(*), count(DISTINCT {key}) FROM read_parquet('{out}/{table}/*.parquet')"
                                  ).fetchone()
        assert n == distinct > 0, f"{table}: {n} rows, {distinct} distinct"
    ds = DatasetStore(out)
    n_chunks = ds.query("SELECT count(*) FROM chunks")[0][0]
    assert n_chunks == sum(res.chunks.values()) == ds.query("SELECT count(*) FROM embeddings")[0][0]
    ds.close()


def test_llm_enrichment_on_ray_caches_per_task_and_merges_into_the_shared_cache(local_ray, server, tmp_path):
    """An LLM enricher against a real server on 127.0.0.1: every task writes its own cache part and
    reads the shared cache read-only; the driver merges the parts, so a forced re-run asks nothing."""
    from chunkctl.llm import LLMSettings
    from chunkctl.llm.cache import CompletionCache

    server.answer = lambda path, body: json.dumps({"keywords": ["seed library"]})
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, docs, ignore=shutil.ignore_patterns("*.jsonl"))
    cache = tmp_path / "ds.llm-cache.sqlite"
    llm = LLMSettings(backend="openai", base_url=server.url, retries=0, concurrency=2, cache=str(cache))
    opts = IngestOptions([parse_spec("recursive:size=128")], llm=llm,
                         enrichment=Enrichment((parse_enricher("keywords"),), "prefix", None))
    ray_opts = RayOptions(model=None, files_per_task=2, cpu_tasks=2)
    first = ingest_ray([docs], tmp_path / "ds", opts, ray_opts)
    sent = server.posts()
    assert sent == first.llm.calls == sum(first.chunks.values()) > 0 and not first.rejects
    assert server.max_in_flight <= 2 * 2  # --cpu-tasks x --llm-concurrency
    assert not list(Path(f"{cache}.parts").iterdir())  # merged, then removed
    assert CompletionCache(cache).stats()["entries"] == sent
    again = ingest_ray([docs], tmp_path / "ds", replace(opts, force=True), ray_opts)
    assert server.posts() == sent and again.llm.calls == 0 and again.llm.cache_hits == sent
    ds = DatasetStore(tmp_path / "ds")
    assert ds.query("SELECT count(*) FILTER (WHERE json_extract_string(metadata, '$.keywords.keywords[0]') = "
                    "'seed library' AND embed_text LIKE '%seed library%'), count(*) FROM chunks") == [(sent, sent)]
    ds.close()
