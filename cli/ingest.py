"""`chunkctl ingest` and `chunkctl chunk`."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from chunkctl.redact import command_line

from chunkctl.cli.options import (Chunkers, Db, Device, EmbedFields, EmbedFormat, Enrich, Json, Model, PdfBackend,
                                  Quiet, Wait)
from chunkctl.cli.render import (OK, PARTIAL, USAGE, chunkers_from, device_from, embedder_from, enrichment_from, err,
                                exit_now, fail, llm_settings_from, open_store, out, print_json, progress_display)


def ingest_cmd(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (walked recursively).")],
    db: Db = "chunkctl.duckdb",
    chunker: Chunkers = None,
    enrich: Enrich = None,
    embed_format: EmbedFormat = None,
    embed_fields: EmbedFields = None,
    include: Annotated[Optional[list[str]], typer.Option(
        "--include", envvar="CHUNKCTL_INCLUDE", metavar="GLOB",
        help="Only files matching this glob (path relative to the folder, or file name). Repeatable.")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(
        "--exclude", envvar="CHUNKCTL_EXCLUDE", metavar="GLOB", help="Skip files matching this glob. Repeatable.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-parse and re-chunk even unchanged files.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Remove stored documents whose files are gone.")] = False,
    pdf_backend: PdfBackend = "pdfium",
    model: Model = "minilm",
    no_embed: Annotated[bool, typer.Option("--no-embed", envvar="CHUNKCTL_NO_EMBED",
                                           help="Skip the embedding stage (run `chunkctl embed` later).")] = False,
    device: Device = "auto",
    stream_mb: Annotated[int, typer.Option(
        "--stream-mb", min=1, help="Text files larger than this many MB are read, chunked and stored in "
                                   "blocks, in bounded memory.")] = 64,
    document_timeout: Annotated[float, typer.Option(
        "--document-timeout", min=0, envvar="CHUNKCTL_DOCUMENT_TIMEOUT", metavar="SECONDS",
        help="Longest one file's parse may take; past it the parser is stopped and the file rejected "
             "(0: no limit).")] = 120.0,
    parse_memory: Annotated[int, typer.Option(
        "--parse-memory", min=0, envvar="CHUNKCTL_PARSE_MEMORY", metavar="MB",
        help="Most resident memory one file's parse may use (zip and flate bombs); 0: no limit.")] = 3072,
    parse_workers: Annotated[int, typer.Option(
        "--parse-workers", min=0, help="Parser processes working at once; 0 parses inside this process, "
                                       "without the time and memory limits.")] = 2,
    max_file_mb: Annotated[int, typer.Option(
        "--max-file-mb", min=0, help="Reject files larger than this that must be parsed whole (all but "
                                     "plain text, which is streamed); 0: no limit.")] = 512,
    strict: Annotated[bool, typer.Option(
        "--strict", envvar="CHUNKCTL_STRICT",
        help="Files of types no parser takes (images, .jsonl, ...) are rejects (exit 3) instead of being "
             "skipped and listed.")] = False,
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="Follow symlinks that lead outside the folders and files given (by default "
                                  "they are rejected).")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", envvar="CHUNKCTL_ENGINE",
        help="local (one process, into --db) or ray (Ray Data tasks and an embedding actor pool, into a "
             "Parquet dataset --out; needs chunkctl[ray]).")] = "local",
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", metavar="DIR", help="--engine ray: the Parquet dataset folder (created; re-runs add to it).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", envvar="RAY_ADDRESS",
        help="--engine ray: auto (the running cluster) or ray://host:port; default: start a local Ray.")] = None,
    embed_actors: Annotated[int, typer.Option("--embed-actors", min=1,
                                              help="--engine ray: embedding actors (one model load each).")] = 1,
    embed_batch: Annotated[int, typer.Option("--embed-batch", min=1,
                                             help="--engine ray: texts per embedding actor call.")] = 512,
    gpus_per_actor: Annotated[Optional[float], typer.Option(
        "--gpus-per-actor", min=0, help="--engine ray: GPUs per embedding actor; default 1 when the cluster "
                                        "has GPUs, else 0 (CPU actors).")] = None,
    files_per_task: Annotated[int, typer.Option("--files-per-task", min=1,
                                                help="--engine ray: files per parse/chunk task.")] = 8,
    cpu_tasks: Annotated[Optional[int], typer.Option(
        "--cpu-tasks", min=1, help="--engine ray: parse/chunk tasks at once (default: one per CPU); with "
                                   "--llm-concurrency it bounds the requests an LLM server gets.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="One line per file on stderr.")] = False,
    quiet: Quiet = False,
    json_out: Json = False,
    wait: Wait = 0.0,
) -> None:
    """Parse, chunk, enrich, store and embed documents; unchanged files are skipped (sha256 of their
    bytes), chunks already enriched the same way are not enriched again, and unchanged embedded texts
    are never embedded twice.

    Exit code 0 when every input was ingested, 3 when some were rejected or a chunk's enrichment
    failed (see the `rejects` table).
    """
    from chunkctl.parse import PDF_BACKENDS
    from chunkctl.pipeline import IngestOptions, Interrupted, ingest
    if pdf_backend not in PDF_BACKENDS:
        fail(f"--pdf-backend must be one of {', '.join(PDF_BACKENDS)}", USAGE)
    missing = [str(p) for p in paths if not os.path.lexists(p)]  # a typo, not a bad input
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}", USAGE)
    chunkers = chunkers_from(chunker)
    device = device_from(device)  # for embedding chunkers too: a missing GPU is a usage error
    limits = dict(document_timeout=document_timeout or None, parse_memory_mb=parse_memory or None,
                  parse_workers=parse_workers, max_file_mb=max_file_mb or None, follow_symlinks=follow_symlinks,
                  strict=strict)
    if engine not in ("local", "ray"):
        fail("--engine must be local or ray", USAGE)
    if (engine == "ray") != (out_dir is not None):
        fail("--engine ray writes a Parquet dataset: give it --out DIR (and --out only with --engine ray)", USAGE)
    if engine == "ray":
        from chunkctl.ray_engine import RayOptions

        ray_options = RayOptions(address=ray_address, model=None if no_embed else model, embed_actors=embed_actors,
                                 embed_batch=embed_batch, gpus_per_actor=gpus_per_actor, files_per_task=files_per_task,
                                 cpu_tasks=cpu_tasks)
        _ingest_ray(ctx, paths, out_dir, chunkers, ray_options, include, exclude, force, prune, pdf_backend,
                    stream_mb, device, enrich, embed_format, embed_fields, verbose, quiet, json_out, limits)
    embedder = None if no_embed else embedder_from(model, device)
    options = IngestOptions(chunkers, include=include or (), exclude=exclude or (), force=force, prune=prune,
                            pdf_backend=pdf_backend, stream_threshold=stream_mb << 20, embedder=embedder,
                            device=device, llm=llm_settings_from(ctx, db, device),
                            enrichment=enrichment_from(enrich, embed_format, embed_fields, embedder), **limits)
    store = open_store(db, create=True, wait=wait)
    command = command_line(sys.argv[1:])
    try:
        with store, progress_display(quiet or json_out or verbose):
            result = ingest(store, [str(p) for p in paths], options, command=command,
                            on_file=_per_file if verbose else None)
    except Interrupted as e:
        interrupted(e.result)
    if json_out:
        print_json(result.as_dict())
    elif not quiet:
        summary(result, db)
    raise typer.Exit(PARTIAL if result.rejects else OK)


def _ingest_ray(ctx, paths, out_dir, chunkers, ray_options, include, exclude, force, prune, pdf_backend, stream_mb,
                device, enrich, embed_format, embed_fields, verbose, quiet, json_out, limits) -> None:
    """--engine ray: the same options, run on Ray Data into the dataset ``out_dir``."""
    import importlib.util

    from chunkctl.pipeline import IngestOptions
    from chunkctl.store.dataset import is_dataset

    if importlib.util.find_spec("ray") is None:
        fail("--engine ray needs Ray: pip install 'chunkctl[ray]'", USAGE)
    if out_dir.exists() and not (is_dataset(out_dir) and (not any(out_dir.iterdir()) or (out_dir / "runs").is_dir())):
        fail(f"--out {out_dir}: not a chunkctl dataset folder (an empty or new folder starts one)", USAGE)
    from chunkctl.embed import embedder_identity
    from chunkctl.ray_engine import ingest_ray

    try:
        if ray_options.model:
            embedder_identity(ray_options.model, "cpu")  # a misspelt model fails here, not in every actor
    except ValueError as e:
        fail(str(e), USAGE)
    options = IngestOptions(chunkers, include=include or (), exclude=exclude or (), force=force, prune=prune,
                            pdf_backend=pdf_backend, stream_threshold=stream_mb << 20, device=device,
                            llm=llm_settings_from(ctx, str(out_dir), device),
                            enrichment=enrichment_from(enrich, embed_format, embed_fields, None),
                            **{**limits, "parse_workers": min(limits["parse_workers"], 1)})  # one per Ray task
    command = command_line(sys.argv[1:])
    result = ingest_ray([str(p) for p in paths], out_dir, options, ray_options, command=command,
                        on_file=_per_file if verbose else None, quiet=quiet or json_out or not verbose)
    if json_out:
        print_json(result.as_dict())
    elif not quiet:
        summary(result, str(out_dir))
    raise typer.Exit(PARTIAL if result.rejects else OK)


def _per_file(path: str, status: str, total: int) -> None:
    err.print(f"{status:>9}  {path}", highlight=False, markup=False)


def interrupted(result) -> None:
    """Ctrl-C: say what was kept, exit 130 at once (no waiting for helper threads)."""
    stored = result.new + result.updated
    err.print(f"Interrupted: {stored} document(s) committed ({sum(result.chunks.values())} chunks) in "
              f"{result.seconds:.1f} s; the document being written was rolled back; re-run to resume.",
              highlight=False)
    exit_now(130)


def summary(result, db: str, command: str = "ingest") -> None:
    from rich.table import Table

    if not result.wrote_anything:
        out.print(f"Nothing to do: {result.unchanged} document(s) unchanged in {db}.")
        _skipped(result)
        return
    t = Table(title=f"{command} → {db}  ({result.seconds:.1f} s)", title_justify="left")
    for col in ("seen", "new", "updated", "unchanged", "skipped", "rejected", "pruned"):
        t.add_column(col, justify="right")
    t.add_row(*(str(v) for v in (result.seen, result.new, result.updated, result.unchanged, len(result.skipped),
                                 len(result.rejects), result.pruned)))
    out.print(t)
    _skipped(result)
    if result.chunks:
        out.print("chunks written: " + ", ".join(f"{sid} {n}" for sid, n in result.chunks.items()), highlight=False)
    if result.enriched:
        out.print("stored chunks enriched again: " + ", ".join(f"{sid} {n}" for sid, n in result.enriched.items()),
                  highlight=False)
    if result.trimmed:
        out.print(f"[yellow]note:[/] {result.trimmed} chunk(s) had their metadata block shortened to fit the "
                  "embedder's window (their text is whole; metadata.embed says what was dropped)", highlight=False)
    if result.embedding is not None and result.embedding.chunks:
        e = result.embedding
        out.print(f"vectors: {e.chunks} chunk(s) given a {e.model_id} vector ({e.embedded} embedded, "
                  f"{e.cached} reused the vector of the same text) in {e.seconds:.1f} s", highlight=False)
        if e.truncated:
            out.print(f"[yellow]warning:[/] {e.truncated} chunk(s) are longer than the model's window; only their "
                      "first tokens are in their vectors (use smaller chunks)", highlight=False)
    if result.llm is not None:
        out.print(f"LLM: {result.llm.line()}", highlight=False)
    for path, warning in result.warnings:
        out.print(f"[yellow]warning:[/] {path}: {warning}", highlight=False)
    if result.rejects:
        rt = Table(title=f"{len(result.rejects)} rejected (stored in the rejects table)", title_justify="left")
        rt.add_column("path", overflow="fold")
        rt.add_column("stage")
        rt.add_column("reason", overflow="fold")
        for r in result.rejects:
            rt.add_row(r.path, r.stage, r.reason)
        out.print(rt)


def _skipped(result) -> None:
    if not result.skipped:
        return
    from collections import Counter

    kinds = Counter(Path(p).suffix.lower() or "(no extension)" for p in result.skipped)
    names = ", ".join(Path(p).name for p in result.skipped[:5]) + (", ..." if len(result.skipped) > 5 else "")
    out.print(f"skipped {len(result.skipped)} file(s) of types chunkctl does not read ("
              + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) + f"): {names}; --strict makes them rejects",
              highlight=False)


def chunk_cmd(
    ctx: typer.Context,
    files: Annotated[list[str], typer.Argument(help="Files, or - for standard input.")],
    chunker: Chunkers = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="Parser for the input: text, markdown, html, docx, pdf. Default: from each file's suffix; "
                         "for stdin, from its first bytes (%PDF, a DOCX zip, HTML tags, Markdown headings or "
                         "fences, else text).")] = None,
    enrich: Enrich = None,
    embed_format: EmbedFormat = None,
    embed_fields: EmbedFields = None,
    pdf_backend: PdfBackend = "pdfium",
    device: Device = "auto",
) -> None:
    """Chunk files (or stdin) and print JSONL, one object per chunk, with any --enrich metadata and
    the text that would be embedded; nothing is stored (LLM completions are cached only where
    --llm-cache names a file). Exit code 3 when a file could not be chunked (the others are)."""
    from chunkctl.chunkers import ChunkContext, chunk_all
    from chunkctl.parse import KINDS, load_document, sniff_kind
    from chunkctl.types import RejectError

    chunkers = chunkers_from(chunker)
    device = device_from(device)  # where embedding chunkers (semantic, cluster, late) run
    if fmt is not None and fmt not in set(KINDS.values()):
        fail(f"--format must be one of {', '.join(sorted(set(KINDS.values())))}", USAGE)
    missing = [f for f in files if f != "-" and not Path(f).is_file()]
    if missing:
        fail(f"no such file: {', '.join(missing)}", USAGE)
    if files.count("-") > 1:
        fail("standard input (-) can be read once", USAGE)
    enrichment = enrichment_from(enrich, embed_format, embed_fields, None)
    context = ChunkContext(device=device, llm_settings=llm_settings_from(ctx, None, device))
    write, failed = sys.stdout.write, 0
    for file in files:
        try:
            data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
            doc = load_document(file, data, kind=fmt or (sniff_kind(data) if file == "-" else None),
                                pdf_backend=pdf_backend)
            results = chunk_all(doc, chunkers, context)
            if enrichment is not None:
                from chunkctl.enrich import enrich_chunks

                for sid in results:
                    res = enrich_chunks(doc, results[sid], enrichment, context)
                    results[sid] = res.chunks
                    for problem in res.problems:
                        err.print(f"{file}: enrichment: {problem}", highlight=False, markup=False)
                        failed += 1
        except RejectError as e:
            err.print(f"{file}: rejected ({e.stage}): {e.reason}", highlight=False, markup=False)
            failed += 1
            continue
        finally:
            context.forget()
        for ch in chunkers:
            for c in results[ch.strategy_id]:
                write(json.dumps({
                    "doc": file, "strategy": ch.spec, "seq": c.seq, "char_start": c.char_start,
                    "char_end": c.char_end, "page_start": c.page_start, "page_end": c.page_end,
                    "heading_path": list(c.heading_path), "n_tokens": c.n_tokens, "text": c.text,
                    **({"metadata": c.metadata} if c.metadata else {}),
                    **({"embed_text": c.embed_text} if c.embed_text is not None and c.embed_text != c.text else {}),
                }, ensure_ascii=False) + "\n")
    if context.llm_stats is not None:
        err.print(f"LLM: {context.llm_stats.line()}", highlight=False)
    raise typer.Exit(PARTIAL if failed else OK)
