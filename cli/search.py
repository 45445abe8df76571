"""`chunkctl embed` and `chunkctl search`."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Db, Device, Json, Model, Quiet, Wait, retrieval_options
from chunkctl.cli.render import (USAGE, embedder_from, err, fail, open_store, out, print_json, progress_display,
                                 reranker_from)

Strategy = Annotated[Optional[str], typer.Option("--strategy", "-s",
                                                 help="Only chunks of this strategy (id or name).")]


def embed_cmd(db: Db = "chunkctl.duckdb", model: Model = "minilm", device: Device = "auto",
              strategy: Strategy = None, quiet: Quiet = False, json_out: Json = False,
              wait: Wait = 0.0) -> None:
    """Embed every stored chunk that has no vector for the model yet (cached by exact text)."""
    from chunkctl.store.vectors import embed_chunks

    embedder = embedder_from(model, device)
    with open_store(db, wait=wait) as store, progress_display(quiet or json_out):
        try:
            result = embed_chunks(store, embedder, strategy)
        except ValueError as e:
            fail(str(e), USAGE)
    if json_out:
        print_json(result.as_dict())
    elif not quiet:
        out.print(f"{result.chunks} chunk(s) given a {embedder.model_id} vector on {embedder.device} "
                  f"({result.embedded} embedded, {result.cached} reused the vector of the same text) "
                  f"in {result.seconds:.1f} s",
                  highlight=False)
        if result.truncated:
            err.print(f"warning: {result.truncated} chunk(s) are longer than the model's window; only their "
                      "first tokens are in their vectors", highlight=False)


@retrieval_options
def search_cmd(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    db: Db = "chunkctl.duckdb",
    k: Annotated[int, typer.Option("-k", min=1, help="How many results to return.")] = 10,
    strategy: Strategy = None,
    model: Model = "minilm",
    device: Device = "auto",
    json_out: Json = False,
    wait: Wait = 0.0,
    retrieval=None,  # the retrieval options, validated (cli.options.retrieval_options)
) -> None:
    """Search stored chunks; shows document, pages, heading path, score and a snippet. The retrieval
    options are eval's, so `chunkctl eval` measures exactly what search returns."""
    from chunkctl.retrieval import search

    embedder = embedder_from(model, device) if retrieval.dense else None
    reranker = reranker_from(ctx, retrieval, db, device)
    with open_store(db, wait=wait) as store:
        try:
            hits = search(store, query, k, retrieval, strategy, embedder, reranker)
        except ValueError as e:
            fail(str(e), USAGE)
    if json_out:
        print_json([h.__dict__ for h in hits])
        return
    if not hits:
        err.print("no results")
        return
    from rich.table import Table

    t = Table(show_lines=True)
    for col in ("#", "score", "document", "pages", "headings", "snippet"):
        t.add_column(col, overflow="fold")
    for i, h in enumerate(hits, 1):
        pages = "" if h.page_start is None else f"{h.page_start}" + (f"–{h.page_end}" if h.page_end != h.page_start else "")
        snippet = " ".join(h.text.split())
        t.add_row(str(i), f"{h.score:.3f}", h.path, pages, " > ".join(h.heading_path),
                  snippet[:240] + ("…" if len(snippet) > 240 else ""))
    out.print(t)
