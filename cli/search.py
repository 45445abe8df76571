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
    """Search stored chunks of one strategy (see --strategy); shows document, pages, heading path, a
    score and the part of the text that matches. The retrieval options are eval's, so `chunkctl eval`
    measures exactly what search returns. Exit code 2 for an empty query or an empty store."""
    from chunkctl.retrieval import search, search_strategy

    if not query.strip():
        fail("the query is empty: search \"what to look for\"", USAGE)
    embedder = embedder_from(model, device) if retrieval.dense else None
    reranker = reranker_from(ctx, retrieval, db, device)
    with open_store(db, wait=wait) as store:
        try:
            chosen, others = search_strategy(store, strategy)
            hits = search(store, query, k, retrieval, chosen, embedder, reranker)
        except ValueError as e:
            fail(str(e), USAGE)
    if others and strategy is None:
        err.print(f"searching strategy {chosen}; also stored: {', '.join(others)} (--strategy to choose)",
                  highlight=False)
    if json_out:
        print_json([h.__dict__ for h in hits])
        return
    if not hits:
        err.print("no results")
        return
    from rich.table import Table
    from rich.text import Text

    # what the score is: a cosine and a BM25 score read as they are; a fused score only relative to the best
    label, shown = {"vector": ("cosine", lambda h: f"{h.score:.3f}"), "bm25": ("BM25", lambda h: f"{h.score:.2f}")}.get(
        retrieval.mode, ("match", lambda h: f"{100 * h.relevance:.0f}%"))
    t = Table(show_lines=True, caption="match: the fused score as a share of the best result's"
              if label == "match" else None)
    for col in ("#", label, "document", "pages", "headings", "snippet"):
        t.add_column(col, overflow="fold")
    words = [w for w in query.split() if len(w) > 2]
    for i, h in enumerate(hits, 1):
        pages = "" if h.page_start is None else f"{h.page_start}" + (f"–{h.page_end}" if h.page_end != h.page_start else "")
        snip = Text(h.snippet)
        snip.highlight_words(words, "bold", case_sensitive=False)
        t.add_row(str(i), shown(h), h.path, pages, " > ".join(h.heading_path), snip)
    out.print(t)
