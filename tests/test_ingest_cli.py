"""The CLI end to end, asserted through the store: ingest, re-ingest, change, prune, force,
export, show, stats, chunk, config precedence."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from chunkctl.chunkers import parse_spec

from conftest import OFFSETS_VIOLATIONS, SAMPLE_DOCS, store_rows


def counts(db: Path) -> dict:
    return {t: store_rows(db, f"SELECT count(*) FROM {t}")[0][0]
            for t in ("documents", "chunks", "strategies", "document_strategies", "runs", "rejects")}


def chunk_set(db: Path, path_like: str = "%") -> set:
    return set(store_rows(db, "SELECT c.chunk_id, c.text FROM chunks c JOIN documents d USING (doc_id) "
                              "WHERE d.path LIKE ?", [path_like]))


def test_ingest_sample_docs_and_offsets_hold_in_sql(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    code, out, err = cli("ingest", sample_copy, "--db", db, "-c", "recursive:size=64", "-c", "structure", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["new"] == 5 and summary["rejected"] == 0
    assert store_rows(db, OFFSETS_VIOLATIONS) == []
    assert counts(db)["documents"] == 5
    per_doc = store_rows(db, "SELECT d.mime, count(*), count(c.page_start) FROM chunks c "
                             "JOIN documents d USING (doc_id) GROUP BY 1")
    by_mime = {m: (n, paged) for m, n, paged in per_doc}
    assert by_mime["application/pdf"][0] == by_mime["application/pdf"][1]  # every PDF chunk has pages
    assert store_rows(db, "SELECT count(*) FROM chunks WHERE heading_path = []"
                          " AND doc_id IN (SELECT doc_id FROM documents WHERE mime = 'text/markdown')")[0][0] == 0
    names = {r[0] for r in store_rows(db, "SELECT name FROM migrations")}
    from chunkctl.store.schema import MIGRATIONS
    assert names == {name for name, _ in MIGRATIONS} and "003_vectors_once" in names


def test_reingest_unchanged_writes_nothing_and_says_so(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli("ingest", sample_copy, "--db", db)[0] == 0
    before = counts(db)
    mtime = db.stat().st_mtime_ns
    code, out, _ = cli("ingest", sample_copy, "--db", db)
    assert code == 0 and "Nothing to do: 5 document(s) unchanged" in out
    assert counts(db) == before
    assert db.stat().st_mtime_ns == mtime


def test_changed_document_replaces_its_chunks_for_every_strategy(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli("ingest", sample_copy, "--db", db, "-c", "recursive:size=64", "-c", "sentence:size=64")[0] == 0
    guide = sample_copy / "guide.md"
    others_before = chunk_set(db, "%station.html")
    old = chunk_set(db, "%guide.md")
    guide.write_text(guide.read_text().replace("fourteen days", "twenty-one days") + "\n## Added\n\nA new section.\n")
    code, out, _ = cli("ingest", sample_copy, "--db", db, "-c", "recursive:size=64", "--json")
    assert code == 0
    s = json.loads(out)
    assert (s["updated"], s["unchanged"], s["new"]) == (1, 4, 0)
    new = chunk_set(db, "%guide.md")
    assert new != old and any("twenty-one days" in t for _, t in new)
    assert not any("fourteen days" in t for _, t in new)
    # the other strategy's chunks of the changed file pointed into the old text: they are gone
    sids = store_rows(db, "SELECT DISTINCT s.name FROM chunks c JOIN strategies s USING (strategy_id) "
                          "JOIN documents d USING (doc_id) WHERE d.path LIKE '%guide.md'")
    assert sids == [("recursive",)]
    assert chunk_set(db, "%station.html") == others_before
    assert store_rows(db, OFFSETS_VIOLATIONS) == []
    dup = store_rows(db, "SELECT doc_id, strategy_id, seq, count(*) FROM chunks GROUP BY ALL HAVING count(*) > 1")
    assert dup == []


def test_new_strategy_on_unchanged_documents_adds_only_that_strategy(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli("ingest", sample_copy, "--db", db, "-c", "recursive")[0] == 0
    rec = chunk_set(db)
    code, out, _ = cli("ingest", sample_copy, "--db", db, "-c", "recursive", "-c", "fixed:size=64", "--json")
    res = json.loads(out)  # the files are unchanged; the chunks written say what was added
    assert code == 0 and (res["updated"], res["unchanged"], res["new"]) == (0, 5, 0)
    assert list(res["chunks_written"]) == [parse_spec("fixed:size=64").strategy_id]
    assert res["seen"] == res["new"] + res["updated"] + res["unchanged"] + res["rejected"]
    assert rec < chunk_set(db)
    assert store_rows(db, "SELECT count(DISTINCT strategy_id) FROM document_strategies")[0][0] == 2


def test_prune_removes_documents_whose_files_disappeared(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli("ingest", sample_copy, "--db", db)[0] == 0
    (sample_copy / "notes.txt").unlink()
    code, out, _ = cli("ingest", sample_copy, "--db", db, "--json")
    assert json.loads(out)["pruned"] == 0 and counts(db)["documents"] == 5  # only with --prune
    code, out, _ = cli("ingest", sample_copy, "--db", db, "--prune", "--json")
    assert code == 0 and json.loads(out)["pruned"] == 1
    assert counts(db)["documents"] == 4
    assert store_rows(db, "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT doc_id FROM documents)")[0][0] == 0
    assert store_rows(db, "SELECT count(*) FROM document_strategies "
                          "WHERE doc_id NOT IN (SELECT doc_id FROM documents)")[0][0] == 0


def test_force_redoes_everything_with_identical_results(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli("ingest", sample_copy, "--db", db)[0] == 0
    before = chunk_set(db)
    code, out, _ = cli("ingest", sample_copy, "--db", db, "--force", "--json")
    assert code == 0 and json.loads(out)["updated"] == 5
    assert chunk_set(db) == before and counts(db)["chunks"] == len(before)


def test_export_parquet_round_trips_every_table(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli("ingest", sample_copy, "--db", db)[0] == 0
    code, out, _ = cli("export", "--db", db, "--parquet", tmp_path / "pq")
    assert code == 0
    con = duckdb.connect()
    for table, n in counts(db).items():  # (the embedding tables are covered in test_embed_search)
        f = tmp_path / "pq" / f"{table}.parquet"
        assert f.exists()
        assert con.execute(f"SELECT count(*) FROM read_parquet('{f}')").fetchone()[0] == n
    joined = con.execute(f"""SELECT count(*) FROM read_parquet('{tmp_path}/pq/chunks.parquet') c
        JOIN read_parquet('{tmp_path}/pq/documents.parquet') d USING (doc_id)
        WHERE substring(d.text, c.char_start + 1, c.char_end - c.char_start) = c.text""").fetchone()[0]
    assert joined == counts(db)["chunks"]


def test_show_stats_and_chunkers(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli("ingest", sample_copy, "--db", db, "-c", "recursive:size=64")[0] == 0
    code, out, _ = cli("show", "report.pdf", "--db", db)
    assert code == 0 and "p.2" in out and "Annual Report 2025" in out
    code, out, _ = cli("show", "guide.md", "--db", db, "--json")
    shown = json.loads(out)
    text = store_rows(db, "SELECT text FROM documents WHERE doc_id = ?", [shown["doc_id"]])[0][0]
    assert all(text[c["char_start"]:c["char_end"]] == c["text"] for c in shown["chunks"])
    assert cli("show", "nothing-like-this", "--db", db)[0] == 2
    code, out, _ = cli("stats", "--db", db, "--json")
    st = json.loads(out)
    assert st["documents"] == 5 and st["strategies"][0]["max"] <= 64
    code, out, _ = cli("chunkers", "--json")
    names = {c["name"] for c in json.loads(out)}
    assert names == {"fixed", "recursive", "recursive-lc", "sentence", "structure", "split-merge", "semantic",
                     "semantic-double", "cluster", "late", "ppl", "margin", "lumber", "idc", "adaptive", "qchunker", "mom"}
    assert cli("stats", "--db", tmp_path / "missing.duckdb")[0] == 2


def test_chunk_reads_stdin_and_files_and_prints_jsonl(cli):
    text = "First paragraph about seeds.\n\nSecond paragraph about weather. " * 20
    code, out, _ = cli("chunk", "-", "-c", "recursive:size=32", input=text)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and all(text.replace("\r\n", "\n")[r["char_start"]:r["char_end"]] == r["text"] for r in rows)
    assert set(rows[0]) >= {"doc", "seq", "char_start", "char_end", "page_start", "page_end", "heading_path",
                            "n_tokens", "text"}
    code, out, _ = cli("chunk", SAMPLE_DOCS / "report.pdf", "-c", "sentence:size=48")
    assert code == 0 and {json.loads(line)["page_start"] for line in out.splitlines()} == {1, 2, 3}
    assert cli("chunk", "-", "-c", "bogus", input="x")[0] == 2
    code, _, err = cli("chunk", "-", "--format", "pdf", input="not a pdf")
    assert code == 3 and "not a PDF" in err


def test_chunk_sniffs_stdin_takes_several_files_and_shows_enrichment(cli, tmp_path):
    pdf = (SAMPLE_DOCS / "report.pdf").read_bytes()
    code, out, _ = cli("chunk", "-", input=pdf)  # `cat report.pdf | chunkctl chunk -`
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {r["page_start"] for r in rows} == {1, 2, 3}
    md = (SAMPLE_DOCS / "guide.md").read_text()
    code, out, _ = cli("chunk", "-", input=md)  # piped Markdown keeps its headings
    assert code == 0 and any(json.loads(line)["heading_path"][-1:] == ["Storage conditions"]
                             for line in out.splitlines())
    html = (SAMPLE_DOCS / "station.html").read_text()
    code, out, _ = cli("chunk", "-", input=html)
    assert code == 0 and "<" not in json.loads(out.splitlines()[0])["text"]
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 broken")
    code, out, err = cli("chunk", SAMPLE_DOCS / "guide.md", bad, SAMPLE_DOCS / "notes.txt", "--enrich", "structure")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 3 and "bad.pdf: rejected (parse)" in err  # the others are printed
    assert {r["doc"].rsplit("/", 1)[-1] for r in rows} == {"guide.md", "notes.txt"}
    guide = next(r for r in rows if r["doc"].endswith("guide.md"))
    assert guide["metadata"]["structure"]["file"] == "guide.md"
    assert guide["embed_text"].startswith("Document: Larkspur") and guide["embed_text"].endswith(guide["text"])
    assert cli("chunk", SAMPLE_DOCS / "guide.md", tmp_path / "missing.md")[0] == 2


def test_unknown_file_types_are_skipped_and_listed(cli, tmp_path):
    code, out, _ = cli("ingest", SAMPLE_DOCS, "--db", tmp_path / "s.duckdb", "--no-embed", "--json")
    res = json.loads(out)  # the repo's own sample_docs holds qa.jsonl: not a failure
    assert code == 0 and [p.rsplit("/", 1)[-1] for p in res["skipped_files"]] == ["qa.jsonl"]
    assert res["seen"] == res["new"] + res["updated"] + res["unchanged"] + res["skipped"] + res["rejected"] == 6
    code, out, _ = cli("ingest", SAMPLE_DOCS, "--db", tmp_path / "s.duckdb", "--no-embed")
    assert code == 0 and "skipped 1 file(s) of types chunkctl does not read (.jsonl 1): qa.jsonl" in out
    code, out, _ = cli("ingest", SAMPLE_DOCS, "--db", tmp_path / "t.duckdb", "--no-embed", "--strict", "--json")
    res = json.loads(out)
    assert code == 3 and res["skipped"] == 0 and [r["path"].rsplit("/", 1)[-1] for r in res["rejects"]] == ["qa.jsonl"]


def test_config_typos_are_usage_errors_and_keys_are_option_names(cli, sample_copy):
    Path("chunkctl.toml").write_text('chunkr = "fixed"\n')
    code, _, err = cli("stats")
    assert code == 2 and "unknown key 'chunkr' (did you mean 'chunker'?)" in err
    Path("chunkctl.toml").write_text('[ingst]\nchunker = ["fixed"]\n')
    code, _, err = cli("stats")
    assert code == 2 and "unknown table [ingst] (did you mean [ingest]?)" in err
    Path("chunkctl.toml").write_text('[ingest]\nembed = "no-such-model"\n')  # --embed's key is embed
    code, _, err = cli("ingest", sample_copy)
    assert code == 2 and "unknown embedding model 'no-such-model'" in err
    Path("chunkctl.toml").write_text('[ingest]\nno_embed = true\nchunker = ["fixed:size=64"]\n[llm.cache]\njson = true\n')
    code, out, err = cli("ingest", sample_copy, "--json")
    assert code == 0 and "embedding" not in json.loads(out), err
    assert list(json.loads(out)["chunks_written"]) == [parse_spec("fixed:size=64").strategy_id]


def test_config_precedence_flag_over_env_over_file(cli, sample_copy, tmp_path):
    Path("chunkctl.toml").write_text('db = "from-file.duckdb"\n[ingest]\nchunker = ["fixed:size=100"]\n')
    assert cli("ingest", sample_copy)[0] == 0
    assert Path("from-file.duckdb").exists()
    assert store_rows(Path("from-file.duckdb"), "SELECT DISTINCT name FROM strategies") == [("fixed",)]
    assert cli("ingest", sample_copy, env={"CHUNKCTL_DB": "from-env.duckdb"})[0] == 0
    assert Path("from-env.duckdb").exists()
    assert cli("ingest", sample_copy, "--db", "from-flag.duckdb", env={"CHUNKCTL_DB": "from-env.duckdb"})[0] == 0
    assert Path("from-flag.duckdb").exists()
    assert store_rows(Path("from-flag.duckdb"), "SELECT DISTINCT name FROM strategies") == [("fixed",)]
    code, _, err = cli("ingest", sample_copy, "--db", "x.duckdb", "-c", "nope")
    assert code == 2 and "unknown chunker" in err


def test_doctor_reports_an_offline_ready_install(cli):
    code, out, _ = cli("doctor", "--json")
    checks = {c["check"]: c for c in json.loads(out)}
    assert code == 0, [c for c in checks.values() if c["required"] and not c["ok"]]
    assert checks["MiniLM tokenizer (offline)"]["ok"] and checks["DuckDB fts + vss extensions (by path)"]["ok"]
    assert checks["unstructured extra (offline)"]["ok"]


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("chunkctl ")


def test_include_exclude_and_missing_paths(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    code, out, _ = cli("ingest", sample_copy, "--db", db, "--include", "*.md", "--include", "*.html", "--json")
    assert code == 0 and json.loads(out)["new"] == 2
    code, out, _ = cli("ingest", sample_copy, "--db", db, "--exclude", "*.pdf", "--exclude", "*.docx", "--json")
    assert code == 0 and json.loads(out)["new"] == 1  # notes.txt; the two above are unchanged
    assert {Path(p).name for (p,) in store_rows(db, "SELECT path FROM documents")} == {
        "guide.md", "station.html", "notes.txt"}
    code, _, err = cli("ingest", tmp_path / "no-such-folder", "--db", db)
    assert code == 2 and "no such file or folder" in err
