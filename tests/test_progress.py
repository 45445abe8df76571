"""Progress on a real terminal (a pty), silence off it, and Ctrl-C: chunkctl/progress.py, the
display in cli/render.py, the interrupt handling in cli/app.py and pipeline.ingest."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import time
from pathlib import Path

from conftest import CHUNKCTL, SAMPLE_DOCS, run_chunkctl, store_rows

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """chunkctl running in a pseudo-terminal, its screen output collected as it comes."""

    def __init__(self, *args, cwd: Path):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: chunkctl, on the pty
            os.chdir(cwd)
            os.environ.update({"COLUMNS": "160", "LINES": "50", "TERM": "xterm"})
            os.execvp(CHUNKCTL[0], [*CHUNKCTL, *map(str, args)])
        self.raw = b""
        self.code: int | None = None

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode(errors="replace")).replace("\r", "\n")

    def pump(self, seconds: float, until=None) -> bool:
        """Read for up to ``seconds``; True as soon as ``until(text)`` holds (or the process ended)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until(self.text):
                return True
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    self.raw += os.read(self.fd, 65536)
                except OSError:
                    pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.code = os.waitstatus_to_exitcode(status)
                try:
                    while chunk := os.read(self.fd, 65536):
                        self.raw += chunk
                except OSError:
                    pass
                return True
        return False

    def wait(self, seconds: float) -> int | None:
        self.pump(seconds, until=lambda _: self.code is not None)
        return self.code

    def kill(self) -> None:
        if self.code is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def _corpus(root: Path, files: int) -> Path:
    root.mkdir()
    para = ("Seed library volunteers weigh and label every returned packet, then log the grower's member "
            "number and the crop before the packet goes to the quarantine tray for fourteen days. ")
    for i in range(files):
        (root / f"note-{i:04d}.txt").write_text(f"Note {i}.\n\n" + (para * 12 + "\n\n") * 12)
    return root


def test_ingest_shows_files_and_embedding_with_an_eta_on_a_terminal(tmp_path):
    docs = _corpus(tmp_path / "docs", 60)
    term = Terminal("ingest", docs, "--db", tmp_path / "s.duckdb", cwd=tmp_path)
    try:
        assert term.wait(240) == 0, term.text[-2000:]
    finally:
        term.kill()
    screen = term.text
    assert re.search(r"ingest .*\d+/60 .*eta", screen), screen[-3000:]
    assert re.search(r"embed .*\d+/\d+", screen) and "new" in screen and "note-" in screen
    assert "seen" in screen  # the summary table after the bars


def test_progress_is_silent_with_quiet_json_and_off_a_terminal(tmp_path):
    docs = _corpus(tmp_path / "docs", 3)
    for args in (["-q"], ["--json"]):
        term = Terminal("ingest", docs, "--db", tmp_path / f"s{args[0]}.duckdb", "--no-embed", *args, cwd=tmp_path)
        try:
            assert term.wait(120) == 0
        finally:
            term.kill()
        assert "eta" not in term.text and "━" not in term.text
    r = run_chunkctl("ingest", docs, "--db", tmp_path / "p.duckdb", "--no-embed")  # stderr is a pipe
    assert r.returncode == 0 and "eta" not in r.stderr and "━" not in r.stderr


def test_embed_and_eval_show_progress(tmp_path):
    db = tmp_path / "s.duckdb"
    assert run_chunkctl("ingest", _corpus(tmp_path / "docs", 20), "--db", db, "--no-embed", "-q").returncode == 0
    term = Terminal("embed", "--db", db, cwd=tmp_path)
    try:
        assert term.wait(240) == 0, term.text[-2000:]
    finally:
        term.kill()
    assert re.search(r"embed .*\d+/\d+ .*eta", term.text), term.text[-2000:]
    term = Terminal("eval", "--qa", SAMPLE_DOCS / "qa.jsonl", "--corpus", SAMPLE_DOCS, "-c", "recursive:size=128",
                    "-c", "sentence", "--mode", "bm25", cwd=tmp_path)
    try:
        assert term.wait(240) == 0, term.text[-2000:]
    finally:
        term.kill()
    assert re.search(r"eval .*\d/4", term.text) and "rank with" in term.text, term.text[-2000:]


def test_ctrl_c_stops_an_ingest_at_once_and_keeps_what_was_committed(tmp_path):
    docs = _corpus(tmp_path / "docs", 400)
    db = tmp_path / "s.duckdb"
    term = Terminal("ingest", docs, "--db", db, cwd=tmp_path)
    try:
        # Ctrl-C once some documents are in and the embedding has started
        assert term.pump(300, until=lambda t: re.search(r"ingest .* (\d\d+)/400", t) and "embed" in t), term.text
        os.write(term.fd, b"\x03")
        t0 = time.monotonic()
        code = term.wait(20)
        took = time.monotonic() - t0
    finally:
        term.kill()
    assert code == 130 and took < 3.5, (code, took, term.text[-1500:])
    m = re.search(r"Interrupted: (\d+) document\(s\) committed \((\d+) chunks\)", term.text)
    assert m and "re-run to resume" in term.text, term.text[-1500:]
    committed = int(m.group(1))
    (finished, stats), = store_rows(db, "SELECT finished_at, stats FROM runs")
    assert finished is not None and json.loads(stats)["interrupted"] is True
    docs_in = store_rows(db, "SELECT count(*) FROM documents")[0][0]
    assert 0 < committed == docs_in < 400
    r = run_chunkctl("ingest", docs, "--db", db, "--json", "--no-embed")  # resumes: only the rest is new
    assert r.returncode == 0 and json.loads(r.stdout)["new"] == 400 - committed, r.stderr
