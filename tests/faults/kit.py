"""What the fault cases share: a real `chunkctl` process against real files, and what it left behind.

A case builds its inputs under a fresh folder, runs the CLI as a process (so exit codes, stderr and
tracebacks are what a user sees), and reads the store it wrote with DuckDB."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

ROOT = Path(__file__).resolve().parents[2]
CHUNKCTL = [sys.executable, "-m", "chunkctl"]
GOOD = "Seed libraries lend seeds to members.\n\nReturned packets wait in quarantine for a week.\n"


@dataclass
class Ran:
    code: int
    out: str
    err: str
    seconds: float
    peak_rss_mb: float
    db: Path
    rejects: list = field(default_factory=list)  # (path, stage, reason)
    docs: list = field(default_factory=list)  # (path, n_chars)

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err

    def reject_of(self, name: str):
        return next(((s, r) for p, s, r in self.rejects if p.endswith(name)), None)

    def stored(self, name: str) -> bool:
        return any(p.endswith(name) for p, _ in self.docs)

    def summary(self) -> str:
        lines = [ln for ln in self.err.strip().splitlines() if ln.strip()]
        return f"exit {self.code}" + (f", stderr: {lines[-1][:160]}" if lines else "")


def run(*args, db: Path | None = None, env: dict | None = None, timeout: float = 300, stdin=None) -> Ran:
    """chunkctl as a process; its peak RSS (children, via a wrapper), and the store's rows after."""
    wrapper = ("import resource, subprocess, sys, json\n"
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, errors='replace')\n"
               "sys.stdout.write(json.dumps([r.returncode, r.stdout, r.stderr,"
               " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n")
    t0 = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    p = subprocess.run([sys.executable, "-c", wrapper, *CHUNKCTL, *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=timeout, stdin=stdin)
    code, out, err, rss = json.loads(p.stdout)
    ran = Ran(code, out, err, time.perf_counter() - t0, rss / 1024, db)
    if db is not None and db.exists() and db.stat().st_size:
        try:
            con = duckdb.connect(str(db), read_only=True)
            ran.rejects = con.execute("SELECT path, stage, reason FROM rejects").fetchall()
            ran.docs = con.execute("SELECT path, length(text) FROM documents").fetchall()
            con.close()
        except duckdb.Error:
            pass
    return ran


def ingest(folder: Path, *args, env: dict | None = None, timeout: float = 300) -> Ran:
    db = folder.parent / "store.duckdb"
    return run("ingest", folder, "--db", db, "--no-embed", "-q", *args, db=db, env=env, timeout=timeout)


def docs_with_good(tmp: Path) -> Path:
    """A folder holding one good text file: every case checks the run went on past its bad input."""
    d = tmp / "docs"
    d.mkdir(parents=True, exist_ok=True)
    (d / "good.txt").write_text(GOOD)
    return d


def offsets_hold(db: Path) -> bool:
    con = duckdb.connect(str(db), read_only=True)
    try:
        bad = con.execute("SELECT count(*) FROM chunks c JOIN documents d USING (doc_id) "
                          "WHERE d.text IS NOT NULL AND substr(d.text, c.char_start + 1, c.char_end - c.char_start)"
                          " <> c.text").fetchone()[0]
    finally:
        con.close()
    return bad == 0


class Skip(Exception):
    pass


@dataclass
class Case:
    group: str
    kind: str
    expected: str
    fn: Callable[[Path], tuple[bool, str]]


CASES: list[Case] = []  # filled by the cases_* modules, in import order


def case(group: str, kind: str, expected: str):
    def register(fn):
        CASES.append(Case(group, kind, expected, fn))
        return fn
    return register


def rejected(r, name: str, *words: str) -> tuple[bool, str]:
    """A bad file rejected with a reason naming ``words``, the good file stored, exit 3, no traceback."""
    rej = r.reject_of(name)
    held = (r.code == 3 and rej is not None and all(w.lower() in rej[1].lower() for w in words)
            and r.stored("good.txt") and not r.traceback)
    seen = f"rejected ({rej[0]}): {rej[1][:110]}" if rej else ("stored" if r.stored(name) else "absent")
    return held, f"{r.summary()}; {seen}"


def stored_or_rejected(r, name: str, word: str = "") -> tuple[bool, str]:
    """Either outcome is right (a limit may or may not be reached), but a reject must name ``word``;
    the good file stored, exit 0 or 3, no traceback."""
    rej = r.reject_of(name)
    held = (r.code in (0, 3) and r.stored("good.txt") and not r.traceback
            and (r.stored(name) or (rej is not None and word.lower() in rej[1].lower())))
    seen = "stored" if r.stored(name) else f"rejected: {rej[1][:80]}" if rej else "absent"
    return held, f"{r.summary()}; {seen}"


def stored(r, name: str, code: int = 0) -> tuple[bool, str]:
    held = r.code == code and r.stored(name) and r.stored("good.txt") and not r.traceback and offsets_hold(r.db)
    return held, f"{r.summary()}; {'stored' if r.stored(name) else 'not stored'}"


