"""The Typer app: options in, one library call, rendering out. No logic lives here."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from chunkctl import __version__
from chunkctl.cli import doctor, enrich, evaluate, ingest, inspect, load, manage, search, tune
from chunkctl.cli import llm as llm_cli
from chunkctl.cli import qa as qa_cli
from chunkctl.cli.options import (Llm, LlmBaseUrl, LlmCache, LlmConcurrency, LlmMaxTokens, LlmModel, LlmPrice,
                                  LlmRetries, LlmTimeout, NoLlmCache)

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
    "enrich": enrich.enrich_cmd, "enrichers": enrich.enrichers_cmd,
    "stats": inspect.stats_cmd, "show": inspect.show_cmd, "ls": manage.ls_cmd, "rm": manage.rm_cmd,
    "rejects": manage.rejects_cmd, "strategies": manage.strategies_cmd, "export": inspect.export_cmd,
    "load": load.load_cmd, "embed": search.embed_cmd, "search": search.search_cmd, "eval": evaluate.eval_cmd,
    "tune": tune.tune_cmd,
    "doctor": doctor.doctor_cmd,
}
for _name, _fn in COMMANDS.items():
    app.command(_name)(_fn)
app.add_typer(llm_cli.app, name="llm")
app.add_typer(qa_cli.app, name="qa")


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
    llm: Llm = "local",
    llm_model: LlmModel = None,
    llm_base_url: LlmBaseUrl = None,
    llm_concurrency: LlmConcurrency = 8,
    llm_max_tokens_total: LlmMaxTokens = None,
    llm_timeout: LlmTimeout = 120.0,
    llm_retries: LlmRetries = 4,
    llm_price: LlmPrice = None,
    llm_cache: LlmCache = None,
    no_llm_cache: NoLlmCache = False,
) -> None:
    from pathlib import Path

    from chunkctl.config import check_config, config_path, default_map, load_config, option_keys

    path = Path(config) if config else config_path()
    try:
        settings = load_config(path)
        keys = option_keys(ctx.command)
        problems = check_config(settings, keys)
        if problems:
            raise ValueError("; ".join(problems))
        ctx.default_map = default_map(settings, keys)
    except (OSError, ValueError) as e:
        from chunkctl.cli.render import USAGE, fail
        fail(f"config file {path}: {e}", USAGE)
    # The root's own options are parsed before the file is read: fill in those left at their default.
    given = dict(llm=llm, llm_model=llm_model, llm_base_url=llm_base_url, llm_concurrency=llm_concurrency,
                 llm_max_tokens_total=llm_max_tokens_total, llm_timeout=llm_timeout, llm_retries=llm_retries,
                 llm_price=llm_price, llm_cache=llm_cache, no_llm_cache=no_llm_cache)
    shared = {k.replace("-", "_"): v for k, v in settings.items() if not isinstance(v, dict)}
    for name in given:
        source = ctx.get_parameter_source(name)  # Typer's own copy of click's enum: compare by name
        if name in shared and getattr(source, "name", None) == "DEFAULT":
            given[name] = shared[name]
    ctx.obj = {"llm": given, "db": shared.get("db")}  # the main store named in the file (eval reads it)


def main() -> None:
    """The console entry point: no traceback reaches a user. A store or disk failure is one line
    and exit 1 (what was committed stays; a re-run resumes); so is a bug, with CHUNKCTL_DEBUG=1 to
    see its traceback. Ctrl-C is exit 130, also when it surfaced as another exception type (DuckDB
    raises its own InterruptException for a query it stopped)."""
    import os
    import signal
    import sys

    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        app()
    except KeyboardInterrupt:  # a command that has nothing of its own to say
        _interrupted()
    except Exception as e:  # Typer has handled usage errors and Exit by now
        from chunkctl import stop

        if stop.requested():
            _interrupted()
        if os.environ.get("CHUNKCTL_DEBUG"):
            raise
        from chunkctl.store.db import StoreError, store_failure
        from chunkctl.redact import redact
        from chunkctl.types import shown

        why = store_failure(e) or (str(e) if isinstance(e, StoreError) else None)
        line = (f"store failure: {why}; everything committed before it is kept, re-run to resume" if why
                else f"internal error: {type(e).__name__}: {e} (CHUNKCTL_DEBUG=1 shows the traceback)")
        sys.stderr.write(f"error: {redact(shown(line))}\n")
        sys.exit(1)


def _interrupted() -> None:
    import sys

    from chunkctl.cli.render import exit_now

    sys.stderr.write("Interrupted: what was committed is kept; re-run to resume.\n")
    exit_now(130)


STOP_WITHIN_S = 3.0  # after Ctrl-C, the longest the process takes to end


def _on_interrupt(signum, frame) -> None:
    """Ctrl-C: raise KeyboardInterrupt in the main thread (commands roll back the document being
    written and record the run), and make sure the process is gone within STOP_WITHIN_S even when
    the main thread is inside a long native call; a second Ctrl-C ends it at once."""
    import os
    import threading

    from chunkctl import stop

    if stop.requested():
        os._exit(130)
    stop.request()

    def late() -> None:
        os.write(2, b"Interrupted: stopped without waiting for the current step; what was committed is kept.\n")
        if os.environ.get("CHUNKCTL_DEBUG"):  # where it was stuck
            import faulthandler

            faulthandler.dump_traceback(all_threads=True)
        os._exit(130)

    timer = threading.Timer(STOP_WITHIN_S, late)
    timer.daemon = True
    timer.start()
    if not stop.shielded():  # else the block raises it when it ends (chunkctl.stop.shield)
        raise KeyboardInterrupt
