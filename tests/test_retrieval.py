"""Retrieval (chunkctl.retrieval, chunkctl.ranking, store/index.py) and `chunkctl tune`: the fusion
arithmetic, BM25 against an independent implementation, search and eval ranking alike under every
option, one validation for both commands, and tune writing the config that eval then uses."""
from __future__ import annotations

import json
import math
import tomllib

import pytest

from chunkctl.chunkers import DEFAULT_SPEC
from chunkctl.ranking import convex, rrf, sage_cutoff, widen, with_neighbours
from chunkctl.retrieval import Retrieval
from conftest import SAMPLE_DOCS

QA = SAMPLE_DOCS / "qa.jsonl"


# -- the arithmetic ----------------------------------------------------------------------------------
def test_score_fusion_normalises_each_side_and_weighs_them():
    dense = [(0, 0.9), (1, 0.5), (2, 0.1)]
    lexical = [(2, 30.0), (3, 20.0), (1, 10.0)]
    # dense: 0 -> 1, 1 -> 0.5, 2 -> 0; BM25: 2 -> 1, 3 -> 0.5, 1 -> 0; 3 is missing from dense (its floor: 0)
    fused = dict(convex(dense, lexical, 0.5))
    assert fused == pytest.approx({0: 0.5, 1: 0.25, 2: 0.5, 3: 0.25})
    assert [p for p, _ in convex(dense, lexical, 1.0)][:2] == [0, 1]  # all dense
    assert [p for p, _ in convex(dense, lexical, 0.0)][:2] == [2, 3]  # all BM25
    # with the exact cosine of a BM25-only candidate, it is placed on the dense scale, not at its floor
    exact = dict(convex(dense, lexical, 0.5, dense_of=lambda p: 0.7))
    assert exact[3] == pytest.approx(0.5 * 0.75 + 0.5 * 0.5)
    assert convex([], [], 0.5) == []
    assert dict(convex([(5, 0.3)], [], 0.4)) == {5: pytest.approx(0.4)}  # one candidate: top of its side


def test_neighbours_lift_a_chunk_beside_a_strong_match():
    groups = ["a", "a", "a", "b"]
    ranked = [(1, 1.0), (3, 0.6), (2, 0.5)]
    got = dict(with_neighbours(ranked, groups, 0.3))
    # 0 and 2 are 1's neighbours (0 joins with nothing of its own); 3 is alone in b
    assert got == pytest.approx({1: 1.0 + 0.3 * 0.5, 2: 0.5 + 0.3 * 1.0, 0: 0.3 * 1.0, 3: 0.6})
    assert with_neighbours(ranked, groups, 0.0) == ranked


def test_rrf_and_sage():
    assert [p for p, _ in rrf([[(1, 0), (2, 0)], [(2, 0), (3, 0)]])] == [2, 1, 3]
    assert rrf([[("a", 0)], [("a", 0)]])[0][1] == pytest.approx(2 / 61)
    assert sage_cutoff([0.9, 0.88, 0.85, 0.3, 0.28]) == 3  # a cliff after 3
    assert sage_cutoff([0.5, 0.49, 0.48]) == 3  # flat: all


def test_widen_returns_non_overlapping_runs_within_a_document():
    docs = ["a"] * 5 + ["b"] * 3
    ranked = [(2, 0.9), (3, 0.8), (5, 0.7), (0, 0.6), (7, 0.5)]
    assert widen(ranked, docs, 3, 0) == [(2, 2, 0.9), (3, 3, 0.8), (5, 5, 0.7)]
    # expand 1: 2 -> 1..3; 3 lies inside it; 5 (first of b) -> 5..6; k = 2 reached
    assert widen(ranked, docs, 2, 1) == [(1, 3, 0.9), (5, 6, 0.7)]
    # k = 3: 0 -> 0..1 touches 1..3 and joins it; 7 -> 6..7 joins 5..6; nothing else is left
    assert widen(ranked, docs, 3, 1) == [(0, 3, 0.9), (5, 7, 0.7)]
    # with a ratio, a neighbour joins only while it scores at least that share of the hit's score:
    # 2 (0.9) takes 3 (0.8 >= 0.5 * 0.9), not 1 (unscored); 5 (0.7) takes nothing (6 is unscored)
    assert widen(ranked, docs, 2, 2, 0.5) == [(2, 3, 0.9), (5, 5, 0.7)]
    runs = widen(ranked, docs, 5, 2)
    assert all(docs[lo] == docs[hi] for lo, hi, _ in runs)
    spans = sorted((lo, hi) for lo, hi, _ in runs)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def test_invalid_combinations_are_refused_once():
    Retrieval()  # the defaults are valid
    for bad in (dict(mode="bm25", memory="mixed"), dict(mode="bm25", index="hnsw"), dict(index="hnsw", fusion="late"),
                dict(memory="mixed", fusion="late"), dict(combine="max"), dict(dense_weight=1.5), dict(expand=-1)):
        with pytest.raises(ValueError):
            Retrieval(**bad)


