"""`chunkctl embed` and `chunkctl search`."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Alpha, Db, Device, Fusion, Json, Model, Quiet
from chunkctl.cli.render import USAGE, embedder_from, err, fail, open_store, out, print_json

Strategy = Annotated[Optional[str], typer.Option("--strategy", "-s",
                                                 help="Only chunks of this strategy (id or name).")]


def embed_cmd(db: Db = "chunkctl.duckdb", model: Model = "minilm", device: Device = "auto",
              strategy: Strategy = None, quiet: Quiet = False, json_out: Json = False) -> None:
    """Embed every stored chunk that has no vector for the model yet (cached by exact text)."""
    from chunkctl.store.vectors import embed_chunks

    embedder = embedder_from(model, device)
    with open_store(db) as store:
        try:
            result = embed_chunks(store, embedder, strategy)
        except ValueError as e:
            fail(str(e), USAGE)
    if json_out:
        print_json(result.as_dict())
    elif not quiet:
        out.print(f"{result.chunks} chunk(s) given a {embedder.model_id} vector on {embedder.device} "
                  f"({result.embedded} embedded, {result.cached} from the cache) in {result.seconds:.1f} s",
                  highlight=False)
        if result.truncated:
            err.print(f"warning: {result.truncated} chunk(s) are longer than the model's window; only their "
                      "first tokens are in their vectors", highlight=False)


def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    db: Db = "chunkctl.duckdb",
    k: Annotated[int, typer.Option("-k", min=1, help="How many chunks to return.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="vector (exact cosine), bm25, or hybrid (reciprocal "
                                                     "rank fusion of both).")] = "vector",
    strategy: Strategy = None,
    model: Model = "minilm",
    device: Device = "auto",
    index: Annotated[str, typer.Option("--index", help="exact (cosine over every vector; fine to ~100k chunks) or "
                                                       "hnsw (DuckDB vss index, built on first use and rebuilt when "
                                                       "vectors change).")] = "exact",
    cutoff: Annotated[str, typer.Option("--cutoff", help="k (return k results) or sage (treat the k as candidates "
                                                         "and stop where relevance drops sharply).")] = "k",
    memory: Annotated[str, typer.Option("--memory", help="none, mixed (one index over chunks and MoM's outline and "
                                                         "core entries; a memory hit brings its document's chunks) "
                                                         "or per-layer (each layer searched apart, then fused by "
                                                         "RRF).")] = "none",
    fusion: Fusion = "none",
    alpha: Alpha = 0.7,
    json_out: Json = False,
) -> None:
    """Search stored chunks; shows document, pages, heading path, score and a snippet."""
    from chunkctl.store.fusion import FUSIONS
    from chunkctl.store.memory import MEMORY_MODES
    from chunkctl.store.vectors import CUTOFFS, INDEXES, MODES, search

    for flag, value, allowed in (("--mode", mode, MODES), ("--index", index, INDEXES), ("--cutoff", cutoff, CUTOFFS),
                                 ("--memory", memory, MEMORY_MODES), ("--fusion", fusion, FUSIONS)):
        if value not in allowed:
            fail(f"{flag} must be one of {', '.join(allowed)}", USAGE)
    embedder = embedder_from(model, device) if mode != "bm25" else None
    with open_store(db) as store:
        if embedder is not None and not store.query("SELECT 1 FROM embeddings WHERE model_id = ? LIMIT 1",
                                                    [embedder.model_id]):
            fail(f"no {embedder.model_id} vectors in {db}: run `chunkctl embed --db {db}` first", USAGE)
        try:
            hits = search(store, query, k=k, mode=mode, strategy=strategy, embedder=embedder, index=index,
                          cutoff=cutoff, memory=memory, fusion=fusion, alpha=alpha)
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
