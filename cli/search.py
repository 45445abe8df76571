"""`chunkctl embed` and `chunkctl search`."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Db, Json, Quiet
from chunkctl.cli.render import USAGE, err, fail, open_store, out, print_json

Model = Annotated[str, typer.Option("--embed", envvar="CHUNKCTL_EMBED", metavar="MODEL",
                                    help="Embedding model: minilm (default: int8 ONNX on the CPU, fp32 "
                                         "sentence-transformers on a GPU), minilm-onnx, minilm-st, or a local "
                                         "sentence-transformers folder.")]
Device = Annotated[str, typer.Option("--device", envvar="CHUNKCTL_DEVICE",
                                     help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps.")]
Strategy = Annotated[Optional[str], typer.Option("--strategy", "-s",
                                                 help="Only chunks of this strategy (id or name).")]


def _embedder(model: str, device: str):
    from chunkctl.embed import DeviceError, get_embedder

    try:
        return get_embedder(model, device)
    except DeviceError as e:
        fail(str(e), USAGE)
    except ValueError as e:
        fail(str(e), USAGE)


def embed_cmd(db: Db = "chunkctl.duckdb", model: Model = "minilm", device: Device = "auto",
              strategy: Strategy = None, quiet: Quiet = False, json_out: Json = False) -> None:
    """Embed every stored chunk that has no vector for the model yet (cached by exact text)."""
    from chunkctl.store.vectors import embed_chunks

    embedder = _embedder(model, device)
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


def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    db: Db = "chunkctl.duckdb",
    k: Annotated[int, typer.Option("-k", min=1, help="How many chunks to return.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="vector (exact cosine), bm25, or hybrid (reciprocal "
                                                     "rank fusion of both).")] = "vector",
    strategy: Strategy = None,
    model: Model = "minilm",
    device: Device = "auto",
    json_out: Json = False,
) -> None:
    """Search stored chunks; shows document, pages, heading path, score and a snippet."""
    from chunkctl.store.vectors import MODES, search

    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}", USAGE)
    embedder = _embedder(model, device) if mode != "bm25" else None
    with open_store(db) as store:
        if embedder is not None and not store.query("SELECT 1 FROM embeddings WHERE model_id = ? LIMIT 1",
                                                    [embedder.model_id]):
            fail(f"no {embedder.model_id} vectors in {db}: run `chunkctl embed --db {db}` first", USAGE)
        try:
            hits = search(store, query, k=k, mode=mode, strategy=strategy, embedder=embedder)
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
