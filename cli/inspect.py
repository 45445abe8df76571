"""`chunkctl chunkers`, `stats`, `show`, `export`: looking at strategies and at a store."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Db, Json, Wait
from chunkctl.cli.render import USAGE, err, fail, open_store, out, print_json


def chunkers_cmd(json_out: Json = False) -> None:
    """List chunking strategies with their parameters, defaults and a one-line description."""
    from chunkctl.chunkers import REGISTRY, describe

    rows = [describe(cls) for _, cls in sorted(REGISTRY.items())]
    if json_out:
        print_json([{"name": n, "doc": d, "params": {p: {"type": t, "default": v} for p, t, v in ps}}
                    for n, d, ps in rows])
        return
    from rich.table import Table

    t = Table(show_lines=True)
    t.add_column("name", style="bold")
    t.add_column("parameters (default)")
    t.add_column("what it does", overflow="fold")
    for name, doc, params in rows:
        t.add_row(name, "\n".join(f"{p}={v!s} ({typ})" for p, typ, v in params), doc)
    out.print(t)
    out.print("Spec syntax: name or name:key=value,key=value, e.g. recursive:size=256,overlap=32", highlight=False)


def stats_cmd(db: Db = "chunkctl.duckdb", json_out: Json = False, wait: Wait = 0.0) -> None:
    """Per strategy: documents, chunks, and the distribution of chunk sizes in tokens."""
    with open_store(db, read_only=True, wait=wait) as store:
        from chunkctl.store.catalog import summary

        s = summary(store)
    docs, chars, rows, n_rejects = s["documents"], s["chars"], s["strategies"], s["last_run_rejects"]
    cols = ["strategy_id", "name", "documents", "chunks", "min", "p50", "mean", "p95", "max", "% with pages"]
    if json_out:
        print_json({"documents": docs, "chars": chars, "last_run_rejects": n_rejects,
                    "strategies": [dict(zip(cols, r)) for r in rows]})
        return
    from rich.table import Table

    t = Table(title=f"{db}: {docs} documents, {chars:,} characters; tokens per chunk:", title_justify="left")
    for c in cols:
        t.add_column(c, justify="left" if c in ("strategy_id", "name") else "right")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    out.print(t)
    if n_rejects:
        out.print(f"{n_rejects} input(s) rejected in the last run: SELECT * FROM rejects", highlight=False)


def show_cmd(
    doc: Annotated[str, typer.Argument(help="Document id, path, the end of a path (guide.md) or a part of it.")],
    db: Db = "chunkctl.duckdb",
    strategy: Annotated[Optional[str], typer.Option(
        "--strategy", "-s", help="Strategy id or name (default: the first stored for this document).")] = None,
    seq: Annotated[Optional[str], typer.Option(
        "--seq", metavar="N|A-B", help="Only chunk N, or chunks A to B (their seq numbers).")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=0, help="Show at most this many chunks (0: all). Default: 20, and all with --json.")] = None,
    json_out: Json = False,
    wait: Wait = 0.0,
) -> None:
    """Show a document's chunks with their boundaries, offsets, pages, headings and, with --json, the
    enrichment (metadata, and the text embedded in place of the chunk's when it differs)."""
    from chunkctl.cli.manage import match_documents

    first, last = _seq_range(seq)
    with open_store(db, read_only=True, wait=wait) as store:
        from chunkctl.store.catalog import CHUNK_COLUMNS, chunk_rows, count_chunks, documents, strategies_of

        hits = match_documents(documents(store), doc)
        if len(hits) != 1:
            fail(f"{doc!r} matches {len(hits)} documents" + (": " + ", ".join(p for _, p in hits[:5])
                                                              + (", ..." if len(hits) > 5 else "") if hits
                                                              else " (`chunkctl ls` lists them)"), USAGE)
        doc_id, path = hits[0]
        sids = strategies_of(store, doc_id, strategy)
        if not sids:
            fail(f"no chunks for {path}" + (f" with strategy {strategy}" if strategy else ""), USAGE)
        total = count_chunks(store, doc_id, sids[0])
        limit = limit if limit is not None else 0 if json_out else 20
        if limit and (last is None or last - first + 1 > limit):
            last = first + limit - 1
        chunks = chunk_rows(store, doc_id, sids[0], first, last)
    if json_out:
        print_json({"doc_id": doc_id, "path": path, "strategy_id": sids[0], "total_chunks": total,
                    "chunks": [{k: v for k, v in zip(CHUNK_COLUMNS, c) if k != "embed_text" or v is not None}
                               for c in chunks]})
        return
    from rich.rule import Rule
    from rich.text import Text

    out.print(f"{path}  ({doc_id})  strategy {sids[0]}  {total} chunks"
              + (f"; also stored: {', '.join(sids[1:])}" if len(sids) > 1 else ""), highlight=False)
    for seq_no, s, e, ps, pe, n, heads, text, _, meta, embed_text in chunks:
        pages = "" if ps is None else f" · p.{ps}" + (f"–{pe}" if pe != ps else "")
        where = f" · {' > '.join(heads)}" if heads else ""
        out.print(Rule(f"#{seq_no} [{s}:{e}] {n} tokens{pages}{where}", align="left", style="cyan"))
        out.print(Text(text))
        if embed_text is not None and embed_text != text:
            out.print(Text(f"embedded as: {embed_text}", style="dim"))
    shown_to = chunks[-1][0] if chunks else first - 1
    if shown_to < total - 1 and seq is None:
        err.print(f"… {total - 1 - shown_to} more chunk(s): --limit 0 shows all, --seq N one", highlight=False)


def _seq_range(seq: str | None) -> tuple[int, int | None]:
    if seq is None:
        return 0, None
    a, _, b = seq.partition("-")
    if not a.isdigit() or (b and not b.isdigit()):
        fail(f"--seq takes N or A-B (chunk numbers), not {seq!r}", USAGE)
    return int(a), int(b) if b else int(a)


def export_cmd(
    parquet: Annotated[Path, typer.Option("--parquet", help="Folder to write one <table>.parquet per table.")],
    db: Db = "chunkctl.duckdb",
    wait: Wait = 0.0,
) -> None:
    """Write every table of the store as Parquet (DuckDB COPY)."""
    from chunkctl.store import export_parquet

    with open_store(db, read_only=True, wait=wait) as store:
        written = export_parquet(store, parquet)
    for p in written:
        out.print(str(p), highlight=False)
