"""Bad input never stops a run and is never silent; a killed run leaves a consistent store."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CHUNKCTL, OFFSETS_VIOLATIONS, SAMPLE_DOCS, run_chunkctl, store_rows
from test_parse import encrypted_pdf


def make_bad_folder(root: Path) -> dict[str, str]:
    """Good and bad files side by side; returns {bad file name: expected reason fragment}."""
    shutil.copytree(SAMPLE_DOCS, root, ignore=shutil.ignore_patterns("*.jsonl"))
    pdf = (SAMPLE_DOCS / "report.pdf").read_bytes()
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (bad / "encrypted.pdf").write_bytes(encrypted_pdf(pdf))
    (bad / "junk.txt").write_bytes(random.Random(7).randbytes(50_000))
    (bad / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(2000))
    (bad / "archive.xyz").write_bytes(b"PK\x03\x04 whatever")
    (bad / "not-really.docx").write_bytes(b"this is not a zip archive")
    os.mkfifo(bad / "pipe.txt")
    os.symlink(bad / "gone.txt", bad / "dangling.txt")
    os.symlink(bad / "loop-b.txt", bad / "loop-a.txt")
    os.symlink(bad / "loop-a.txt", bad / "loop-b.txt")
    os.symlink(root, bad / "up")  # a folder link back to the root: a loop
    # good files that look unusual: non-UTF-8 text, UTF-16 with BOM
    (root / "legacy-cp1252.txt").write_bytes("Crème brûlée — très bien, naïve façon.\n".encode("cp1252") * 30)
    (root / "utf16.txt").write_bytes("Zoë’s notes: 種 and 🌱 survive UTF-16.\n".encode("utf-16") * 30)
    return {
        "empty.txt": "empty file", "truncated.pdf": "corrupt or truncated PDF", "encrypted.pdf": "encrypted PDF",
        "junk.txt": "binary content", "image.md": "binary content",
        "not-really.docx": "not a readable DOCX", "pipe.txt": "not a regular file", "dangling.txt": "broken symlink",
        "loop-a.txt": "symlink loop", "loop-b.txt": "symlink loop", "up": "symlink loop",
    }


def test_bad_input_folder(tmp_path):
    root = tmp_path / "in"
    expected = make_bad_folder(root)
    db = tmp_path / "bad.duckdb"
    res = run_chunkctl("ingest", root, "--db", db, "--json", timeout=300)
    assert res.returncode == 3, res.stderr
    summary = json.loads(res.stdout)
    rejects = store_rows(db, "SELECT path, stage, reason FROM rejects")
    by_name = {Path(p).name: reason for p, _, reason in rejects}
    assert len(rejects) == len(by_name) == len(expected), rejects
    for name, fragment in expected.items():
        assert fragment in by_name[name], (name, by_name[name])
    assert summary["rejected"] == len(expected)
    assert [Path(p).name for p in summary["skipped_files"]] == ["archive.xyz"]  # a type nothing parses: listed
    docs = {Path(p).name for (p,) in store_rows(db, "SELECT path FROM documents")}
    assert docs == {"guide.md", "station.html", "handbook.docx", "report.pdf", "notes.txt",
                    "legacy-cp1252.txt", "utf16.txt"}
    texts = dict(store_rows(db, "SELECT regexp_extract(path, '[^/]+$'), text FROM documents"))
    assert "Crème brûlée — très bien" in texts["legacy-cp1252.txt"]
    assert "種 and 🌱" in texts["utf16.txt"]
    assert store_rows(db, OFFSETS_VIOLATIONS) == []


def test_large_text_file_is_streamed_in_blocks(tmp_path):
    """A text file over the stream threshold is decoded, chunked and stored block by block; its
    chunks are the same kind of chunks, with document offsets, and the text is stored whole."""
    para = "Paragraph {i} of a long ledger: tomatoes, beans, onions; Zoë counted {n} packets — ok.\r\n\r\n"
    big = tmp_path / "in" / "ledger.txt"
    big.parent.mkdir()
    with open(big, "w", encoding="utf-8", newline="") as fh:
        for i in range(120_000):  # ~11 MB: three 4 MB blocks
            fh.write(para.format(i=i, n=i * 7 % 97))
    db = tmp_path / "big.duckdb"
    res = run_chunkctl("ingest", big.parent, "--db", db, "--stream-mb", "1", "-c", "recursive:size=128", "--json",
                       "--no-embed")
    assert res.returncode == 0, res.stderr
    (n_chars, streamed), = store_rows(db, "SELECT n_chars, json_extract(metadata, '$.streamed') FROM documents")
    expected_text = big.read_text(encoding="utf-8").replace("\r\n", "\n")
    assert n_chars == len(expected_text) and streamed == "true"
    (stored,), = store_rows(db, "SELECT text FROM documents")
    assert stored == expected_text
    # (checked in Python: DuckDB's substring walks a non-ASCII string per call, quadratic here)
    chunks = store_rows(db, "SELECT seq, char_start, char_end, text, n_tokens FROM chunks ORDER BY char_start")
    assert [c[0] for c in chunks] == list(range(len(chunks)))
    assert all(stored[s:e] == t and n <= 128 for _, s, e, t, n in chunks)
    # every paragraph number is in some chunk: nothing lost at block edges
    found = {int(m) for c in chunks for m in re.findall(r"Paragraph (\d+)", c[3])}
    assert found == set(range(120_000))


def test_killed_ingest_leaves_a_consistent_store_that_a_rerun_completes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = random.Random(3)
    words = ["seed", "vault", "onion", "bean", "frost", "ledger", "packet", "grower", "humidity", "soil"]
    for i in range(120):
        body = "\n\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(80, 300))) for _ in range(12))
        (src / f"doc{i:03d}.txt").write_text(f"Document {i}\n\n{body}\n")
    specs = ["-c", "recursive:size=64", "-c", "sentence:size=64", "--no-embed"]  # chunking is what is killed
    db = tmp_path / "killed.duckdb"
    proc = subprocess.Popen([*CHUNKCTL, "ingest", str(src), "--db", str(db), "-v", *specs],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    done = 0
    deadline = time.time() + 120
    while done < 30 and time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        done += line.strip().startswith("new")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 30 <= done < 120, f"the kill did not land mid-run ({done} documents done)"

    res = run_chunkctl("ingest", src, "--db", db, "--json", *specs)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["new"] + summary["unchanged"] + summary["updated"] == 120
    assert summary["unchanged"] >= 30  # what was committed before the kill is kept

    clean = tmp_path / "clean.duckdb"
    assert run_chunkctl("ingest", src, "--db", clean, "-q", *specs).returncode == 0
    q = "SELECT chunk_id, doc_id, strategy_id, seq, char_start, char_end, text FROM chunks ORDER BY ALL"
    assert store_rows(db, q) == store_rows(clean, q)  # no duplicate, no lost chunk
    assert store_rows(db, "SELECT count(*) FROM documents")[0][0] == 120
    assert store_rows(db, OFFSETS_VIOLATIONS) == []


def test_streamed_file_failing_midway_leaves_no_partial_chunks_and_reruns(tmp_path, monkeypatch):
    import chunkctl.pipeline as pipeline
    from chunkctl.chunkers import parse_spec
    from chunkctl.store import Store

    src = tmp_path / "in"
    src.mkdir()
    (src / "long.txt").write_text("".join(f"Line {i} about seed jars and humidity.\n\n" for i in range(90_000)))
    options = pipeline.IngestOptions([parse_spec("recursive:size=64")], stream_threshold=1 << 20)
    import chunkctl.bigdocs as bigdocs

    real = bigdocs.chunk_all
    calls = {"n": 0}

    def failing(doc, chunkers, ctx, base=0, first_seq=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise pipeline.RejectError("chunk", "injected failure in block 3")
        return real(doc, chunkers, ctx, base=base, first_seq=first_seq)

    monkeypatch.setattr(bigdocs, "chunk_all", failing)
    with Store(tmp_path / "s.duckdb") as store:
        res = pipeline.ingest(store, [src], options)
        assert [r.reason for r in res.rejects] == ["injected failure in block 3"]
        assert store.query("SELECT count(*) FROM chunks") == [(0,)]
        assert store.query("SELECT count(*) FROM document_strategies") == [(0,)]
        monkeypatch.setattr(bigdocs, "chunk_all", real)
        res = pipeline.ingest(store, [src], options)
        assert not res.rejects and res.unchanged == 1 and sum(res.chunks.values()) > 0  # the same bytes, completed
        (text,), = store.query("SELECT text FROM documents")
        rows = store.query("SELECT seq, char_start, char_end, text FROM chunks ORDER BY seq")
        assert [r[0] for r in rows] == list(range(len(rows))) and all(text[s:e] == t for _, s, e, t in rows)
        assert store.query("SELECT n_chunks FROM document_strategies") == [(len(rows),)]


@pytest.mark.slow
def test_a_200_mb_text_file_ingests_in_bounded_memory(tmp_path):
    """The issue's large-input case at full size: streamed, every chunk stored, peak RSS < 1 GB."""
    src = tmp_path / "in" / "huge.txt"
    src.parent.mkdir()
    rng = random.Random(11)
    words = ["seed", "vault", "onion", "bean", "frost", "ledger", "Zoë", "naïve", "种子", "🌱", "humidity"]
    para = "\r\n\r\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(40, 160))) for _ in range(400))
    block = (para + "\r\n\r\n").encode("utf-8")
    reps = 200_000_000 // len(block) + 1
    with open(src, "wb") as fh:
        for _ in range(reps):
            fh.write(block)
    db = tmp_path / "huge.duckdb"
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.stderr.write(r.stderr)")
    res = subprocess.run([sys.executable, "-c", probe, *CHUNKCTL, "ingest", src.parent, "--db", db, "-q",
                          "--no-embed"],
                         capture_output=True, text=True, timeout=900)
    code, peak_kb = map(int, res.stdout.split())
    assert code == 0, res.stderr[-2000:]
    assert peak_kb < 1024 * 1024, f"peak RSS {peak_kb // 1024} MB"
    (n_chars,), = store_rows(db, "SELECT n_chars FROM documents")
    assert n_chars == reps * len((para + "\r\n\r\n").replace("\r\n", "\n"))
    (done,), = store_rows(db, "SELECT n_chunks FROM document_strategies")
    assert done == store_rows(db, "SELECT count(*) FROM chunks")[0][0] > 0