# -- BM25 against an independent implementation -------------------------------------------------------
def test_bm25_scores_and_stems_match_a_reference_implementation(tmp_path, cli):
    """bm25s (Lucene's BM25) on the same chunks, tokenised as the store's index does, gives the same
    scores up to DuckDB fts's constant factors (log10 for ln; the (k1 + 1) numerator Lucene drops),
    so the same ranking; and the index's Porter stems are PyStemmer's."""
    import bm25s
    import Stemmer

    from chunkctl.store import Store
    from chunkctl.store import index as ix

    db = tmp_path / "s.duckdb"
    assert cli("ingest", SAMPLE_DOCS, "--db", db, "--exclude", "*.jsonl", "--no-embed", "-q")[0] == 0
    questions = [json.loads(line)["question"] for line in QA.read_text().splitlines()][:8]
    with Store(db) as store:
        sid = store.query("SELECT strategy_id FROM strategies")[0][0]
        rows = ix.chunk_table(store, sid)
        texts = ix.chunk_texts(store, sid)
        terms = [ix.bm25_terms(store, sid, t) for t in texts]
        stemmer = Stemmer.Stemmer("porter")
        words = {w for (w,) in store.query(f"SELECT DISTINCT unnest(fts_main_{ix._fts_table(store, sid)}.tokenize(?))",
                                           [" ".join(texts)]) if w.isalpha() and w.isascii()}
        duck = dict(store.query("SELECT w, stem(w, 'porter') FROM (SELECT unnest(?) AS w)", [sorted(words)]))
        assert len(words) > 300 and all(duck[w] == stemmer.stemWord(w) for w in words)
        for k1, b in ((1.2, 0.75), (0.9, 0.4)):
            ref = bm25s.BM25(method="lucene", k1=k1, b=b)
            ref.index(terms, show_progress=False)
            for q in questions:
                got = dict(ix.bm25_ranks(store, [q], sid, len(rows), k1, b)[0])
                want = ref.get_scores(list(dict.fromkeys(ix.bm25_terms(store, sid, q, query=True))))
                for (cid, *_), w in zip(rows, want):
                    assert got.get(cid, 0.0) * math.log(10) / (k1 + 1) == pytest.approx(float(w), rel=1e-4, abs=1e-6)
        assert "2019" in ix.bm25_terms(store, sid, "In 2019, seeds")  # numbers are terms


# -- search and eval: one ranking -------------------------------------------------------------------
SETTINGS = [[], ["--mode", "vector"], ["--mode", "bm25"], ["--combine", "rrf"], ["--dense-weight", "0.8", "--depth", "7"],
            ["--expand", "1"], ["--cutoff", "sage"], ["--mode", "vector", "--index", "hnsw"],
            ["--memory", "per-layer"], ["--bm25-k1", "0.9", "--bm25-b", "0.4", "--mode", "bm25"]]


@pytest.mark.slow
def test_search_and_eval_return_the_same_spans_for_every_setting(tmp_path, cli):
    db = tmp_path / "s.duckdb"
    questions = [json.loads(line)["question"] for line in QA.read_text().splitlines()]
    for flags in SETTINGS:
        code, out, err = cli("eval", "--qa", QA, "--corpus", SAMPLE_DOCS, "--db", db, "-c", "recursive:size=64",
                             "-k", "4", "--json", "-", "-q", *flags)
        assert code == 0, (flags, err)
        report = json.loads(out)
        assert report["retrieval"] == Retrieval(**{**Retrieval().as_dict(), **_as_fields(flags)}).as_dict()
        by_question = {row["question"]: row["returned"] for row in report["per_question"]}
        assert len(by_question) == len(questions)
        for q in questions[:6]:
            code, out, err = cli("search", q, "--db", db, "-k", "4", "--strategy", "recursive", "--json", *flags)
            assert code == 0, (flags, err)
            hits = [(h["chunk_id"], h["char_start"], h["char_end"], round(h["score"], 4)) for h in json.loads(out)]
            assert hits == [(r["chunk_id"], r["char_start"], r["char_end"], round(r["score"], 4))
                            for r in by_question[q]], (flags, q)
            assert hits, (flags, q)


