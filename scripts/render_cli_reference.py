"""Render the CLI reference from the Typer app into README.md (between the cli-reference markers),
so the manual cannot drift from the code. `make docs` runs it; a test fails when it is stale.

    .venv/bin/python scripts/render_cli_reference.py [--check]
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _param_row(p) -> str:
    # Typer vendors its own copy of click: read the parameters' plain attributes only.
    if p.param_type_name == "argument":
        name = f"`{p.name.upper()}`"
        kind = "argument" + (", repeatable" if p.nargs == -1 else "")
    else:
        name = ", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts))
        kind = "flag" if getattr(p, "is_flag", False) else (p.metavar or p.type.name.upper())
        if p.multiple:
            kind += ", repeatable"
    default = p.default
    if callable(default) or default in (None, (), []) or (getattr(p, "is_flag", False) and not default):
        default = ""
    env = f"`{p.envvar}`" if getattr(p, "envvar", None) else ""
    help_text = (getattr(p, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    return f"| {name} | {kind} | {f'`{default}`' if default != '' else ''} | {env} | {help_text} |"


def _table(params) -> list[str]:
    if not params:
        return []
    return ["| parameter | kind | default | environment | description |", "|---|---|---|---|---|",
            *(_param_row(p) for p in params), ""]


def _command(path: str, cmd) -> list[str]:
    """A command's section; a group's subcommands follow it, depth first."""
    if hasattr(cmd, "commands"):
        out = []
        for name, sub in cmd.commands.items():
            out += _command(f"{path} {name}", sub)
        return out
    params = [p for p in cmd.params if p.name != "help"]
    args = " ".join(p.name.upper() + ("..." if p.nargs == -1 else "") for p in params
                    if p.param_type_name == "argument")
    return [f"### `chunkctl {path}`", "", f"`chunkctl {path} [OPTIONS] {args}`".replace(" `", "`"), "",
            (cmd.help or "").strip(), "", *_table(params)]


def render() -> str:
    from chunkctl.cli.app import app

    root = typer.main.get_command(app)
    lines = [START, "", f"`chunkctl [GLOBAL OPTIONS] COMMAND ...` — {root.help}", "",
             "Global options go before the command (`chunkctl --llm openai ingest docs/`).", "",
             *_table([p for p in root.params if p.name not in ("help", "install_completion", "show_completion")])]
    for name, cmd in root.commands.items():
        lines += _command(name, cmd)
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{README} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = head + render() + tail
    if "--check" in sys.argv:
        if new != text:
            print("README.md's CLI reference is stale: run `make docs`")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
