"""`chunkctl ls`, `rm`, `rejects`, `strategies`: what is in a store, and taking things out of it."""
from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Db, Json, Quiet, Wait
from chunkctl.cli.render import USAGE, err, fail, open_store, out, print_json


def match_documents(docs: list[tuple[str, str]], pattern: str, substring: bool = True) -> list[tuple[str, str]]:
    """The (doc_id, path) a user means by ``pattern``, most exact rule first: the id or the path
    (as given or absolute), then the end of the path (``guide.md``, ``docs/guide.md``), then
    (``substring``) any part of the path, ignoring case."""
    absolute = os.path.abspath(pattern)
    for rule in (lambda d, p: pattern in (d, p) or p == absolute,
                 lambda d, p: p.endswith("/" + pattern.lstrip("/")),
                 lambda d, p: substring and pattern.lower() in p.lower()):
        hits = [(d, p) for d, p in docs if rule(d, p)]
        if hits:
            return hits
    return []


def ls_cmd(
    pattern: Annotated[Optional[str], typer.Argument(help="Only documents whose path contains this.")] = None,
    db: Db = "chunkctl.duckdb",
    json_out: Json = False,
    wait: Wait = 0.0,
) -> None:
    """List the stored documents: path, characters, pages, chunks per strategy, when ingested."""
    from chunkctl.store.catalog import document_list

    with open_store(db, read_only=True, wait=wait) as store:
        docs = document_list(store)
    if pattern:
        keep = {d for d, _ in match_documents([(d["doc_id"], d["path"]) for d in docs], pattern)}
        docs = [d for d in docs if d["doc_id"] in keep]
    if json_out:
        print_json(docs)
        return
    if not docs:
        err.print("no documents" + (f" match {pattern!r}" if pattern else f" in {db}"), highlight=False)
        return
    from rich.table import Table

    t = Table(title=f"{len(docs)} document(s) in {db}", title_justify="left")
    for col, justify in (("path", "left"), ("doc_id", "left"), ("chars", "right"), ("pages", "right"),
                         ("chunks per strategy", "left"), ("ingested", "left")):
        t.add_column(col, justify=justify, overflow="fold")
    for d in docs:
        t.add_row(d["path"], d["doc_id"], f"{d['chars'] or 0:,}", str(d["pages"] or ""),
                  ", ".join(f"{s} {n}" for s, n in d["chunks"].items()), str(d["ingested_at"])[:19])
    out.print(t)


def rm_cmd(
    documents: Annotated[list[str], typer.Argument(help="Documents to remove: id, path, or the end of a path.")],
    db: Db = "chunkctl.duckdb",
    quiet: Quiet = False,
    wait: Wait = 0.0,
) -> None:
    """Remove documents with their chunks and vectors (an identical text ingested later reuses the
    vectors). Every argument must match; nothing is removed otherwise (exit 2). The files stay."""
    from chunkctl.store.catalog import documents as all_documents
    from chunkctl.store.catalog import remove_documents

    with open_store(db, wait=wait) as store:
        docs = all_documents(store)
        chosen: dict[str, str] = {}
        for pattern in documents:
            hits = match_documents(docs, pattern, substring=False)
            if not hits:
                fail(f"{pattern!r} matches no stored document (`chunkctl ls {pattern}` lists near matches); "
                     "nothing removed", USAGE)
            chosen.update(hits)
        remove_documents(store, list(chosen))
    if not quiet:
        for path in chosen.values():
            out.print(f"removed {path}", highlight=False)


def rejects_cmd(
    db: Db = "chunkctl.duckdb",
    all_runs: Annotated[bool, typer.Option("--all", help="Every run's rejects, not only the latest run's.")] = False,
    json_out: Json = False,
    wait: Wait = 0.0,
) -> None:
    """The inputs rejected by the latest run that rejected any (every run with --all): path, stage
    and reason."""
    from chunkctl.store.catalog import reject_rows

    with open_store(db, read_only=True, wait=wait) as store:
        rows = reject_rows(store, all_runs)
    if json_out:
        print_json(rows)
        return
    if not rows:
        err.print("no rejects", highlight=False)
        return
    from rich.table import Table

    t = Table(title=f"{len(rows)} reject(s)" + ("" if all_runs else f" of run {rows[0]['run_id']} "
                                                                     f"({str(rows[0]['started_at'])[:19]})"),
              title_justify="left")
    for col in ("path", "stage", "reason", *(("run",) if all_runs else ())):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["path"], r["stage"], r["reason"], *((r["run_id"],) if all_runs else ()))
    out.print(t)


def strategies_cmd(
    db: Db = "chunkctl.duckdb",
    drop: Annotated[Optional[list[str]], typer.Option(
        "--drop", metavar="STRATEGY", help="Remove a strategy (id or name) with its chunks and vectors. "
                                           "Repeatable.")] = None,
    json_out: Json = False,
    wait: Wait = 0.0,
) -> None:
    """The strategies stored: id, name, parameters, documents and chunks; --drop removes one."""
    from chunkctl.store.catalog import drop_strategy, strategy_list

    with open_store(db, read_only=not drop, wait=wait) as store:
        rows = strategy_list(store)
        dropped = []
        for name in drop or []:
            hits = [r for r in rows if name in (r["strategy_id"], r["name"])]
            if len(hits) != 1:
                fail(f"--drop {name}: matches {len(hits)} stored strategies"
                     + (f" ({', '.join(r['strategy_id'] for r in hits)}): give the id" if hits else ""), USAGE)
            dropped.append((hits[0]["strategy_id"], drop_strategy(store, hits[0]["strategy_id"])))
        if dropped:
            rows = strategy_list(store)
    if json_out:
        print_json({"strategies": rows, "dropped": [{"strategy_id": s, "chunks": n} for s, n in dropped]})
        return
    for sid, n in dropped:
        err.print(f"dropped {sid} ({n} chunks)", highlight=False)
    from rich.table import Table

    t = Table(title=f"{len(rows)} strateg{'y' if len(rows) == 1 else 'ies'} in {db}", title_justify="left")
    for col in ("strategy_id", "name", "parameters", "documents", "chunks"):
        t.add_column(col, justify="right" if col in ("documents", "chunks") else "left", overflow="fold")
    for r in rows:
        t.add_row(r["strategy_id"], r["name"], ",".join(f"{k}={v}" for k, v in sorted(r["params"].items())),
                  str(r["documents"]), str(r["chunks"]))
    out.print(t)