def _as_fields(flags: list[str]) -> dict:
    fields = dict(zip([f[2:].replace("-", "_") for f in flags[::2]], flags[1::2]))
    types = {k: type(v) for k, v in Retrieval().as_dict().items()}
    return {k: types[k](v) for k, v in fields.items()}


def test_both_commands_refuse_the_same_combination(tmp_path, cli):
    db = tmp_path / "s.duckdb"
    assert cli("ingest", SAMPLE_DOCS, "--db", db, "--exclude", "*.jsonl", "--no-embed", "-q")[0] == 0
    bad = ["--mode", "bm25", "--memory", "mixed"]
    s = cli("search", "seeds", "--db", db, *bad)
    e = cli("eval", "--qa", QA, "--db", db, *bad)
    assert s[0] == e[0] == 2 and "shapes the dense side" in s[2] and "shapes the dense side" in e[2]
    assert cli("search", "seeds", "--db", db, "--dense-weight", "1.5")[0] == 2
    assert cli("search", "  ", "--db", db, "--mode", "bm25")[0] == 2


# -- tune ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tune_writes_the_config_that_eval_then_uses(tmp_path, cli):
    (tmp_path / "chunkctl.toml").write_text('db = "other.duckdb"\n\n[ingest]\nexclude = ["*.jsonl"]\n')
    args = ("tune", "--qa", QA, "--corpus", SAMPLE_DOCS, "-c", "recursive:size=64", "-c", "sentence:size=96",
            "--test-share", "0.4", "--json")
    code, out, err = cli(*args)
    assert code == 0, err
    report = json.loads(out)
    assert report["questions"] == {"tune": 13, "held_out": 9}
    winner = report["winner"]
    # the winner: within the budget, the best IoU among those whose recall on the tuning questions is
    # not significantly below the best recall
    fits = [c for c in report["configs"] if c["tokens"] <= report["context"]]
    assert winner in fits
    specs = {c["chunker"] for c in report["configs"]}
    assert specs == {"recursive:size=64", "sentence:size=96", DEFAULT_SPEC}  # the default joins
    assert {p["against"] for p in report["paired"]} <= {"default", "bm25"} and report["paired"]
    config = tomllib.loads((tmp_path / "chunkctl.toml").read_text())
    assert config["db"] == "other.duckdb" and config["ingest"] == {"exclude": ["*.jsonl"]}  # kept
    assert config["chunker"] == [winner["chunker"]] and config["mode"] == winner["retrieval"]["mode"]
    # eval with no flags: the winner's chunker and retrieval
    code, out, err = cli("eval", "--qa", QA, "--corpus", SAMPLE_DOCS, "--json", "-", "-q")
    assert code == 0, err
    got = json.loads(out)
    assert got["retrieval"] == winner["retrieval"] and got["results"][0]["strategy"] == winner["chunker"]
    assert got["results"][0]["recall"] == pytest.approx(
        (13 * winner["tune"]["recall"] + 9 * winner["held_out"]["recall"]) / 22)
    # a re-run resumes: the chunks and vectors are stored, nothing is chunked or embedded again
    before = _runs(tmp_path / "chunkctl.tune.duckdb")
    assert cli(*args, "--no-write")[0] == 0
    assert _runs(tmp_path / "chunkctl.tune.duckdb") == before
    # a spent budget compares what is done (the default is always there) and says what it left out
    code, out, _ = cli(*args, "-c", "structure:size=96", "--budget", "0", "--no-write")
    assert code == 0 and json.loads(out)["skipped"] == ["recursive:size=64", "sentence:size=96", "structure:size=96"]


def test_tune_prefers_precision_when_only_noise_separates_recall():
    from chunkctl.tune import Config, TuneOptions, choose

    n = 40
    a = Config("a", "a", Retrieval(), {"recall": [1.0] * n, "iou": [0.05] * n}, [100.0] * n)
    b = Config("b", "b", Retrieval(), {"recall": [1.0] * (n - 1) + [0.5], "iou": [0.10] * n}, [100.0] * n)
    c = Config("c", "c", Retrieval(), {"recall": [0.5] * n, "iou": [0.50] * n}, [100.0] * n)
    train = list(range(n))
    assert choose([a, b, c], train, TuneOptions([], then="iou")) is b  # c's recall is significantly lower
    assert choose([a, b, c], train, TuneOptions([], then=None)) is a
    assert choose([], train, TuneOptions([])) is None


def _runs(db) -> int:
    from conftest import store_rows

    return store_rows(db, "SELECT count(*) FROM runs")[0][0]
