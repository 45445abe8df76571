"""Terminal output shared by commands: one stderr console for progress and messages, stdout for
results, and the exit codes every command uses."""
from __future__ import annotations

import json
from contextlib import contextmanager
import sys
from typing import Any

import typer
from rich.console import Console

OK, FAILURE, USAGE, PARTIAL, QUALITY_GATE = 0, 1, 2, 3, 4

# Off a terminal rich would wrap tables at 80 columns; results piped to a file read better wide.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # messages stay one line: greppable in CI logs


def fail(message: str, code: int = FAILURE) -> None:
    from chunkctl.redact import redact

    err.print("[bold red]error:[/] ", end="", highlight=False)
    err.print(redact(message), highlight=False, markup=False)
    raise typer.Exit(code)


def exit_now(code: int) -> None:
    """Exit without waiting for helper threads (an embedding batch, LLM requests in flight): after
    Ctrl-C nothing they would finish is wanted, and the store is closed already."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def open_store(db: str, read_only: bool = False, create: bool = False, wait: float = 0.0):
    """The store, or a clear error: exit 2 when it does not exist (unless ``create``) or is not a
    chunkctl store, 1 when another process holds it past ``wait`` seconds ("store busy: PID N ...")
    or it cannot be opened. A dataset folder (ingest --engine ray) is opened read-only in place."""
    import sys
    from pathlib import Path

    from chunkctl.redact import command_line
    from chunkctl.store import Store
    from chunkctl.store.dataset import DatasetStore, is_dataset
    from chunkctl.store.db import NotAStore, StoreBusy

    if not create and not Path(db).exists():
        fail(f"no store at {db} (run `chunkctl ingest` first, or pass --db)", USAGE)
    if Path(db).is_dir():
        if not is_dataset(db):
            fail(f"{db} is a folder but not a chunkctl dataset (pass a store file, e.g. --db chunkctl.duckdb)",
                 USAGE)
        if create:
            fail(f"{db} is a Parquet dataset, read-only here: ingest into it with --engine ray --out, or "
                 "`chunkctl load` it into a DuckDB file", USAGE)
        try:
            return DatasetStore(db)
        except FileNotFoundError as e:
            fail(str(e), USAGE)
    try:
        return Store(db, read_only=read_only, wait=wait, command=None if read_only else command_line(sys.argv[1:]))
    except NotAStore as e:
        fail(str(e), USAGE)
    except StoreBusy as e:
        fail(str(e))
    except Exception as e:  # DuckDB raises several types for an unusable file
        fail(f"cannot open store {db}: {e}")


def chunkers_from(specs: list[str] | None):
    from chunkctl.chunkers import DEFAULT_SPEC, parse_spec

    try:
        return [parse_spec(s) for s in (specs or [DEFAULT_SPEC])]
    except ValueError as e:
        fail(f"--chunker: {e}", USAGE)


def enrichment_from(specs: list[str] | None, embed_format: str | None, embed_fields: str | None, embedder,
                    default_plain: bool = False):
    """The Enrichment asked for, or None when nothing was (stored chunks are then left as they
    are; ``default_plain``: an explicit plain one, as eval wants). Counted against ``embedder``'s
    window and tokenizer (the packaged MiniLM's when there is none)."""
    from chunkctl.enrich import Enrichment, parse_enricher

    if not specs and embed_format is None and embed_fields is None and not default_plain:
        return None
    try:
        enrichers = tuple(parse_enricher(s) for s in specs or ())
        fields = tuple(f.strip() for f in embed_fields.split(",") if f.strip()) if embed_fields else None
        window = {"max_tokens": embedder.max_tokens, "tokenizer": embedder.tokenizer} if (
            embedder is not None and hasattr(embedder, "max_tokens") and getattr(embedder, "tokenizer", None)) else {}
        return Enrichment(enrichers, embed_format or ("prefix" if enrichers else "plain"), fields, **window)
    except ValueError as e:
        fail(f"--enrich: {e}", USAGE)


def device_from(device: str) -> str:
    """The device to run models on, or a usage error (exit 2) when the one asked for is not there."""
    from chunkctl.embed import resolve_device

    try:
        return resolve_device(device)
    except ValueError as e:  # DeviceError
        fail(str(e), USAGE)


def embedder_from(model: str, device: str):
    """The embedder, or a usage error (exit 2) naming what is wrong: an unknown model, or a device
    that is not there."""
    from chunkctl.embed import get_embedder

    try:
        return get_embedder(model, device)
    except ValueError as e:  # DeviceError included
        fail(str(e), USAGE)


def llm_settings_from(ctx, db: str | None, device: str = "auto"):
    """LLMSettings from the global --llm options; the cache sits beside ``db`` unless --llm-cache
    names a file (no store and no --llm-cache: no cache). Usage errors exit 2."""
    from chunkctl.config import llm_api_key
    from chunkctl.llm import LLMSettings
    from chunkctl.llm.cache import cache_path_for
    from chunkctl.llm.client import BACKENDS

    o = ctx.find_root().obj["llm"]
    if o["llm"] not in BACKENDS:
        fail(f"--llm must be one of {', '.join(BACKENDS)}, not {o['llm']!r}", USAGE)
    price = None
    if o["llm_price"]:
        try:
            raw = o["llm_price"]  # "IN,OUT" from a flag or the environment, a list from the file
            pin, pout = (float(x) for x in (raw if isinstance(raw, (list, tuple)) else str(raw).split(",")))
            price = (pin, pout)
        except ValueError:
            fail(f"--llm-price takes IN,OUT in USD per million tokens, e.g. 0.15,0.60; got {o['llm_price']!r}",
                 USAGE)
    cache = None if o["no_llm_cache"] else (o["llm_cache"] or (str(cache_path_for(db)) if db else None))
    return LLMSettings(backend=o["llm"], model=o["llm_model"], base_url=o["llm_base_url"], api_key=llm_api_key(),
                       timeout=float(o["llm_timeout"]), retries=int(o["llm_retries"]),
                       concurrency=int(o["llm_concurrency"]), max_tokens_total=o["llm_max_tokens_total"],
                       cache=cache, price=price, device=device)


def reranker_from(ctx, retrieval, db: str | None, device: str = "auto"):
    """The LLM reranker when ``retrieval`` asks for one (None otherwise); usage errors exit 2."""
    if retrieval.rerank == "none":
        return None
    from chunkctl.llm import LLMError, open_llm
    from chunkctl.rerank import LLMReranker

    try:
        return LLMReranker(open_llm(llm_settings_from(ctx, db, device)))
    except LLMError as e:
        fail(str(e), USAGE)


class _Bars:
    """chunkctl.progress's listener on a terminal: one transient line per open step, with its count,
    elapsed time and (when the total is known) an ETA."""

    def __init__(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
                            console=err, transient=True, refresh_per_second=8)
        self.tasks: dict[int, Any] = {}

    def start(self, step) -> None:
        self.tasks[id(step)] = self.bar.add_task(step.name, total=step.total, detail=step.detail)

    def update(self, step) -> None:
        task = self.tasks.get(id(step))
        if task is not None:
            self.bar.update(task, completed=step.done, total=step.total, detail=step.detail[:60])

    def end(self, step) -> None:
        task = self.tasks.pop(id(step), None)
        if task is not None:
            self.bar.remove_task(task)


@contextmanager
def progress_display(silent: bool):
    """Progress bars for every long step of the command (``chunkctl.progress``) on a terminal's
    stderr; nothing with -q/--json (``silent``) or when stderr is not a terminal."""
    from chunkctl import progress

    if silent or not err.is_terminal:
        yield
        return
    bars = _Bars()
    with bars.bar, progress.listen(bars):
        yield
