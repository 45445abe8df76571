"""`chunkctl qa generate`."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Device, Model, Quiet
from chunkctl.cli.render import (FAILURE, OK, PARTIAL, USAGE, embedder_from, err, fail, llm_settings_from, out,
                                 progress_display)

app = typer.Typer(help="QA sets for `chunkctl eval`.", no_args_is_help=True)


@app.command("generate")
def generate_cmd(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Documents to write questions about (walked recursively).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The QA file to write (native JSONL).")],
    per_doc: Annotated[int, typer.Option("--per-doc", min=1, help="Questions asked per document.")] = 5,
    window: Annotated[int, typer.Option("--window", min=200, help="Characters of the document shown per question.")] = 4000,
    seed: Annotated[int, typer.Option("--seed", help="Where the windows fall, and the sampling seeds.")] = 0,
    include: Annotated[Optional[list[str]], typer.Option("--include", metavar="GLOB", help="Only matching files.")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", metavar="GLOB", help="Skip matching files.")] = None,
    model: Model = "minilm",
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Write a QA set from your own documents with the LLM (the global --llm options): a question and
    the verbatim excerpts that answer it, kept only when every excerpt is found in the document, then
    weakly supported questions and near-duplicates dropped by embedding similarity (Chroma's recipe).
    Completions are cached beside the output file (<output>.llm-cache.sqlite).

    Exit code 0, 1 when no question survived, 3 when some files could not be read.
    """
    from chunkctl.evaluation.generate import GenerateOptions, generate_qa
    from chunkctl.llm import LLMError, open_llm
    from chunkctl.parse import load_document
    from chunkctl.types import Reject, RejectError
    from chunkctl.walk import walk

    if not folder.is_dir():
        fail(f"{folder}: no such folder", USAGE)
    docs, rejected = [], 0
    for item in walk([str(folder)], include or (), [*(exclude or ()), output.name]):
        if isinstance(item, Reject):
            rejected += 1
            continue
        try:
            doc = load_document(str(item.path), Path(item.path).read_bytes())
        except (RejectError, OSError) as e:
            err.print(f"[yellow]skipped[/] {item.path}: {e}", highlight=False)
            rejected += 1
            continue
        docs.append((os.path.relpath(item.path, os.path.abspath(folder)), doc.text))  # as walked: symlinks kept
    if not docs:
        fail(f"no readable documents under {folder}", USAGE)
    try:
        llm = open_llm(llm_settings_from(ctx, str(output), device))
    except LLMError as e:
        fail(str(e), USAGE)
    with progress_display(quiet):
        res = generate_qa(docs, llm, embedder_from(model, device),
                          GenerateOptions(per_doc=per_doc, window=window, seed=seed))
    output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in res.rows), encoding="utf-8")
    if not quiet:
        out.print(f"{len(res.rows)} question(s) written to {output} from {len(docs)} document(s): {res.asked} asked, "
                  f"{res.failed} failed, {res.not_found} with an excerpt not in the document, {res.weak} weakly "
                  f"supported, {res.duplicates} near-duplicates dropped", highlight=False)
        out.print(f"LLM: {llm.stats.line()}", highlight=False)
    raise typer.Exit(FAILURE if not res.rows else PARTIAL if rejected else OK)
