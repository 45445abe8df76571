"""`chunkctl eval`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from chunkctl.cli.options import (Chunkers, Device, EmbedFields, EmbedFormat, Enrich, Model, Quiet,
                                  Wait, retrieval_options)
from chunkctl.cli.render import (OK, QUALITY_GATE, USAGE, chunkers_from, device_from, embedder_from, enrichment_from,
                                 err, fail, llm_settings_from, open_store, out, progress_display, reranker_from)


EVAL_DB = "chunkctl.eval.duckdb"


@retrieval_options
def eval_cmd(
    ctx: typer.Context,
    qa: Annotated[Path, typer.Option("--qa", help="QA set: native JSONL, Chroma's questions_df.csv, or "
                                                  "SQuAD-style JSON (detected from the suffix).")],
    corpus: Annotated[Optional[Path], typer.Option(
        "--corpus", help="Folder of the documents the QA set refers to: ingested (and embedded) into --db "
                         "first, unchanged files skipped. Without it, the documents already in --db.")] = None,
    db: Annotated[Optional[str], typer.Option(
        "--db", envvar="CHUNKCTL_EVAL_DB",
        help="Store to evaluate in. Default with --corpus: chunkctl.eval.duckdb, apart from your main store, so "
             "the strategies tried do not land there (a re-run reuses their chunks); without --corpus: the main "
             "store ($CHUNKCTL_DB or chunkctl.duckdb).")] = None,
    chunker: Chunkers = None,
    qa_format: Annotated[Optional[str], typer.Option("--qa-format", help="jsonl, chroma or squad.")] = None,
    model: Model = "minilm",
    device: Device = "auto",
    k: Annotated[Optional[list[str]], typer.Option(
        "-k", help="Chunks retrieved per question (repeatable); 'min': as many as touch the question's "
                   "references (Chroma's retrieve=-1). Default 5.")] = None,
    locate: Annotated[str, typer.Option(
        "--locate", help="offsets: score the chunks' true offsets; find: place each chunk at the first "
                         "occurrence of its text, as Chroma's code does (to compare with its tables).")] = "offsets",
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", metavar="SPEC", help="A strategy to compare every other against, question by question "
                                           "(bootstrap 95% interval, wins/ties/losses).")] = None,
    json_file: Annotated[Optional[str], typer.Option("--json", metavar="FILE",
                                                     help="Write the results as JSON (- for stdout).")] = None,
    markdown_file: Annotated[Optional[str], typer.Option("--markdown", metavar="FILE",
                                                         help="Write the results as a Markdown table.")] = None,
    html_file: Annotated[Optional[str], typer.Option(
        "--html", metavar="FILE", help="Write a self-contained HTML report with plots (recall and IoU "
                                       "against k, chunk sizes, recall per document).")] = None,
    save: Annotated[Optional[str], typer.Option("--save", metavar="FILE.parquet",
                                                help="Append the results to a Parquet file (a history for CI).")] = None,
    fail_under: Annotated[Optional[list[str]], typer.Option(
        "--fail-under", metavar="METRIC[@K]=VALUE",
        help="Quality gate, e.g. recall@5=0.80 (fractions): exit 4 when any strategy is below.")] = None,
    intrinsic: Annotated[bool, typer.Option(
        "--intrinsic", help="Also Adaptive Chunking's intrinsic metrics: size compliance, intrachunk "
                            "cohesion, document contextual coherence, block integrity.")] = False,
    chunkscore: Annotated[bool, typer.Option(
        "--chunkscore", help="Also QChunker's ChunkScore per document: 0.3 x logical independence (MoC's "
                             "boundary clarity, scored by the LLM: the global --llm options) + 0.7 x "
                             "semantic dispersion.")] = False,
    enrich: Enrich = None,
    embed_format: EmbedFormat = None,
    embed_fields: EmbedFields = None,
    quiet: Quiet = False,
    wait: Wait = 0.0,
    retrieval=None,  # the retrieval options, validated (cli.options.retrieval_options)
) -> None:
    """Measure chunking strategies against a QA set: every question retrieves its top-k chunks from
    one index over the whole corpus; recall, precision, IoU and precision-Ω are character-level, as
    Chroma's benchmark computes them, plus hit@k, MRR, nDCG and answer coverage.

    With --corpus, every strategy's chunks are enriched as --enrich and --embed-format say (none
    given: plain text, so earlier enrichment does not leak into the comparison); without it, the
    stored chunks are evaluated as they are unless those options are given.

    Exit code 0, 2 on a usage error, 4 when a --fail-under gate fails.
    """
    from chunkctl.evaluation.qa import FORMATS, load_qa
    from chunkctl.evaluation.report import failed_gates, markdown, parse_gate, save_parquet, write_json
    from chunkctl.evaluation.run import K_MIN, LOCATES, EvalOptions, evaluate

    if db is None:
        main = os.environ.get("CHUNKCTL_DB") or (ctx.find_root().obj or {}).get("db") or "chunkctl.duckdb"
        db = EVAL_DB if corpus is not None else main

    if locate not in LOCATES:
        fail(f"--locate must be one of {', '.join(LOCATES)}", USAGE)
    if qa_format is not None and qa_format not in FORMATS:
        fail(f"--qa-format must be one of {', '.join(FORMATS)}", USAGE)
    if not qa.is_file():
        fail(f"--qa {qa}: no such file", USAGE)
    if corpus is not None and not corpus.is_dir():
        fail(f"--corpus {corpus}: no such folder", USAGE)
    ks = k or ["5"]
    bad = [x for x in ks if x != K_MIN and not (x.isdigit() and int(x) > 0)]
    if bad:
        fail(f"-k takes a positive number or 'min', not {bad[0]!r}", USAGE)
    try:
        gates = [parse_gate(g) for g in fail_under or []]
        qaset = load_qa(qa, qa_format)
    except (ValueError, OSError) as e:
        fail(str(e), USAGE)
    chunkers = chunkers_from(chunker)
    base = None
    if baseline:
        base = chunkers_from([baseline])[0]
        if base.strategy_id not in {c.strategy_id for c in chunkers}:
            chunkers = [base, *chunkers]
    device = device_from(device)
    embedder = embedder_from(model, device) if retrieval.dense or intrinsic or chunkscore else None
    llm, llm_settings = None, llm_settings_from(ctx, db, device)  # for LLM chunkers and ChunkScore
    if chunkscore:
        from chunkctl.llm import LLMError, open_llm

        try:
            llm = open_llm(llm_settings)
        except LLMError as e:
            fail(str(e), USAGE)
    roots = [str(corpus)] if corpus else None
    if qaset.documents:  # a SQuAD file carries its documents: they become a corpus beside the store
        folder = Path(db).with_suffix(".qa-docs")
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in qaset.documents.items():
            f = folder / name
            if not f.exists() or f.read_text(encoding="utf-8") != text:
                f.write_text(text, encoding="utf-8")
        roots = [str(folder)]
    exclude = [qa.name] if corpus and qa.resolve().parent == corpus.resolve() else []
    enrichment = enrichment_from(enrich, embed_format, embed_fields, embedder, default_plain=roots is not None)
    opts = EvalOptions(chunkers, ks=[x if x == K_MIN else int(x) for x in ks], retrieval=retrieval, locate=locate,
                       embedder=embedder, baseline=base, device=device, intrinsic=intrinsic, llm=llm,
                       llm_settings=llm_settings, enrichment=enrichment,
                       reranker=reranker_from(ctx, retrieval, db, device))
    with open_store(db, create=roots is not None, wait=wait) as store, progress_display(quiet or json_file == "-"):
        try:
            report = evaluate(store, qaset, opts, corpus=roots, exclude=exclude)
        except ValueError as e:
            fail(str(e), USAGE)
    for p in report.problems:
        err.print(f"[yellow]warning:[/] {p}", highlight=False)
    if json_file:
        write_json(report, json_file)
    if markdown_file:
        Path(markdown_file).write_text(markdown(report), encoding="utf-8")
    if html_file:
        from chunkctl.evaluation.html import render

        Path(html_file).write_text(render(report, f"chunkctl eval · {qa.name}"), encoding="utf-8")
    if save:
        n = save_parquet(report, save, str(qa))
        err.print(f"results appended to {save} ({n} rows)", highlight=False)
    if not quiet and json_file != "-":
        _table(report)
    if not quiet:
        for r in report.strategies:
            if r.llm is not None:
                err.print(f"LLM, chunking {r.spec}: {r.llm.line()}", highlight=False)
        if llm is not None and llm.stats.used:
            err.print(f"LLM, ChunkScore: {llm.stats.line()}", highlight=False)
    failures = failed_gates(report, gates)
    for f in failures:
        err.print(f"[bold red]gate failed:[/] {f}", highlight=False)
    raise typer.Exit(QUALITY_GATE if failures else OK)


def _table(report) -> None:
    from rich.table import Table

    from chunkctl.evaluation.report import SHOWN

    model = f", {report.model_id}" if report.model_id and report.retrieval.dense else ""
    first = report.rows()[0] if report.rows() else {}
    how = f" · embedded: {first.get('enrich', 'as stored')}"
    t = Table(title=f"{report.n_questions} questions · {report.retrieval.label()}{model}{how} · "
                    f"located by {report.locate} · "
                    "mean ± std ×100", title_justify="left")
    t.add_column("strategy")
    t.add_column("k", justify="right")
    for _, head in SHOWN:
        t.add_column(head, justify="right")
    for col in ("chunks", "tok", "s"):
        t.add_column(col, justify="right")
    for r in report.rows():
        secs = r.get("ingest_s", 0.0) + r["retrieve_s"]
        t.add_row(r["strategy"], str(r["k"]), *(f"{100 * r[m]:.1f}±{100 * r[m + '_std']:.0f}" for m, _ in SHOWN),
                  str(r["chunks"]), f"{r['tokens_mean']:.0f}", f"{secs:.1f}")
    out.print(t)
    if report.paired:
        p = Table(title=f"against {report.baseline}: mean per-question difference ×100 \\[bootstrap 95% CI]",
                  title_justify="left")
        for col in ("strategy", "k", "metric", "diff", "95% CI", "W/T/L"):
            p.add_column(col)
        for d in report.paired:
            p.add_row(d["strategy"], str(d["k"]), d["metric"], f"{100 * d['mean_diff']:+.2f}",
                      f"[{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}]",
                      f"{d['wins']}/{d['ties']}/{d['losses']}")
        out.print(p)
    if any("chunkscore" in r for r in report.rows()):
        _per_strategy(report, "ChunkScore (QChunker), mean over documents: 0.3·LI + 0.7·SD; LI = MoC's boundary "
                              "clarity", [("ChunkScore", "chunkscore", ".3f"), ("LI", "chunkscore_li", ".3f"),
                                          ("SD", "chunkscore_sd", ".3f"), ("one-chunk docs", "chunkscore_single", "d")])
    if any("intrinsic_sc" in r for r in report.rows()):
        _per_strategy(report, "intrinsic (Adaptive Chunking), ×100; RC needs a coreference model: not available "
                              "offline", [(m.upper(), f"intrinsic_{m}", "%") for m in ("sc", "icc", "dcc", "bi")])


def _per_strategy(report, title: str, cols: list[tuple[str, str, str]]) -> None:
    """A table of values that belong to a strategy, not to a k (read from its first row); a format
    of "%" shows a fraction ×100, None shows as a dash."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in ("strategy", *(head for head, _, _ in cols)):
        t.add_column(col, justify="right")
    for s in report.strategies:
        r = s.rows[0]
        t.add_row(s.spec, *("—" if r[key] is None else f"{100 * r[key]:.1f}" if fmt == "%" else format(r[key], fmt)
                            for _, key, fmt in cols))
    out.print(t)
