"""The embedding stage and search, with the real packaged MiniLM models and a real store."""
from __future__ import annotations

import json

import numpy as np
import pytest

from chunkctl.embed import DeviceError, get_embedder, resolve_device

from conftest import SAMPLE_DOCS, store_rows


@pytest.fixture(scope="module")
def onnx():
    return get_embedder("minilm-onnx")


def test_onnx_int8_agrees_with_sentence_transformers(onnx):
    st = get_embedder("minilm-st", "cpu")
    texts = ["Returned packets go into the grey quarantine tray for fourteen days.",
             "The vault is kept cool and dry.", "Tomatoes are planted out after the last frost.", "種子 🌱"]
    a, b = onnx.embed(texts), st.embed(texts)
    assert a.shape == b.shape == (4, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert (a * b).sum(1).min() > 0.998
    assert onnx.model_id != st.model_id  # int8 and fp32 vectors never share a cache entry


def test_devices_auto_falls_back_and_explicit_missing_devices_are_usage_errors(cli, tmp_path):
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        with pytest.raises(DeviceError, match="no CUDA device"):
            resolve_device("cuda")
        code, _, err = cli("embed", "--db", tmp_path / "x.duckdb", "--device", "cuda")
        assert code == 2 and "no CUDA device" in err


def _ingest(cli, db, src=SAMPLE_DOCS, *more):
    """Chunks only: these tests are about `chunkctl embed` (ingest's own stage is tested below)."""
    code, _, err = cli("ingest", src, "--db", db, "--exclude", "*.jsonl", "-q", "-c", "recursive:size=96",
                       "--no-embed", *more)
    assert code == 0, err


def test_every_chunk_gets_exactly_one_vector_and_reruns_embed_nothing(cli, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest(cli, db)
    code, out, _ = cli("embed", "--db", db, "--embed", "minilm-onnx", "--json")
    first = json.loads(out)
    n_chunks = store_rows(db, "SELECT count(*) FROM chunks")[0][0]
    assert code == 0 and first["chunks"] == n_chunks and first["embedded"] + first["cached"] == n_chunks
    assert store_rows(db, "SELECT count(*), count(DISTINCT chunk_id) FROM embeddings") == [(n_chunks, n_chunks)]
    assert store_rows(db, "SELECT DISTINCT len(vec) FROM embeddings") == [(384,)]
    code, out, _ = cli("embed", "--db", db, "--embed", "minilm-onnx", "--json")
    assert json.loads(out) | {"seconds": 0} == {"model_id": first["model_id"], "chunks": 0, "embedded": 0,
                                                 "cached": 0, "truncated": 0, "seconds": 0}


def test_a_changed_document_reembeds_only_its_changed_chunks(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest(cli, db, sample_copy)
    assert cli("embed", "--db", db, "--embed", "minilm-onnx")[0] == 0
    guide = sample_copy / "guide.md"
    guide.write_text(guide.read_text().replace("fourteen days", "twenty-one days"))
    _ingest(cli, db, sample_copy)
    changed = store_rows(db, "SELECT count(*) FROM chunks c JOIN documents d USING (doc_id) "
                             "WHERE d.path LIKE '%guide.md' AND c.text LIKE '%twenty-one days%'")[0][0]
    guide_chunks = store_rows(db, "SELECT count(*) FROM chunks c JOIN documents d USING (doc_id) "
                                  "WHERE d.path LIKE '%guide.md'")[0][0]
    code, out, _ = cli("embed", "--db", db, "--embed", "minilm-onnx", "--json")
    res = json.loads(out)
    assert res["chunks"] == guide_chunks and res["embedded"] == changed == 1
    assert res["cached"] == guide_chunks - 1
    assert store_rows(db, "SELECT count(*) FROM chunks c LEFT JOIN embeddings e USING (chunk_id) "
                          "WHERE e.chunk_id IS NULL") == [(0,)]
    assert store_rows(db, "SELECT count(*) FROM embeddings WHERE chunk_id NOT IN (SELECT chunk_id FROM chunks)") == [(0,)]


def test_one_model_id_cannot_mix_dimensions(tmp_path, onnx):
    from chunkctl.store import Store
    from chunkctl.store.vectors import ensure_model

    with Store(tmp_path / "s.duckdb") as store:
        ensure_model(store, onnx.model_id, 384)
        with pytest.raises(ValueError, match="cannot mix dimensions"):
            ensure_model(store, onnx.model_id, 768)


@pytest.mark.parametrize("mode", ["vector", "bm25", "hybrid"])
def test_search_finds_the_answer_of_sample_questions(cli, tmp_path, mode):
    db = tmp_path / "s.duckdb"
    _ingest(cli, db)
    assert cli("embed", "--db", db, "--embed", "minilm-onnx")[0] == 0
    questions = [json.loads(line) for line in (SAMPLE_DOCS / "qa.jsonl").read_text().splitlines()]
    found = 0
    for q in questions:
        code, out, err = cli("search", q["question"], "--db", db, "--mode", mode, "-k", "3", "--embed",
                             "minilm-onnx", "--json")
        assert code == 0, err
        hits = json.loads(out)
        assert len(hits) <= 3 and all(h["text"] for h in hits)
        found += any(h["path"].endswith(q["doc"]) and h["char_start"] <= q["char_start"]
                     and q["char_end"] <= h["char_end"] for h in hits)
    assert found / len(questions) >= 0.7, f"{mode}: {found}/{len(questions)} answers in the top 3"


def test_bm25_index_follows_changes_and_strategies(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest(cli, db, sample_copy)
    code, out, _ = cli("search", "marmalade", "--db", db, "--mode", "bm25", "--json")
    assert json.loads(out) == []
    (sample_copy / "jam.md").write_text("# Jam\n\nThe library sells marmalade at the seed swap.\n")
    _ingest(cli, db, sample_copy)
    code, out, _ = cli("search", "marmalade", "--db", db, "--mode", "bm25", "--json", "--strategy", "recursive")
    assert [h["path"].rsplit("/", 1)[-1] for h in json.loads(out)] == ["jam.md"]
    code, _, err = cli("search", "x", "--db", db, "--mode", "vector", "--embed", "minilm-onnx")
    assert code == 2 and "run `chunkctl embed" in err


def test_chunk_token_ids_are_what_retokenizing_the_chunk_gives():
    """Tokenize once: the ids a chunker's TokenIndex hands over equal a fresh tokenization of
    the chunk text, for every chunk of the whitespace-cut chunkers."""
    from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec
    from chunkctl.parse import load_document
    from chunkctl.tokens import get_tokenizer

    tok = get_tokenizer("minilm")
    for name in ("guide.md", "notes.txt", "report.pdf"):
        f = SAMPLE_DOCS / name
        doc = load_document(f, f.read_bytes())
        ctx = ChunkContext()
        idx = ctx.tokens(doc.text, "minilm")
        for c in chunk_document(doc, parse_spec("recursive:size=48"), ctx):
            assert idx.ids_in(c.char_start, c.char_end) == tok.encode_batch([c.text])[0].ids


def test_pretokenized_encoder_matches_sentence_transformers_on_cpu():
    """The GPU path's code, run on the CPU: same vectors as encode() from the same token ids."""
    from chunkctl.embed import PretokenizedEncoder, minilm_model_dir
    from chunkctl.tokens import TokenIndex, get_tokenizer

    text = (SAMPLE_DOCS / "guide.md").read_text() + "\n\n" + "種子 🌱 Zoë. " * 200
    idx = TokenIndex(text, get_tokenizer("minilm"))
    spans = [(idx.token_span(t)[0], idx.token_span(min(t + 199, idx.total - 1))[1]) for t in range(0, idx.total, 60)]
    enc = PretokenizedEncoder(minilm_model_dir(), "cpu", batch_size=3)  # odd batches: ordering is restored
    ours = enc.embed_ids([idx.ids_in(a, b) for a, b in spans])
    ref = get_embedder("minilm-st", "cpu").embed([text[a:b] for a, b in spans])
    assert ours.shape == ref.shape and (ours * ref).sum(1).min() > 0.999
    assert enc.embed_ids([]).shape == (0, 384)


VECTORS_PER_CHUNK = ("SELECT count(*) FILTER (WHERE n <> 1) FROM (SELECT c.chunk_id, count(e.chunk_id) AS n "
                     "FROM chunks c LEFT JOIN embeddings e ON e.chunk_id = c.chunk_id AND e.model_id = ? GROUP BY 1)")


def _ingest_embedded(cli, db, src, *specs):
    code, out, err = cli("ingest", src, "--db", db, "--exclude", "*.jsonl", "--json", "--embed", "minilm-onnx",
                         *(a for s in specs for a in ("-c", s)))
    assert code == 0, err
    return json.loads(out)


def test_ingest_embeds_every_chunk_once_and_a_rerun_embeds_nothing(cli, sample_copy, tmp_path, onnx):
    db = tmp_path / "s.duckdb"
    first = _ingest_embedded(cli, db, sample_copy, "recursive:size=96", "sentence:size=96")
    n_chunks = store_rows(db, "SELECT count(*) FROM chunks")[0][0]
    assert first["embedding"]["chunks"] == n_chunks and first["embedding"]["model_id"] == onnx.model_id
    # the two strategies share many chunk texts: those are embedded once, and the counts add up
    e = first["embedding"]
    assert 0 < e["embedded"] < n_chunks and e["chunks"] == e["embedded"] + e["cached"]
    assert store_rows(db, VECTORS_PER_CHUNK, [onnx.model_id]) == [(0,)]
    assert store_rows(db, "SELECT count(*) FROM embedding_cache") == [(0,)]  # each vector is stored once
    again = _ingest_embedded(cli, db, sample_copy, "recursive:size=96", "sentence:size=96")
    assert again["new"] == again["updated"] == 0 and "embedding" in again
    assert again["embedding"]["chunks"] == again["embedding"]["embedded"] == 0
    # a changed document re-embeds only its changed chunks
    texts = "SELECT DISTINCT text FROM chunks"
    before = set(store_rows(db, texts))
    guide = sample_copy / "guide.md"
    guide.write_text(guide.read_text().replace("fourteen days", "twenty-one days"))
    changed = _ingest_embedded(cli, db, sample_copy, "recursive:size=96", "sentence:size=96")
    new_texts = set(store_rows(db, texts)) - before
    assert changed["updated"] == 1 and 2 <= len(new_texts) <= 4  # the edited chunk of each strategy (+ a shift)
    assert changed["embedding"]["embedded"] == len(new_texts)
    # the replaced chunks' vectors moved to the cache, once per text
    assert store_rows(db, "SELECT count(*), count(DISTINCT text_sha256) FROM embedding_cache")[0][0] == \
        store_rows(db, "SELECT count(DISTINCT text_sha256) FROM embedding_cache")[0][0] > 0
    assert changed["embedding"]["chunks"] == store_rows(db, "SELECT count(*) FROM chunks c JOIN documents d "
                                                            "USING (doc_id) WHERE d.path LIKE '%guide.md'")[0][0]
    assert store_rows(db, VECTORS_PER_CHUNK, [onnx.model_id]) == [(0,)]


def test_ingest_embeds_with_the_chunkers_token_ids(onnx, tmp_path):
    """Tokenize once: the stage hands the chunker's ids to the model, and gets the same vectors
    as embedding the chunk text."""
    from chunkctl.chunkers import parse_spec
    from chunkctl.pipeline import IngestOptions, ingest
    from chunkctl.store import Store

    calls = []

    class Spy:
        model_id, dim, device, tokenizer, max_tokens = onnx.model_id, onnx.dim, "cpu", "minilm", onnx.max_tokens

        def embed_ids(self, ids):
            calls.append("ids")
            return onnx.embed_ids(ids)

        def embed(self, texts):
            calls.append("texts")
            return onnx.embed(texts)

    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, [SAMPLE_DOCS / "guide.md"], IngestOptions([parse_spec("recursive:size=64")], embedder=Spy()))
        rows = store.query("SELECT c.text, e.vec FROM chunks c JOIN embeddings e USING (chunk_id)")
    assert calls == ["ids"]
    direct = onnx.embed([t for t, _ in rows])
    assert np.allclose(np.array([v for _, v in rows]), direct, atol=1e-5)


def test_a_rerun_embeds_chunks_a_previous_run_left_without_vectors(cli, tmp_path, onnx):
    db = tmp_path / "s.duckdb"
    _ingest(cli, db)  # as if a run had been killed after chunking
    res = _ingest_embedded(cli, db, SAMPLE_DOCS, "recursive:size=96")
    assert res["unchanged"] == 5 and res["embedding"]["chunks"] == store_rows(db, "SELECT count(*) FROM chunks")[0][0]
    assert store_rows(db, VECTORS_PER_CHUNK, [onnx.model_id]) == [(0,)]


def test_late_chunks_are_stored_with_their_situated_vectors(cli, tmp_path, onnx):
    db = tmp_path / "s.duckdb"
    res = _ingest_embedded(cli, db, SAMPLE_DOCS, "late:size=96", "recursive:size=96")
    late = store_rows(db, "SELECT c.text, e.vec FROM chunks c JOIN embeddings e USING (chunk_id) "
                          "WHERE c.strategy_id LIKE 'late-%' ORDER BY c.chunk_id")
    n_late = store_rows(db, "SELECT count(*) FROM chunks WHERE strategy_id LIKE 'late-%'")[0][0]
    assert len(late) == n_late > 0 and store_rows(db, VECTORS_PER_CHUNK, [onnx.model_id]) == [(0,)]
    # the stage embedded only the recursive chunks; late vectors are not plain text vectors
    assert res["embedding"]["chunks"] == store_rows(db, "SELECT count(*) FROM chunks WHERE strategy_id "
                                                        "LIKE 'recursive-%'")[0][0]
    isolated = onnx.embed([t for t, _ in late])
    assert ((np.array([v for _, v in late]) * isolated).sum(1) < 0.999).all()
    # late vectors are never found by text: they carry no text hash; every other vector does
    assert store_rows(db, "SELECT count(*) FROM embeddings e JOIN chunks c USING (chunk_id) WHERE "
                          "(e.text_sha256 IS NULL) <> (c.strategy_id LIKE 'late-%')") == [(0,)]
    assert store_rows(db, "SELECT count(*) FROM embeddings e JOIN chunks c USING (chunk_id) WHERE "
                          "e.text_sha256 <> sha256(c.text)") == [(0,)]


def test_ingest_device_cuda_without_cuda_is_a_usage_error(cli, tmp_path):
    try:
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    except ImportError:
        pass
    code, _, err = cli("ingest", SAMPLE_DOCS, "--db", tmp_path / "x.duckdb", "--device", "cuda")
    assert code == 2 and "no CUDA device" in err
    assert not (tmp_path / "x.duckdb").exists()


def test_hnsw_index_agrees_with_exact_search_and_follows_changes(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest_embedded(cli, db, sample_copy, "recursive:size=96")
    q = "How long do returned packets stay in quarantine?"
    args = ("search", q, "--db", db, "-k", "3", "--embed", "minilm-onnx", "--json")
    exact = json.loads(cli(*args)[1])
    hnsw = json.loads(cli(*args, "--index", "hnsw")[1])
    assert [h["chunk_id"] for h in hnsw] == [h["chunk_id"] for h in exact]
    assert np.allclose([h["score"] for h in hnsw], [h["score"] for h in exact], atol=1e-5)
    (sample_copy / "tray.md").write_text("# Quarantine\n\nReturned packets stay in quarantine for fourteen days.\n")
    _ingest_embedded(cli, db, sample_copy, "recursive:size=96")
    top = json.loads(cli(*args, "--index", "hnsw", "--strategy", "recursive")[1])[0]
    assert top["path"].endswith("tray.md")


def test_sage_cutoff():
    from chunkctl.ranking import sage_cutoff

    assert sage_cutoff([0.9, 0.88, 0.86, 0.4, 0.39, 0.38]) == 3  # a cliff after the third
    assert sage_cutoff([0.9, 0.89, 0.88, 0.87]) == 4  # no cliff: the whole pool
    assert sage_cutoff([0.9, 0.2, 0.19], k_min=2) == 3  # never fewer than k_min
    assert sage_cutoff([]) == 0


def test_search_cutoff_sage_returns_a_prefix_of_the_ranking(cli, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest_embedded(cli, db, SAMPLE_DOCS, "recursive:size=96")
    args = ("search", "germination test", "--db", db, "-k", "10", "--embed", "minilm-onnx", "--json")
    full = [h["chunk_id"] for h in json.loads(cli(*args)[1])]
    sage = [h["chunk_id"] for h in json.loads(cli(*args, "--cutoff", "sage")[1])]
    assert 1 <= len(sage) <= len(full) and sage == full[:len(sage)]


def test_search_reads_one_strategy_and_shows_the_matching_part(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    code, _, err = cli("ingest", sample_copy, "--db", db, "-c", "recursive:size=96", "-c", "recursive:size=256",
                       "--embed", "minilm-onnx", "-q")
    assert code == 0, err
    query = "How long do returned seed packets stay in quarantine?"
    code, out, err = cli("search", query, "--db", db, "--embed", "minilm-onnx", "--json")
    hits = json.loads(out)
    assert code == 0 and hits and {h["strategy_id"] for h in hits} == {"recursive-59e39d99"}  # the default only
    assert "also stored: recursive-7872d8cb" in err
    assert hits[0]["relevance"] == 1.0 and "quarantine" in hits[0]["snippet"].lower()
    spans = [(h["path"], h["char_start"], h["char_end"]) for h in hits]
    assert len(spans) == len(set(spans))
    code, out, _ = cli("search", query, "--db", db, "--embed", "minilm-onnx", "--json", "-s", "recursive-7872d8cb")
    assert {h["strategy_id"] for h in json.loads(out)} == {"recursive-7872d8cb"}
    code, out, _ = cli("search", query, "--db", db, "--embed", "minilm-onnx")
    assert code == 0 and "match" in out and "100%" in out and "quarantine" in out  # a labelled, readable score
    code, out, _ = cli("search", "quarantine tray", "--db", db, "--mode", "bm25")
    assert code == 0 and "BM25" in out
    long = [h for h in json.loads(cli("search", "storage vault humidity", "--db", db, "--embed", "minilm-onnx",
                                      "--json", "-s", "recursive-7872d8cb")[1]) if len(h["text"]) > 300]
    assert long and all(len(h["snippet"]) <= 242 for h in long)
    assert any(w in long[0]["snippet"].lower() for w in ("storage", "vault", "humidity"))


def test_search_usage_errors(cli, tmp_path):
    code, _, err = cli("search", "  ", "--db", tmp_path / "none.duckdb")
    assert code == 2 and "the query is empty" in err
    from chunkctl.store import Store

    Store(tmp_path / "empty.duckdb").close()
    code, _, err = cli("search", "seeds", "--db", tmp_path / "empty.duckdb")
    assert code == 2 and "no chunks yet" in err and "chunkctl ingest" in err and "embed" not in err
