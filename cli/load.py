"""`chunkctl load`: a Parquet dataset (ingest --engine ray) into a DuckDB store."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chunkctl.cli.options import Db, Json, Quiet, Wait
from chunkctl.cli.render import USAGE, fail, open_store, out, print_json


def load_cmd(
    dataset: Annotated[Path, typer.Argument(help="The dataset folder that `ingest --engine ray --out` wrote.")],
    db: Db = "chunkctl.duckdb",
    quiet: Quiet = False,
    json_out: Json = False,
    wait: Wait = 0.0,
) -> None:
    """Import a Parquet dataset's live rows (documents, chunks, vectors, memories, rejects, runs) into
    the DuckDB store, in one transaction. Idempotent: documents already loaded as they are in the
    dataset are left alone; documents the dataset pruned are deleted from the store."""
    from chunkctl.store.dataset import is_dataset, load_dataset

    if not is_dataset(dataset) or not (dataset / "runs").is_dir():
        fail(f"{dataset}: not a chunkctl dataset (no runs/ folder)", USAGE)
    with open_store(db, create=True, wait=wait) as store:
        counts = load_dataset(store, dataset)
    if json_out:
        print_json(counts)
    elif not quiet:
        out.print(f"loaded {dataset} → {db}: {counts['documents']} document(s) replaced or added "
                  f"({counts['chunks']} chunks), {counts['deleted']} deleted, {counts['runs']} new run(s)",
                  highlight=False)
