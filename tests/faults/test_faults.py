"""Every case of the fault catalogue (tests/faults/cases.py) holds: real hostile files, killed
processes, a full tmpfs (where root may mount one) and a misbehaving HTTP server on 127.0.0.1."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from faults.cases import CASES, Skip  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}: {c.kind}" for c in CASES])
def test_fault_holds(case, tmp_path):
    try:
        held, observed = case.fn(tmp_path)
    except Skip as why:
        pytest.skip(str(why))
    assert held, f"{case.kind}: expected {case.expected}; observed {observed}"
