"""Configuration precedence: flag > ``CHUNKCTL_*`` environment > ``chunkctl.toml`` > default.

The first two are Click's own (options declare their ``envvar``); the file becomes Click's
``default_map``, which Click consults after both. Keys in the file are the option names with
dashes or underscores (``embed`` for ``--embed``, ``json`` for ``--json``); top-level keys apply to
every command that has the option, ``[ingest]``-style tables to one command. A key no command takes
is an error naming the nearest valid key, so a typo is never silently ignored.

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


ALIASES = {"model": "embed"}  # keys older files used: the parameter's name instead of the option's
# top-level keys that do not reach a command whose option of that name means something else: the
# main store (`db`) is not where `eval --corpus` and `tune` put the strategies they try
NOT_SHARED = {("eval", "db"), ("tune", "db")}


def option_keys(command) -> dict[str, Any]:
    """A Click command's config keys, {option name with underscores: parameter name} (``embed`` ->
    ``model`` for ``--embed``), or for a group {subcommand: its keys} plus the group's own under "".
    Duck-typed: Typer ships its own copy of Click's classes."""
    own = {}
    for p in command.params:
        if getattr(p, "param_type_name", "") == "option":
            for opt in p.opts:
                if opt.startswith("--"):
                    own[opt[2:].replace("-", "_")] = p.name
    if hasattr(command, "commands"):
        return {"": own, **{name: option_keys(sub) for name, sub in command.commands.items()}}
    return own


def _is_group(keys: dict[str, Any]) -> bool:
    return "" in keys


def _all_keys(keys: dict[str, Any]) -> set[str]:
    if not _is_group(keys):
        return set(keys)
    return set().union(*(_all_keys(v) if k else set(v) for k, v in keys.items()))


def check_config(config: dict[str, Any], keys: dict[str, Any], where: str = "") -> list[str]:
    """Typos and misplaced keys, each as a message with the nearest valid key: a key that no
    command takes, or a table named after no command."""
    from difflib import get_close_matches

    valid = _all_keys(keys)
    tables = {k for k in keys if k}
    problems = []
    for key, value in config.items():
        norm = key.replace("-", "_")
        if isinstance(value, dict) and _is_group(keys):
            if key not in tables:
                near = get_close_matches(key, sorted(tables), 1)
                problems.append(f"unknown table [{where}{key}]" + (f" (did you mean [{where}{near[0]}]?)" if near else ""))
                continue
            sub = keys[key]
            problems += check_config(value, sub if _is_group(sub) else {"": sub}, f"{where}{key}.")
        elif norm not in valid and ALIASES.get(norm) not in valid:
            near = get_close_matches(norm, sorted(valid), 1)
            problems.append(f"unknown key {where}{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    return problems


def default_map(config: dict[str, Any], keys: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Click's default_map, {command: {parameter: value}}, from the file's top-level keys (every
    command that has such an option) and its tables (``[ingest]``; ``[llm.cache]`` over ``[llm]``)."""
    def params(d: dict[str, Any], own: dict[str, str]) -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            k = k.replace("-", "_")
            k = ALIASES.get(k, k) if k not in own else k
            if not isinstance(v, dict) and k in own:
                out[own[k]] = v
        return out

    out: dict[str, Any] = {}
    for cmd, sub in keys.items():
        if not cmd:
            continue
        section = config.get(cmd, {})
        section = section if isinstance(section, dict) else {}
        shared = {k: v for k, v in config.items() if (cmd, k.replace("-", "_")) not in NOT_SHARED}
        if _is_group(sub):
            out[cmd] = {**params(shared, sub[""]), **params(section, sub[""])}
            out[cmd].update(default_map({**shared, **section}, sub))
        else:
            out[cmd] = {**params(shared, sub), **params(section, sub)}
    return out


def llm_api_key() -> str | None:
    """The API key for an OpenAI-compatible server: from the environment only, so it is never in a
    flag (shell history), a config file, the cache or the store."""
    return os.environ.get("CHUNKCTL_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
