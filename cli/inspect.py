"""`chunkctl chunkers`, `stats`, `show`, `export`: looking at strategies and at a store."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Db, Json, Wait
from chunkctl.cli.render import USAGE, fail, open_store, out, print_json


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
    doc: Annotated[str, typer.Argument(help="Document id, path, or the end of a path (e.g. guide.md).")],
    db: Db = "chunkctl.duckdb",
    strategy: Annotated[Optional[str], typer.Option(
        "--strategy", "-s", help="Strategy id or name (default: the first stored for this document).")] = None,
    json_out: Json = False,
    wait: Wait = 0.0,
) -> None:
    """Show a document's chunks with their boundaries, offsets, pages and headings."""
    import os

    with open_store(db, read_only=True, wait=wait) as store:
        from chunkctl.store.catalog import chunk_rows, documents, strategies_of

        rows = documents(store)
        absolute = os.path.abspath(doc)
        hits = [r for r in rows if doc in (r[0], r[1]) or r[1] == absolute]
        hits = hits or [r for r in rows if r[1].endswith("/" + doc.lstrip("/"))]
        if len(hits) != 1:
            fail(f"{doc!r} matches {len(hits)} documents" + (": " + ", ".join(r[1] for r in hits[:5]) if hits else ""),
                 USAGE)
        doc_id, path = hits[0]
        sids = strategies_of(store, doc_id, strategy)
        if not sids:
            fail(f"no chunks for {path}" + (f" with strategy {strategy}" if strategy else ""), USAGE)
        chunks = chunk_rows(store, doc_id, sids[0])
    if json_out:
        keys = ["seq", "char_start", "char_end", "page_start", "page_end", "n_tokens", "heading_path", "text"]
        print_json({"doc_id": doc_id, "path": path, "strategy_id": sids[0], "chunks": [dict(zip(keys, c)) for c in chunks]})
        return
    from rich.rule import Rule
    from rich.text import Text

    out.print(f"{path}  ({doc_id})  strategy {sids[0]}  {len(chunks)} chunks"
              + (f"; also stored: {', '.join(sids[1:])}" if len(sids) > 1 else ""), highlight=False)
    for seq, s, e, ps, pe, n, heads, text in chunks:
        pages = "" if ps is None else f" · p.{ps}" + (f"–{pe}" if pe != ps else "")
        where = f" · {' > '.join(heads)}" if heads else ""
        out.print(Rule(f"#{seq} [{s}:{e}] {n} tokens{pages}{where}", align="left", style="cyan"))
        out.print(Text(text))


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
