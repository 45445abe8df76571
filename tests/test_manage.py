"""Document management through the CLI (cli/manage.py and `show`): ls, rm, rejects, strategies
--drop, and show's matching, --limit, --seq and enrichment in --json."""
from __future__ import annotations

import json

from conftest import OFFSETS_VIOLATIONS, store_rows


def _ingest(cli, folder, db, *args):
    code, out, err = cli("ingest", folder, "--db", db, "--no-embed", "--json", *args)
    assert code in (0, 3), err
    return json.loads(out)


def test_ls_lists_documents_with_chunks_per_strategy(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest(cli, sample_copy, db, "-c", "recursive", "-c", "sentence")
    code, out, _ = cli("ls", "--db", db, "--json")
    docs = json.loads(out)
    assert code == 0 and len(docs) == 5 and all(len(d["chunks"]) == 2 for d in docs)
    pdf = next(d for d in docs if d["path"].endswith("report.pdf"))
    assert pdf["pages"] == 3 and pdf["chars"] > 0
    code, out, _ = cli("ls", "REPORT", "--db", db, "--json")  # any part of the path, any case
    assert [d["path"].rsplit("/", 1)[-1] for d in json.loads(out)] == ["report.pdf"]
    code, out, _ = cli("ls", "--db", db)
    assert code == 0 and "5 document(s)" in out and "handbook.docx" in out


def test_rm_removes_only_documents_every_argument_names(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest(cli, sample_copy, db)
    before = store_rows(db, "SELECT count(*) FROM chunks")[0][0]
    code, _, err = cli("rm", "notes.txt", "no-such.md", "--db", db)
    assert code == 2 and "'no-such.md' matches no stored document" in err and "nothing removed" in err
    assert store_rows(db, "SELECT count(*) FROM documents")[0][0] == 5
    code, out, _ = cli("rm", "notes.txt", str(sample_copy / "guide.md"), "--db", db)
    assert code == 0 and "removed" in out and "notes.txt" in out and "guide.md" in out
    assert {p.rsplit("/", 1)[-1] for (p,) in store_rows(db, "SELECT path FROM documents")} == \
        {"handbook.docx", "report.pdf", "station.html"}
    left = store_rows(db, "SELECT count(*) FROM chunks")[0][0]
    assert 0 < left < before and store_rows(db, OFFSETS_VIOLATIONS) == []
    assert (sample_copy / "notes.txt").exists()  # the file stays
    assert _ingest(cli, sample_copy, db)["new"] == 2  # and comes back on the next ingest


def test_rejects_shows_the_latest_run_with_rejects(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    (sample_copy / "empty.txt").write_bytes(b"")
    (sample_copy / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    _ingest(cli, sample_copy, db)
    code, out, _ = cli("rejects", "--db", db, "--json")
    rows = json.loads(out)
    assert code == 0 and {r["path"].rsplit("/", 1)[-1]: r["stage"] for r in rows} == {"empty.txt": "read",
                                                                                      "broken.pdf": "parse"}
    (sample_copy / "empty.txt").unlink()
    (sample_copy / "notes.txt").write_text("changed\n")
    _ingest(cli, sample_copy, db)  # a run that rejects broken.pdf only
    code, out, _ = cli("rejects", "--db", db, "--json")
    assert [r["path"].rsplit("/", 1)[-1] for r in json.loads(out)] == ["broken.pdf"]
    code, out, _ = cli("rejects", "--db", db, "--all", "--json")
    assert len(json.loads(out)) == 3
    code, out, _ = cli("rejects", "--db", db)
    assert code == 0 and "1 reject(s) of run" in out and "parse" in out


def test_strategies_lists_and_drops(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest(cli, sample_copy, db, "-c", "recursive", "-c", "recursive:size=96", "-c", "sentence")
    code, out, _ = cli("strategies", "--db", db, "--json")
    rows = json.loads(out)["strategies"]
    assert code == 0 and len(rows) == 3 and all(r["documents"] == 5 and r["chunks"] > 0 for r in rows)
    code, _, err = cli("strategies", "--db", db, "--drop", "recursive")  # two strategies have that name
    assert code == 2 and "matches 2 stored strategies" in err
    sentence = next(r for r in rows if r["name"] == "sentence")
    code, out, _ = cli("strategies", "--db", db, "--drop", "sentence", "--json")
    res = json.loads(out)
    assert code == 0 and res["dropped"] == [{"strategy_id": sentence["strategy_id"], "chunks": sentence["chunks"]}]
    assert store_rows(db, "SELECT count(*) FROM chunks WHERE strategy_id = ?", [sentence["strategy_id"]]) == [(0,)]
    assert store_rows(db, "SELECT count(*) FROM document_strategies WHERE strategy_id = ?",
                      [sentence["strategy_id"]]) == [(0,)]
    assert len(res["strategies"]) == 2


def test_show_matches_a_part_of_the_path_and_limits_its_output(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest(cli, sample_copy, db, "-c", "fixed:size=16")
    total = store_rows(db, "SELECT count(*) FROM chunks c JOIN documents d USING (doc_id) "
                           "WHERE d.path LIKE '%guide.md'")[0][0]
    assert total > 30
    code, out, err = cli("show", "Guide", "--db", db)  # a part of the name, another case
    assert code == 0 and out.count("tokens") == 20 and f"{total - 20} more chunk(s)" in err
    code, out, _ = cli("show", "guide", "--db", db, "--seq", "5-7", "--json")
    res = json.loads(out)
    assert [c["seq"] for c in res["chunks"]] == [5, 6, 7] and res["total_chunks"] == total
    code, out, _ = cli("show", "guide", "--db", db, "--json")
    assert len(json.loads(out)["chunks"]) == total  # all with --json
    code, out, _ = cli("show", "guide", "--db", db, "--limit", "3", "--json")
    assert len(json.loads(out)["chunks"]) == 3
    code, _, err = cli("show", "e", "--db", db)  # several match: named, exit 2
    assert code == 2 and "matches 5 documents" in err
    code, _, err = cli("show", "trustee", "--db", db)
    assert code == 2 and "matches 0 documents" in err and "chunkctl ls" in err
    code, _, err = cli("show", "guide", "--db", db, "--seq", "x")
    assert code == 2 and "--seq takes N or A-B" in err


def test_show_json_has_the_enrichment(cli, sample_copy, tmp_path):
    db = tmp_path / "s.duckdb"
    _ingest(cli, sample_copy, db, "--enrich", "structure")
    code, out, _ = cli("show", "guide.md", "--db", db, "--json")
    first = json.loads(out)["chunks"][0]
    assert first["metadata"]["structure"]["document"] == "Larkspur Valley Seed Library: Volunteer Guide"  # no "#"
    assert first["embed_text"].startswith("Document: Larkspur Valley Seed Library: Volunteer Guide\n")
    assert first["embed_text"].endswith(first["text"])
    code, out, _ = cli("show", "guide.md", "--db", db)
    assert "embedded as: Document: Larkspur" in out
