"""`chunkctl llm check` and `chunkctl llm cache stats|clear`."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Db, Json
from chunkctl.cli.render import (FAILURE, OK, PARTIAL, USAGE, err, fail, llm_settings_from, out, print_json,
                                 progress_display)

app = typer.Typer(help="The LLM backend: check it, and manage the completion cache.", no_args_is_help=True)
cache_app = typer.Typer(help="The completion cache beside the store.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@app.command("check")
def check_cmd(ctx: typer.Context, json_out: Json = False) -> None:
    """Which backend and model the global --llm options select, whether it answers, and which
    features work with it: generation (tokens/s), log-probs, JSON-schema output, scoring (and which
    model scores), next-token candidates. Live calls: the cache is bypassed.

    Exit code 0 when everything works, 1 when the model does not answer, 3 when some feature fails.
    """
    from chunkctl.llm import LLMError
    from chunkctl.llm.check import check
    from chunkctl.llm.client import make_backend

    settings = llm_settings_from(ctx, None)
    try:
        backend = make_backend(settings)
    except LLMError as e:
        fail(str(e), USAGE)
    where = backend.where
    try:
        model = backend.model_id
    except LLMError as e:
        model, probes = "?", None
        err.print(f"[bold red]error:[/] {e}", highlight=False)
    else:
        with progress_display(json_out):
            probes = check(backend)
    code = FAILURE if not probes or not probes[0].ok else OK if all(p.ok for p in probes) else PARTIAL
    if json_out:
        print_json({"backend": settings.backend, "model": model, "where": where, "ok": code == OK,
                    "probes": [vars(p) for p in probes or []]})
        raise typer.Exit(code)
    out.print(f"backend  {settings.backend}\nmodel    {model}\nwhere    {where}", highlight=False)
    for p in probes or []:
        mark = "[green]ok[/]  " if p.ok else "[red]FAIL[/]"
        out.print(f"{mark} {p.name:<22} {p.detail}  [dim]({p.seconds:.2f} s)[/]", highlight=False)
    raise typer.Exit(code)


def _cache(ctx: typer.Context, db: str):
    """The cache the options select, or None when there is no such file yet."""
    from pathlib import Path

    from chunkctl.llm.cache import CompletionCache

    settings = llm_settings_from(ctx, db)
    if settings.cache is None:
        fail("the cache is off (--no-llm-cache)", USAGE)
    if not Path(settings.cache).exists():
        out.print(f"no completion cache at {settings.cache}", highlight=False)
        raise typer.Exit(OK)
    return CompletionCache(settings.cache)


@cache_app.command("stats")
def cache_stats_cmd(ctx: typer.Context, db: Db = "chunkctl.duckdb", json_out: Json = False) -> None:
    """Entries and tokens in the completion cache, by backend, model and kind of request."""
    s = _cache(ctx, db).stats()
    if json_out:
        print_json(s)
        return
    invalid = f" ({s['invalid']} of them replies that stayed invalid)" if s["invalid"] else ""
    out.print(f"{s['path']}: {s['entries']} completion(s){invalid}, {s['bytes'] / 1e6:.1f} MB", highlight=False)
    for g in s["groups"]:
        out.print(f"  {g['backend']:<7} {g['model']:<40} {g['kind']:<10} {g['entries']:>7}  "
                  f"{g['prompt_tokens']:,} prompt + {g['completion_tokens']:,} completion tokens", highlight=False)


@cache_app.command("clear")
def cache_clear_cmd(
    ctx: typer.Context,
    db: Db = "chunkctl.duckdb",
    model: Annotated[Optional[str], typer.Option("--model", help="Only this model's entries.")] = None,
) -> None:
    """Delete cached completions (all, or one model's)."""
    n = _cache(ctx, db).clear(model)
    out.print(f"removed {n} cached completion(s)", highlight=False)
    raise typer.Exit(OK)
