"""The project's own contracts: lazy imports on the CLI's start-up path, a wheel that carries
every sub-package, a README whose CLI reference matches the app, and the offsets invariant over
the real-world benchmark documents through the CLI."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import BENCH_DOCS, OFFSETS_VIOLATIONS, ROOT, SAMPLE_DOCS, run_chunkctl, store_rows

HEAVY = ("torch", "sentence_transformers", "unstructured", "pypdf", "pypdfium2", "docx", "selectolax",
         "transformers", "pyarrow", "tiktoken", "charset_normalizer", "duckdb", "numpy", "pydantic")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return set(out)


def test_help_imports_nothing_heavy():
    loaded = _modules_after("from typer.testing import CliRunner\nfrom chunkctl.cli.app import app\n"
                            "CliRunner().invoke(app, ['--help'])")
    assert not loaded & set(HEAVY)
    assert "tokenizers" not in loaded


def test_chunking_a_text_file_imports_only_what_it_needs(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("Some text to chunk.\n\nAnother paragraph.\n")
    loaded = _modules_after(f"from typer.testing import CliRunner\nfrom chunkctl.cli.app import app\n"
                            f"r = CliRunner().invoke(app, ['chunk', {str(f)!r}])\nassert r.exit_code == 0, r.output")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_the_local_engine_never_imports_ray(tmp_path):
    """Ray is an optional extra: ingest, search and stats on the default engine work without it."""
    f = tmp_path / "a.txt"
    f.write_text("Some text to chunk.\n\nAnother paragraph.\n")
    db = tmp_path / "s.duckdb"
    loaded = _modules_after(
        "from typer.testing import CliRunner\nfrom chunkctl.cli.app import app\n"
        f"r = CliRunner().invoke(app, ['ingest', {str(f)!r}, '--db', {str(db)!r}])\nassert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(app, ['search', 'text', '--db', {str(db)!r}])\nassert r.exit_code == 0, r.output")
    assert "ray" not in loaded and "onnxruntime" in loaded  # it did embed and search


def test_wheel_carries_every_subpackage(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("chunkctl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("chunkctl/cli/app.py", "chunkctl/chunkers/recursive.py", "chunkctl/store/db.py",
                   "chunkctl/parse/pdf.py", "chunkctl/tokens.py"):
        assert module in names
    sources = {p.relative_to(ROOT).as_posix() for d in ("chunkctl", "cli", "chunkers", "store")
               for p in (ROOT / d).rglob("*.py")}
    packaged = {n for n in names if n.endswith(".py")}
    mapped = {s if s.startswith("chunkctl/") else "chunkctl/" + s for s in sources}
    assert mapped <= packaged, mapped - packaged


def test_readme_cli_reference_is_current():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_cli_reference.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_readme_quick_start_has_exactly_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    block = quick.split("```", 2)[1]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make demo", "make test"]


@pytest.mark.slow
def test_offsets_hold_for_every_chunk_of_samples_and_benchmark_documents(tmp_path):
    if not BENCH_DOCS.exists():
        pytest.skip("shared/bench-data is not next to this checkout")
    db = tmp_path / "all.duckdb"
    res = run_chunkctl("ingest", SAMPLE_DOCS, BENCH_DOCS, "--db", db, "--exclude", "*.jsonl", "--json", "--no-embed",
                       "-c", "recursive:size=256", "-c", "structure:size=256", "-c", "fixed:size=128,overlap=16",
                       "-c", "sentence:size=200", "-c", "split-merge:size=300")
    assert res.returncode == 0, res.stderr[-2000:]
    n = store_rows(db, "SELECT count(*) FROM chunks")[0][0]
    assert n > 5000
    assert store_rows(db, OFFSETS_VIOLATIONS) == []
    # page numbers on every chunk of every PDF
    assert store_rows(db, "SELECT count(*) FROM chunks JOIN documents USING (doc_id) "
                          "WHERE mime = 'application/pdf' AND page_start IS NULL") == [(0,)]
