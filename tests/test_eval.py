"""`chunkctl eval`: Chroma's range metrics on hand-made cases, the QA loaders and reference
placing, the published precision-Ω regression on Chroma's benchmark (no embedder needed), and the
command end to end on sample_docs (tables, JSON, Markdown, Parquet history, quality gates)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from chunkctl.evaluation import metrics as M
from chunkctl.evaluation.qa import Reference, load_qa, place
from chunkctl.evaluation.run import EvalOptions, evaluate
from chunkctl.retrieval import Retrieval
from conftest import SAMPLE_DOCS

CHROMA = Path(__file__).resolve().parent.parent.parent / "shared" / "bench-data" / "chroma"


# -- metrics ---------------------------------------------------------------------------------------
def test_golden_case_from_the_spec():
    refs = [(10, 20)]
    recall, precision, iou = M.retrieval_scores(refs, [((0, 15), True)])
    assert (recall, precision, iou) == (0.5, 5 / 15, 5 / (15 + 5))
    pomega, touching = M.precision_omega(refs, [(0, 15), (15, 30)])
    assert pomega == pytest.approx(10 / 30) and touching == 2


def test_touching_chunk_counts_for_precision_omega_but_adds_nothing():
    refs = [(10, 20)]
    exact, n1 = M.precision_omega(refs, [(10, 20), (30, 40)])
    touching, n2 = M.precision_omega(refs, [(10, 20), (20, 25)])  # [20,25) only touches
    assert (exact, n1) == (1.0, 1) and (touching, n2) == (10 / 15, 2)


def test_other_documents_chunks_cost_precision_and_duplicates_count_twice():
    refs = [(0, 10)]
    r, p, i = M.retrieval_scores(refs, [((0, 10), True), ((0, 10), False), ((0, 10), True)])
    assert r == 1.0 and p == pytest.approx(10 / 30) and i == pytest.approx(10 / 30)


def test_iou_adds_the_missed_reference_characters():
    refs = [(0, 10), (50, 60)]
    r, p, i = M.retrieval_scores(refs, [((0, 20), True)])
    assert r == 0.5 and p == 0.5 and i == pytest.approx(10 / (20 + 10))


def test_rank_metrics_and_coverage():
    hit, rr, ndcg = M.rank_scores([False, True, False], n_relevant=2)
    assert hit == 1.0 and rr == 0.5
    assert ndcg == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert M.rank_scores([False, False], 1) == (0.0, 0.0, 0.0)
    assert M.covered_whole([(5, 8), (9, 12)], [(0, 10), (10, 20)]) == 0.5


def test_paired_statistics():
    same = M.paired([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same["mean_diff"] == 0 and same["ci95"] == [0, 0] and same["ties"] == 3
    better = M.paired([1.0] * 20, [0.0] * 20)
    assert better["wins"] == 20 and better["ci95"][0] == pytest.approx(1.0)
    assert M.mean_std([0.0, 1.0]) == (0.5, 0.5)  # population std, as Chroma reports


# -- QA sets ---------------------------------------------------------------------------------------
def test_native_flat_and_reference_lines(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text(json.dumps({"question": "q1", "doc": "a.md", "answer": "xy", "char_start": 1, "char_end": 3}) + "\n"
                 + json.dumps({"question": "q2", "references": [{"doc": "b.txt", "char_start": 0, "char_end": 2,
                                                                 "text": "hi"}]}) + "\n")
    qa = load_qa(f)
    assert qa.format == "jsonl" and [q.question for q in qa.questions] == ["q1", "q2"]
    assert qa.questions[0].refs == (Reference("a.md", 1, 3, "xy"),)


def test_chroma_csv(tmp_path):
    f = tmp_path / "questions_df.csv"
    with open(f, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "references", "corpus_id"])
        w.writerow(["q", json.dumps([{"content": "abc", "start_index": 3, "end_index": 6}]), "corp"])
    qa = load_qa(f)
    assert qa.format == "chroma" and qa.questions[0].refs == (Reference("corp", 3, 6, "abc"),)


def test_squad_paragraphs_join_into_one_document_with_shifted_offsets(tmp_path):
    f = tmp_path / "squad.json"
    data = {"data": [{"title": "Seeds", "paragraphs": [
        {"context": "First paragraph.", "qas": [{"question": "a?", "answers": [{"text": "First", "answer_start": 0}]}]},
        {"context": "Second one here.", "qas": [{"question": "b?", "answers": [{"text": "one", "answer_start": 7}]},
                                               {"question": "c?", "answers": [], "is_impossible": True}]}]}]}
    f.write_text(json.dumps(data))
    qa = load_qa(f)
    (key, text), = qa.documents.items()
    assert text == "First paragraph.\n\nSecond one here." and len(qa.questions) == 2
    r = qa.questions[1].refs[0]
    assert text[r.start:r.end] == "one" and r.doc == key


def test_placing_references():
    text = "alpha beta gamma beta"
    ok, note = place(Reference("d", 6, 10, "beta"), text)
    assert (ok.start, ok.end, note) == (6, 10, None)
    moved, note = place(Reference("d", 15, 19, "beta"), text)
    assert (moved.start, moved.end) == (17, 21) and "moved" in note and "2 occurrences" in note
    located, note = place(Reference("d", None, None, "gamma"), text)
    assert (located.start, located.end) == (11, 16) and "located" in note
    missing, note = place(Reference("d", 0, 3, "delta"), text)
    assert missing is None and "not found" in note


# -- the published regression: precision-Ω on Chroma's benchmark ------------------------------------
@pytest.mark.slow
def test_precision_omega_reproduces_chroma(tmp_path):
    """Fixed cl100k windows (Chroma's TokenText) and LangChain-style recursive chunks: precision-Ω
    ×100 as published (find: first-occurrence placement) and with true offsets. Retrieval is BM25
    only because precision-Ω does not depend on it."""
    from chunkctl.chunkers import parse_spec
    from chunkctl.store import Store

    specs = {"fixed:size=800,overlap=400,tokenizer=cl100k": (4.7, 4.67),
             "fixed:size=400,overlap=200,tokenizer=cl100k": (8.4, 8.49),
             "fixed:size=400,tokenizer=cl100k": (12.5, 12.74),
             "fixed:size=200,tokenizer=cl100k": (21.0, 21.40),
             "recursive-lc:size=200": (29.9, 29.9)}
    chunkers = [parse_spec(s) for s in specs]
    qa = load_qa(CHROMA / "questions_df.csv")
    with Store(tmp_path / "chroma.duckdb") as store:
        got = {}
        for locate in ("find", "offsets"):
            rep = evaluate(store, qa, EvalOptions(chunkers, ks=[5], retrieval=Retrieval(mode="bm25"), locate=locate),
                           corpus=[str(CHROMA / "corpora")])
            assert rep.n_questions == 472 and not rep.problems
            got[locate] = {r["strategy"]: 100 * r["precision_omega"] for r in rep.rows()}
    for spec, (find, offsets) in specs.items():
        name = parse_spec(spec).spec
        assert got["find"][name] == pytest.approx(find, abs=0.05), (spec, got["find"][name])
        assert got["offsets"][name] == pytest.approx(offsets, abs=0.05), (spec, got["offsets"][name])


# -- the command -------------------------------------------------------------------------------------
def test_eval_on_sample_docs(cli, tmp_path):
    args = ["eval", "--qa", SAMPLE_DOCS / "qa.jsonl", "--corpus", SAMPLE_DOCS, "--db", tmp_path / "s.duckdb",
            "-c", "recursive:size=128", "-c", "structure", "-k", "1", "-k", "3", "-k", "min",
            "--baseline", "recursive:size=128"]
    code, out, err = cli(*args, "--json", tmp_path / "r.json", "--markdown", tmp_path / "r.md",
                         "--save", tmp_path / "h.parquet")
    assert code == 0, err
    assert "recursive:size=128" in out and "structure" in out and "against recursive:size=128" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["questions"] == 22 and not res["problems"] and len(res["results"]) == 6
    row = next(r for r in res["results"] if r["strategy"] == "recursive:size=128" and r["k"] == 3)
    assert {r["k"] for r in res["results"]} == {1, 3, "min"}  # numbers, and "min"
    per_q = [q for q in res["per_question"] if q["strategy"] == "structure"]
    assert len(per_q) == 22 and set(per_q[0]["metrics"]) == {"1", "3", "min"}
    assert {"question", "document", "returned"} <= set(per_q[0]) and per_q[0]["returned"][0]["char_end"] > 0
    assert 0.5 < row["recall"] <= 1 and row["chunks"] > 0 and 0 < row["precision_omega"] <= 1
    assert {p["metric"] for p in res["paired"]} == {"recall", "iou", "precision"}
    assert "| structure | 3 |" in (tmp_path / "r.md").read_text()
    import polars as pl

    assert pl.read_parquet(tmp_path / "h.parquet").height == 6
    code, _, _ = cli(*args, "--save", tmp_path / "h.parquet", "-q")
    assert code == 0 and pl.read_parquet(tmp_path / "h.parquet").height == 12  # appended: a history
    plain = ["--mode", "vector", "--neighbour-weight", "0", "--expand", "0", "--cutoff", "k"]  # as the gate was set
    code, out, err = cli(*args, *plain, "-q", "--fail-under", "recall@1=0.99", "--fail-under", "iou=0.0")
    assert code == 4 and "gate failed" in err and "structure recall@1" in err
    assert "recursive:size=128 recall@1" not in err  # that one passes


def test_eval_reports_unplaceable_references_and_usage_errors(cli, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Seeds are kept cold and dry for years.\n")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "How are seeds kept?", "doc": "a.txt", "answer": "cold and dry",
                              "char_start": 15, "char_end": 27}) + "\n"
                  + json.dumps({"question": "Missing?", "doc": "a.txt", "answer": "not there",
                                "char_start": 0, "char_end": 9}) + "\n"
                  + json.dumps({"question": "Elsewhere?", "doc": "b.txt", "answer": "x"}) + "\n")
    code, out, err = cli("eval", "--qa", qa, "--corpus", docs, "--db", tmp_path / "s.duckdb", "--mode", "bm25",
                         "--json", "-")
    assert code == 0
    res = json.loads(out)
    assert res["questions"] == 1 and len(res["problems"]) == 4
    assert any("not found" in p for p in res["problems"]) and any("'b.txt' not in the corpus" in p
                                                                  for p in res["problems"])
    assert cli("eval", "--qa", qa, "--corpus", docs, "-k", "zero")[0] == 2
    assert cli("eval", "--qa", qa, "--corpus", docs, "--fail-under", "speed=1")[0] == 2
    assert cli("eval", "--qa", tmp_path / "nope.jsonl")[0] == 2


def test_html_report_draws_in_a_real_browser(cli, tmp_path):
    """The report rendered by headless Chromium (Debian's package, installed by `make test`): the
    screenshot must show each strategy's colour where the plots are."""
    import shutil
    import subprocess

    from PIL import Image

    from chunkctl.evaluation.html import COLOURS

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed for this test: `make test` installs it (apt-get install chromium)"
    report = tmp_path / "r.html"
    code, _, err = cli("eval", "--qa", SAMPLE_DOCS / "qa.jsonl", "--corpus", SAMPLE_DOCS, "--db", tmp_path / "s.duckdb",
                       "-c", "recursive:size=128", "-c", "structure", "-k", "1", "-k", "3", "--mode", "bm25",
                       "--html", report, "-q")
    assert code == 0, err
    page = report.read_text()
    assert page.count('<svg class="plot"') == 4 and "<script" not in page and "http" not in page.split("<svg")[0]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([browser, *flags, "--dump-dom", report.as_uri()], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    # the DOM as the browser built it: every plot has both axis titles and five y ticks, the misses table is there
    from html.parser import HTMLParser

    class SvgText(HTMLParser):
        def __init__(self):
            super().__init__()
            self.plots, self.cls, self.rows = [], None, 0

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "svg":
                self.plots.append({"axis-title": [], "tick": []})
            elif tag == "text" and self.plots:
                self.cls = a.get("class")
            elif tag == "tr" and self.in_misses:
                self.rows += 1
            if tag == "table":
                self.in_misses = a.get("class") == "misses"

        in_misses = False

        def handle_data(self, data):
            if self.cls in ("axis-title", "tick"):
                self.plots[-1][self.cls].append(data.strip())
                self.cls = None

    seen = SvgText()
    seen.feed(dom)
    assert len(seen.plots) == 4
    titles = [p["axis-title"] for p in seen.plots]
    assert titles[0] == ["k (results per question)", "recall ×100"] and titles[1] == ["k (results per question)",
                                                                                        "IoU ×100"]
    assert titles[2] == ["tokens per chunk (bin edges)", "share of chunks"] and titles[3][0] == "document"
    for p in seen.plots:
        assert len(p["tick"]) >= 5 and p["tick"][0] == "0" + ("%" if "share of chunks" in p["axis-title"] else "")
    assert seen.plots[0]["tick"][-2:] == ["1", "3"]  # the k values label the x axis
    assert len(seen.plots[2]["tick"]) == 5 + 6  # 21 bin edges, every fourth labelled
    assert 'id="misses"' in dom and seen.rows >= 2  # a header row and at least one missed question
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,2400", report.as_uri()],
                   check=True, capture_output=True, timeout=120)
    img = Image.open(shot).convert("RGB")
    pixels = np.asarray(img).reshape(-1, 3).astype(int)
    for colour in COLOURS[:2]:  # one per strategy
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        drawn = int((np.abs(pixels - rgb).sum(axis=1) < 30).sum())
        assert drawn > 500, f"{colour}: only {drawn} pixels drawn"


# -- qa generate ------------------------------------------------------------------------------------
SEEDS = ("Seed banks keep seeds at minus eighteen degrees Celsius in sealed foil packets. "
         "Every ten years a sample of each accession is germinated to check that it still grows. "
         "Accessions that fall below eighty-five percent germination are regrown in the field.\n")


def test_qa_generate_keeps_only_verbatim_supported_distinct_questions(cli, tmp_path):
    """The model is scripted (a server of the tests' own on 127.0.0.1) because this test is about the
    pipeline's arithmetic: which answers are kept; the embedding filters use the real MiniLM."""
    from llm_server import FaultServer

    def answer(question, *excerpts):
        return ("text", json.dumps({"question": question, "references": list(excerpts)}))

    server = FaultServer()
    server.script.extend([
        answer("At what temperature do seed banks keep seeds?", "keep seeds at minus eighteen degrees Celsius"),
        answer("How often are accessions germinated?", "every ten years, roughly"),  # not in the text: retried
        answer("At what temperature are the seeds kept by seed banks?",
               "Seed banks keep seeds at minus eighteen degrees Celsius"),  # a near-duplicate
        answer("Who won the football world cup in 1954?", "sealed foil packets"),  # weakly supported
        answer("What happens to accessions below eighty-five percent germination?",
               "Accessions that fall below eighty-five percent germination are regrown in the field."),
    ])
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bank.txt").write_text(SEEDS)
    out = tmp_path / "qa.jsonl"
    code, stdout, err = cli("--llm", "openai", "--llm-base-url", server.url, "--llm-model", "fault-model",
                            "qa", "generate", docs, "-o", out, "--per-doc", "4")
    server.close()
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question"] for r in rows] == ["At what temperature do seed banks keep seeds?",
                                             "What happens to accessions below eighty-five percent germination?"]
    for r in rows:
        for ref in r["references"]:
            assert ref["doc"] == "bank.txt" and SEEDS[ref["char_start"]:ref["char_end"]] == ref["text"]
    assert "1 with an excerpt not in the document, 1 weakly supported, 1 near-duplicates" in stdout
    code, stdout, _ = cli("eval", "--qa", out, "--corpus", docs, "--db", tmp_path / "s.duckdb", "--mode", "bm25",
                          "--json", "-")  # the generated set is a valid eval input
    assert code == 0 and json.loads(stdout)["questions"] == 2


def test_find_excerpt_tolerates_reflowed_white_space():
    from chunkctl.evaluation.generate import find_excerpt

    text = "one two\nthree four. one two three"
    assert find_excerpt(text, "one two three", near=30) == (20, 33)
    assert find_excerpt(text, "two three  four.") == (4, 19)
    assert find_excerpt(text, "five") is None


# -- intrinsic metrics (Adaptive Chunking) ----------------------------------------------------------
def test_size_compliance_and_block_integrity():
    from chunkctl.evaluation.intrinsic import block_integrity, size_compliance

    assert size_compliance([50, 100, 1100, 1101]) == 0.5 and size_compliance([]) is None
    blocks = [(0, 100), (100, 200), (200, 300)]
    assert block_integrity(blocks, [0, 100, 200]) == 1.0  # cuts on the boundaries
    assert block_integrity(blocks, [0, 103]) == 1.0  # within the 5-character tolerance
    assert block_integrity(blocks, [0, 150, 250]) == pytest.approx(1 / 3)
    assert block_integrity(blocks, [0]) == 1.0


def test_cohesion_and_coherence_arithmetic():
    """A fake embedder (an arithmetic test): texts made of 'a' point one way, of 'b' another."""
    from chunkctl.evaluation.intrinsic import contextual_coherence, intrachunk_cohesion

    def embed(texts):
        v = np.array([[t.count("a"), t.count("b")] for t in texts], dtype=float)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    text = "aaaa" + "bbbb" + "aaaa"
    # one chunk over an 'a' block and a 'b' block: cos(a, a+b) = cos(b, a+b) = 0.7071
    assert intrachunk_cohesion(text, [(0, 8)], [4, 8], embed) == pytest.approx(0.5 ** 0.5)
    assert intrachunk_cohesion(text, [(0, 4), (4, 8)], [4, 8], embed) is None  # no chunk is cut
    # the window from chunk 0 holds all three (3 tokens <= 3,000): its vector is (8, 4)/|.|; the
    # windows from 1 and 2 end at the same chunk (or hold one) and are not kept
    assert contextual_coherence(text, [(0, 4), (4, 8), (8, 12)], [1, 1, 1], embed) == pytest.approx(
        (8 + 4 + 8) / (3 * 80 ** 0.5))
    assert contextual_coherence(text, [(0, 12)], [3], embed) is None


def test_eval_intrinsic_in_json(cli, tmp_path):
    code, out, err = cli("eval", "--qa", SAMPLE_DOCS / "qa.jsonl", "--corpus", SAMPLE_DOCS, "--db", tmp_path / "s.duckdb",
                         "-c", "structure", "--mode", "bm25", "--intrinsic", "--json", "-")
    assert code == 0, err
    row = json.loads(out)["results"][0]
    assert row["intrinsic_sc"] == pytest.approx(1.0) and 0 < row["intrinsic_icc"] <= 1
    assert 0 < row["intrinsic_dcc"] <= 1 and row["intrinsic_bi"] == pytest.approx(1.0) and row["intrinsic_rc"] is None


def test_eval_on_a_squad_file_writes_its_documents_beside_the_store(cli, tmp_path):
    data = {"data": [{"title": "Seed banks", "paragraphs": [
        {"context": SEEDS.split(". ")[0] + ".", "qas": [
            {"question": "At what temperature are seeds kept?", "answers": [{"text": "minus eighteen degrees Celsius",
                                                                             "answer_start": 25}]}]},
        {"context": "Every ten years a sample of each accession is germinated.", "qas": [
            {"question": "How often is a sample germinated?",
             "answers": [{"text": "Every ten years", "answer_start": 0}]}]}]}]}
    f = tmp_path / "squad.json"
    f.write_text(json.dumps(data))
    code, out, err = cli("eval", "--qa", f, "--db", tmp_path / "s.duckdb", "--mode", "bm25", "-c", "sentence:size=16",
                         "-k", "1", "--json", "-")
    assert code == 0, err
    res = json.loads(out)
    assert res["questions"] == 2 and not res["problems"] and res["results"][0]["recall"] == 1.0
    assert (tmp_path / "s.qa-docs" / "0000-Seed_banks.txt").exists()


def test_eval_reports_rejected_files_and_refuses_a_qa_set_that_fits_nothing(cli, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(SEEDS)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "How cold?", "doc": "a.txt", "answer": "minus eighteen degrees Celsius"}) + "\n")
    code, out, err = cli("eval", "--qa", qa, "--corpus", docs, "--db", tmp_path / "s.duckdb", "--mode", "bm25",
                         "--json", "-")
    assert code == 0 and any("broken.pdf: rejected at" in p for p in json.loads(out)["problems"])
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"question": "?", "doc": "zzz.txt", "answer": "x"}) + "\n")
    code, _, err = cli("eval", "--qa", other, "--corpus", docs, "--db", tmp_path / "s.duckdb", "--mode", "bm25")
    assert code == 2 and "no question of the QA set could be placed" in err and "zzz.txt" in err


def test_eval_with_a_corpus_keeps_out_of_the_main_store(cli, tmp_path):
    """Without --db, the strategies eval tries go to chunkctl.eval.duckdb, not to the main store (named
    by chunkctl.toml or CHUNKCTL_DB); without --corpus, eval reads the main store."""
    from pathlib import Path

    Path("chunkctl.toml").write_text('db = "main.duckdb"\n')
    args = ("eval", "--qa", SAMPLE_DOCS / "qa.jsonl", "-c", "recursive:size=128", "--mode", "bm25", "-q")
    assert cli(*args, "--corpus", SAMPLE_DOCS)[0] == 0
    assert Path("chunkctl.eval.duckdb").exists() and not Path("main.duckdb").exists()
    assert cli(*args, "--corpus", SAMPLE_DOCS, env={"CHUNKCTL_DB": "env.duckdb"})[0] == 0
    assert not Path("env.duckdb").exists()
    assert cli("ingest", SAMPLE_DOCS, "-c", "recursive:size=128", "--no-embed", "-q")[0] == 0
    assert Path("main.duckdb").exists()
    code, out, err = cli(*args[:-1], "--json", "-")  # no --corpus: the main store's documents
    assert code == 0 and json.loads(out)["questions"] == 22, err
