"""Configuration precedence: flag > ``CHUNKCTL_*`` environment > ``chunkctl.toml`` > default.

The first two are Click's own (options declare their ``envvar``); the file becomes Click's
``default_map``, which Click consults after both. Keys in the file are the option names with
dashes or underscores; top-level keys apply to every command, ``[ingest]``-style tables to one.

    db = "corpus.duckdb"
    [ingest]
    chunker = ["recursive:size=256,overlap=32", "structure"]
    exclude = ["*.jsonl"]
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

CONFIG_FILE = "chunkctl.toml"


def config_path() -> Path | None:
    explicit = os.environ.get("CHUNKCTL_CONFIG")
    if explicit:
        return Path(explicit)
    p = Path.cwd() / CONFIG_FILE
    return p if p.exists() else None


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def default_map(config: dict[str, Any], commands: list[str]) -> dict[str, dict[str, Any]]:
    """Click's default_map: {command: {param_name: value}} with global keys copied into each."""
    def norm(d: dict[str, Any]) -> dict[str, Any]:
        return {k.replace("-", "_"): v for k, v in d.items() if not isinstance(v, dict)}

    shared = norm(config)
    out = {}
    for cmd in commands:
        section = config.get(cmd, {})
        out[cmd] = {**shared, **(norm(section) if isinstance(section, dict) else {})}
    return out
