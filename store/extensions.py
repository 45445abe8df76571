"""DuckDB extensions from their PyPI wheels, loaded by file path: DuckDB's extension server is not
reachable offline, and loading by path writes nothing to the user's home."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence


def extension_path(name: str) -> Path:
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"duckdb-extension-{name} is not installed")
    root = Path(spec.submodule_search_locations[0]) / "extensions"
    found = next(root.rglob(f"{name}.duckdb_extension"), None)
    if found is None:
        raise RuntimeError(f"{name}.duckdb_extension not found under {root}")
    return found


def load_extensions(con, names: Sequence[str]) -> list[str]:
    for name in names:
        con.execute(f"LOAD '{extension_path(name)}'")
    return list(names)
