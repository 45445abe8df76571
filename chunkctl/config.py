"""Configuration precedence: flag > ``CHUNKCTL_*`` environment > ``chunkctl.toml`` > default.

The first two are Click's own (options declare their ``envvar``); the file becomes Click's
``default_map``, which Click consults after both. Keys in the file are the option names with
dashes or underscores; top-level keys apply to every command, ``[ingest]``-style tables to one.

    db = "corpus.duckdb"
    llm = "openai"
    llm_base_url = "http://127.0.0.1:8000/v1"
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


def default_map(config: dict[str, Any], commands: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Click's default_map: {command: {param_name: value}} with global keys copied into each.
    ``commands`` maps a command name to None, or a group name to its own such dict; a group's
    subcommands read their own table (``[llm.cache]``) over the group's and the top level."""
    def norm(d: dict[str, Any]) -> dict[str, Any]:
        return {k.replace("-", "_"): v for k, v in d.items() if not isinstance(v, dict)}

    shared = norm(config)
    out = {}
    for cmd, sub in commands.items():
        section = config.get(cmd, {})
        section = section if isinstance(section, dict) else {}
        out[cmd] = {**shared, **norm(section)}
        if sub:
            out[cmd].update(default_map({**config, **section}, sub))
    return out

def llm_api_key() -> str | None:
    """The API key for an OpenAI-compatible server: from the environment only, so it is never in a
    flag (shell history), a config file, the cache or the store."""
    return os.environ.get("CHUNKCTL_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
