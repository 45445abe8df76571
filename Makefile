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

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first: a local CPU wheel; anything that pulls torch later must find it installed.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,unstructured,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -f demo.duckdb
	$(VENV)/bin/chunkctl ingest sample_docs/ --exclude '*.jsonl' --db demo.duckdb -c recursive:size=128 -c structure
	$(VENV)/bin/chunkctl stats --db demo.duckdb
	$(VENV)/bin/chunkctl show report.pdf --db demo.duckdb --strategy recursive

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/chunk_speed.py

docs: install
	$(PY) scripts/render_cli_reference.py

clean:
	rm -rf $(VENV) demo.duckdb *.egg-info
