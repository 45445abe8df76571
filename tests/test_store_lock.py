"""The store shared between processes (store/lock.py, Store.let_readers_in) and files that are not
stores: each through the CLI, against a real second process holding the store."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from conftest import SAMPLE_DOCS, run_chunkctl

# A writer like ingest: it holds the store, and between "documents" (every 50 ms) lets waiting
# readers in, for as long as argv[2] says; it prints a line once it holds the store.
HOLDER = """
import sys, time
from chunkctl.store import Store
st = Store(sys.argv[1], command="ingest big-folder/")
print("held", flush=True)
until = time.time() + float(sys.argv[2])
while time.time() < until:
    if sys.argv[3] == "yield":
        st.let_readers_in()
    time.sleep(0.05)
st.close()
"""


def _hold(db: Path, seconds: float, polite: bool) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(seconds), "yield" if polite else "keep"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def _store(tmp_path: Path) -> Path:
    db = tmp_path / "s.duckdb"
    assert run_chunkctl("ingest", SAMPLE_DOCS / "notes.txt", "--db", db, "--no-embed", "-q").returncode == 0
    return db


def test_busy_store_names_its_writer(tmp_path):
    db = _store(tmp_path)
    holder = _hold(db, 30, polite=False)
    try:
        t0 = time.monotonic()
        r = run_chunkctl("stats", "--db", db)
        assert r.returncode == 1 and time.monotonic() - t0 < 10
        assert f"store busy: PID {holder.pid} is writing {db}" in r.stderr, r.stderr
        assert "`chunkctl ingest big-folder/`" in r.stderr and "started" in r.stderr and "--wait" in r.stderr
        assert "IO Error" not in r.stderr and "Traceback" not in r.stderr
        r = run_chunkctl("search", "seeds", "--db", db, "--mode", "bm25", "--wait", "1")
        assert r.returncode == 1 and "store busy" in r.stderr  # waited, then gave up with the same line
    finally:
        holder.kill()
        holder.wait()


def test_wait_reads_while_a_writer_works(tmp_path):
    """A reader with --wait gets in while the writer is still running: the writer closes the store
    between units of work when someone knocks, and takes it back afterwards."""
    db = _store(tmp_path)
    holder = _hold(db, 20, polite=True)
    try:
        t0 = time.monotonic()
        r = run_chunkctl("stats", "--db", db, "--json", "--wait", "15")
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["documents"] == 1
        assert took < 10 and holder.poll() is None  # read during the write, not after it
        r = run_chunkctl("search", "seeds", "--db", db, "--mode", "bm25", "--wait", "15", "--json")
        assert r.returncode == 0 and holder.poll() is None, r.stderr
    finally:
        holder.kill()
        holder.wait()
    assert not list(tmp_path.glob(".s.duckdb.reader-*"))  # knocks are gone


def test_files_that_are_not_stores_are_refused_untouched(tmp_path):
    sqlite_db = tmp_path / "app.sqlite"
    con = sqlite3.connect(sqlite_db)
    con.execute("CREATE TABLE chunks (x)")
    con.commit()
    con.close()
    own = tmp_path / "analytics.duckdb"
    d = duckdb.connect(str(own))
    d.execute("CREATE TABLE chunks (x INTEGER)")
    d.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    before = {p: p.read_bytes() for p in (sqlite_db, own, text)}
    expected = {sqlite_db: "is a SQLite database, not a chunkctl store",
                own: "is a DuckDB database but not a chunkctl store (its tables: chunks)",
                text: "is not a DuckDB file", folder: "is a folder but not a chunkctl dataset"}
    for db, message in expected.items():
        for args in (["stats"], ["ingest", SAMPLE_DOCS / "notes.txt", "--no-embed"]):
            r = run_chunkctl(*args, "--db", db)
            assert r.returncode == 2 and message in r.stderr, (db, args, r.stderr)
            assert "Traceback" not in r.stderr and "sqlite_scanner" not in r.stderr
    assert {p: p.read_bytes() for p in before} == before  # nothing added (no migrations table)
    assert duckdb.connect(str(own), read_only=True).execute(
        "SELECT table_name FROM information_schema.tables").fetchall() == [("chunks",)]
