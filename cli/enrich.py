"""`chunkctl enrich` and `chunkctl enrichers`."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from chunkctl.redact import command_line

from chunkctl.cli.options import Db, Device, EmbedFields, EmbedFormat, Enrich, Json, Model, Quiet, Wait
from chunkctl.cli.render import (OK, PARTIAL, USAGE, device_from, embedder_from, enrichment_from, fail,
                                llm_settings_from, open_store, out, print_json, progress_display)


def enrich_cmd(
    ctx: typer.Context,
    db: Db = "chunkctl.duckdb",
    enrich: Enrich = None,
    embed_format: EmbedFormat = None,
    embed_fields: EmbedFields = None,
    strategy: Annotated[Optional[list[str]], typer.Option(
        "--strategy", "-s", help="Only chunks of this strategy (id or name; repeatable). Default: all.")] = None,
    model: Model = "minilm",
    no_embed: Annotated[bool, typer.Option("--no-embed", envvar="CHUNKCTL_NO_EMBED",
                                           help="Do not embed the chunks whose embedded text changed.")] = False,
    device: Device = "auto",
    quiet: Quiet = False,
    json_out: Json = False,
    wait: Wait = 0.0,
) -> None:
    """Enrich the chunks already stored (no re-parsing or re-chunking) and re-embed those whose
    embedded text changed. Chunks that carry the same enrichment are left alone: a re-run makes no
    model call. Exit code 3 when a chunk's enrichment failed (see the `rejects` table)."""
    from chunkctl.pipeline import enrich_store

    if not enrich and embed_format is None:
        fail("nothing to do: give --enrich NAME (see `chunkctl enrichers`) or --embed-format", USAGE)
    device = device_from(device)
    embedder = None if no_embed else embedder_from(model, device)
    enrichment = enrichment_from(enrich, embed_format, embed_fields, embedder)
    command = command_line(sys.argv[1:])
    with open_store(db, wait=wait) as store, progress_display(quiet or json_out):
        try:
            result = enrich_store(store, enrichment, strategy, embedder, llm_settings_from(ctx, db, device), command)
        except ValueError as e:
            fail(str(e), USAGE)
    if json_out:
        print_json(result.as_dict())
    elif not quiet:
        from chunkctl.cli.ingest import summary

        summary(result, db, "enrich")
    raise typer.Exit(PARTIAL if result.rejects else OK)


def enrichers_cmd(json_out: Json = False) -> None:
    """List metadata enrichers with their parameters, defaults and what they write."""
    from chunkctl.chunkers import describe
    from chunkctl.enrich import REGISTRY

    rows = [(describe(cls), cls) for _, cls in sorted(REGISTRY.items())]
    if json_out:
        print_json([{"name": n, "doc": d, "fields": list(cls.fields), "llm": cls.uses_llm,
                     "params": {p: {"type": t, "default": v} for p, t, v in ps}} for (n, d, ps), cls in rows])
        return
    from rich.table import Table

    t = Table(show_lines=True)
    t.add_column("name", style="bold")
    t.add_column("fields")
    t.add_column("parameters (default)")
    t.add_column("what it does", overflow="fold")
    for (name, doc, params), cls in rows:
        t.add_row(name, ", ".join(cls.fields) + (" (LLM)" if cls.uses_llm else ""),
                  "\n".join(f"{p}={v!s} ({typ})" for p, typ, v in params), doc)
    out.print(t)
    out.print("Spec syntax: name or name:key=value,key=value, e.g. keywords:max_items=5", highlight=False)
