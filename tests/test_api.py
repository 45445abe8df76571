"""The Python API (chunkctl/api.py): the README's example run as a doctest, here and in a fresh
virtual environment made with `pip install .` the way the README says."""
from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE_DOCS


def readme_example() -> str:
    """The ```python block of README's "Python API" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Python API", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "README's Python API section has no python block"
    return m.group(1)


def test_readme_python_example_runs_as_a_doctest(tmp_path, monkeypatch):
    shutil.copytree(SAMPLE_DOCS, tmp_path / "sample_docs")
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(readme_example(), {}, "README Python API", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 10


def test_import_exposes_the_api_lazily():
    code = ("import sys, chunkctl; assert 'chunkctl.api' not in sys.modules; "
            "print(chunkctl.ingest.__module__, chunkctl.evaluate.__module__, callable(chunkctl.search))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["chunkctl.api", "chunkctl.api", "True"]


@pytest.mark.slow
def test_pip_install_in_a_fresh_venv(tmp_path):
    """README "With pip": torch's CPU build first, then `pip install .` from a clean copy of the
    repository (this machine's pip configuration stands in for the CPU index), then the README
    example with the installed package and its console script."""
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    subprocess.run([*pip, "torch==2.13.0"], check=True, env=env, timeout=900)
    r = subprocess.run([*pip, str(src)], capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    py = venv / "bin" / "python"
    out = subprocess.run([py, "-c", "import chunkctl, torch; print(chunkctl.__file__, torch.__version__)"],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert str(venv) in out  # the installed copy, not the checkout
    assert not list((venv / "lib").glob("python3*/site-packages/nvidia*"))  # no CUDA build pulled in
    assert subprocess.run([venv / "bin" / "chunkctl", "--version"], capture_output=True, text=True,
                          check=True).stdout.startswith("chunkctl ")
    work = tmp_path / "work"
    shutil.copytree(SAMPLE_DOCS, work / "sample_docs")
    (work / "example.txt").write_text(readme_example())
    r = subprocess.run([py, "-m", "doctest", "-o", "ELLIPSIS", "example.txt"], cwd=work, capture_output=True,
                       text=True, env={**env, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    r = subprocess.run([venv / "bin" / "chunkctl", "search", "quarantine", "--db", "example.duckdb", "--json"],
                       cwd=work, capture_output=True, text=True, env={**env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0 and Path(work / "example.duckdb").exists(), r.stderr
