"""The Typer app: options in, one library call, rendering out. No logic lives here."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from chunkctl import __version__
from chunkctl.cli import doctor, ingest, inspect, search

app = typer.Typer(
    name="chunkctl",
    help="Turn a folder of documents into retrieval-ready chunks in DuckDB, with offsets that never lie.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

COMMANDS = {
    "ingest": ingest.ingest_cmd, "chunk": ingest.chunk_cmd, "chunkers": inspect.chunkers_cmd,
    "stats": inspect.stats_cmd, "show": inspect.show_cmd, "export": inspect.export_cmd,
    "embed": search.embed_cmd, "search": search.search_cmd, "doctor": doctor.doctor_cmd,
}
for _name, _fn in COMMANDS.items():
    app.command(_name)(_fn)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chunkctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[Optional[str], typer.Option(
        "--config", envvar="CHUNKCTL_CONFIG",
        help="Config file (default: ./chunkctl.toml when present).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    from pathlib import Path

    from chunkctl.config import config_path, default_map, load_config

    path = Path(config) if config else config_path()
    try:
        ctx.default_map = default_map(load_config(path), list(COMMANDS))
    except (OSError, ValueError) as e:
        from chunkctl.cli.render import USAGE, fail
        fail(f"config file {path}: {e}", USAGE)


def main() -> None:
    app()
