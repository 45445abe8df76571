"""Shared fixtures: offline environment, the CLI runner, sample and bench documents, a store."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles: "ci" (make test: the library's default number of cases, no deadline: a cold
# tokenizer or model load is not a failure) and "fuzz" (the reliability campaign, 10,000 cases per
# test; tests/faults/test_fuzz_chunkers.py). Tests that set max_examples themselves keep theirs.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "1")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = ROOT / "sample_docs"
BENCH_DOCS = ROOT.parent / "shared" / "bench-data" / "docs"
CHUNKCTL = [sys.executable, "-m", "chunkctl"]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Every test runs in its own folder, so a default chunkctl.duckdb or chunkctl.toml of one test
    is never seen by another; CHUNKCTL_* variables of the caller's shell are not inherited."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("CHUNKCTL_")]:
        monkeypatch.delenv(key)


@pytest.fixture
def cli():
    """Run chunkctl in-process through Typer's runner: returns (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from chunkctl.cli.app import app

    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None, env: dict | None = None):
        res = runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)
        return res.exit_code, res.stdout, res.stderr

    return run


def run_chunkctl(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run chunkctl as a real process."""
    return subprocess.run([*CHUNKCTL, *map(str, args)], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def server():
    """A scriptable OpenAI-compatible server on 127.0.0.1 (tests/llm_server.py)."""
    from llm_server import FaultServer

    s = FaultServer()
    yield s
    s.close()


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of sample_docs without the QA file."""
    dst = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, dst, ignore=shutil.ignore_patterns("*.jsonl"))
    return dst


def store_rows(db: Path, sql: str, params=()):
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


OFFSETS_VIOLATIONS = """
    SELECT c.chunk_id, c.doc_id, c.char_start, c.char_end
    FROM chunks c JOIN documents d USING (doc_id)
    WHERE substring(d.text, c.char_start + 1, c.char_end - c.char_start) IS DISTINCT FROM c.text
       OR c.char_start < 0 OR c.char_end > d.n_chars OR c.char_end <= c.char_start
"""
