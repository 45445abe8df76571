"""The fault catalogue: each case builds a real hostile input (a file, a killed process, a full
disk, a misbehaving HTTP server on 127.0.0.1), runs chunkctl on it, and says what it observed and
whether that is what a user must get. `tests/faults/` runs every case; `bench/fault_suite.py`
prints them as a table with peak memory and time.

A case returns (held, observed); it may raise Skip(reason) where the machine cannot stage it.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: llm_server
from faults import cases_files, cases_llm, cases_system  # noqa: E402,F401  (each registers its cases)
from faults.kit import CASES, Skip  # noqa: E402,F401


