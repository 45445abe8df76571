"""`chunkctl tune`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from chunkctl.cli.options import Chunkers, Device, Json, Model, Quiet
from chunkctl.cli.render import (USAGE, chunkers_from, device_from, embedder_from, err, fail, llm_settings_from,
                                 open_store, out, print_json, progress_display)


def tune_cmd(
    ctx: typer.Context,
    qa: Annotated[Path, typer.Option("--qa", help="QA set (native JSONL, Chroma's questions_df.csv or SQuAD-style "
                                                  "JSON).")],
    corpus: Annotated[Path, typer.Option("--corpus", help="Folder of the documents the QA set refers to.")],
    tune_db: Annotated[str, typer.Option("--db", envvar="CHUNKCTL_TUNE_DB",
                                         help="Store for the candidates' chunks and vectors (kept, so a re-run "
                                              "resumes); apart from the main store, so tuning leaves it "
                                              "as it was.")] = "chunkctl.tune.duckdb",
    chunker: Chunkers = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Results per question.")] = 5,
    metric: Annotated[str, typer.Option("--metric", help="What to maximise on the tuning questions: recall, iou, "
                                                         "precision, ndcg, mrr or hit.")] = "recall",
    then: Annotated[str, typer.Option("--then", help="Among configurations whose --metric is not significantly below "
                                                     "the best's (paired 95% interval), the best by this one; none: "
                                                     "the best --metric alone.")] = "iou",
    context: Annotated[int, typer.Option("--context", min=1, metavar="TOKENS",
                                         help="Most tokens the k results of a question may hold on average.")] = 1000,
    test_share: Annotated[float, typer.Option("--test-share", min=0.05, max=0.95,
                                              help="Share of the questions held out to report on.")] = 0.3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the tuning/held-out split.")] = 0,
    budget: Annotated[Optional[float], typer.Option(
        "--budget", metavar="MINUTES", min=0.0,
        help="Stop chunking new strategies after this many minutes (those done are still compared).")] = None,
    write: Annotated[Optional[Path], typer.Option(
        "--write", metavar="FILE", help="Where the winner is written as defaults (its other keys are kept).")
                     ] = Path("chunkctl.toml"),
    no_write: Annotated[bool, typer.Option("--no-write", help="Report only; write no config file.")] = False,
    model: Model = "minilm",
    device: Device = "auto",
    json_out: Json = False,
    quiet: Quiet = False,
) -> None:
    """Find the chunker and retrieval settings that answer your QA set best, and make them the
    defaults: every candidate is chunked and embedded once (a re-run reuses them), the questions
    are split (seeded) into a tuning part and a held-out part, the winner is chosen on the first
    within the --context budget (the best --metric, or the best --then among those not significantly
    below it) and reported on the second against the built-in default and BM25 (paired bootstrap
    95% intervals). Without -c: recursive at 64, 96, 128, 192 and 256 tokens,
    sentence and structure at 96; each with the default retrieval, one setting at a time changed
    (mode, fusion, weights, expansion, cut-off), and plain dense and BM25 top-k.

    Exit code 0, 1 when no configuration fits the budget, 2 on a usage error."""
    from chunkctl.evaluation.qa import load_qa
    from chunkctl.tune import CHUNKERS, METRICS, TuneOptions, config_values, tune, write_config

    if metric not in METRICS or then not in (*METRICS, "none"):
        fail(f"--metric and --then take one of {', '.join(METRICS)} (--then also none)", USAGE)
    if not qa.is_file():
        fail(f"--qa {qa}: no such file", USAGE)
    if not corpus.is_dir():
        fail(f"--corpus {corpus}: no such folder", USAGE)
    try:
        qaset = load_qa(qa)
    except (ValueError, OSError) as e:
        fail(str(e), USAGE)
    chunkers = chunkers_from(list(chunker or CHUNKERS))
    device = device_from(device)
    opts = TuneOptions(chunkers, k=k, metric=metric, then=None if then == "none" else then, context=context,
                       test_share=test_share, seed=seed,
                       budget_s=None if budget is None else 60 * budget, embedder=embedder_from(model, device),
                       device=device, llm_settings=llm_settings_from(ctx, tune_db, device))
    exclude = [qa.name] if qa.resolve().parent == corpus.resolve() else []
    with open_store(tune_db, create=True) as store, progress_display(quiet or json_out):
        try:
            report = tune(store, qaset, [str(corpus)], opts, exclude=exclude)
        except ValueError as e:
            fail(str(e), USAGE)
    if report.winner is not None and not no_write:
        w = report.winner
        note = (f"written by chunkctl tune on {qa.name}: {w.spec} with {w.retrieval.label()}, {metric}@{k} "
                f"{100 * w.mean(metric, report.test):.1f} on {len(report.test)} held-out questions")
        write_config(write, config_values(w), note)
    if json_out:
        print_json(_as_dict(report, None if no_write or report.winner is None else str(write)))
    elif not quiet:
        _render(report, None if no_write or report.winner is None else write)
    if report.winner is None:
        err.print(f"no configuration returns at most {context} tokens per question: raise --context", highlight=False)
        raise typer.Exit(1)


def _as_dict(report, written: str | None) -> dict:
    o = report.options

    def row(c):
        return {"chunker": c.spec, "retrieval": c.retrieval.as_dict(), "label": c.retrieval.label(),
                "tune": {m: c.mean(m, report.train) for m in ("recall", "iou", "precision")},
                "held_out": {m: c.mean(m, report.test) for m in ("recall", "iou", "precision")},
                "tokens": c.mean_tokens(report.train)}

    return {"metric": o.metric, "k": o.k, "context": o.context, "questions": {"tune": len(report.train),
                                                                            "held_out": len(report.test)},
            "winner": row(report.winner) if report.winner else None, "default": row(report.default)
            if report.default else None, "paired": report.paired, "configs": [row(c) for c in report.ranked()],
            "skipped": report.skipped, "written": written, "problems": report.problems}


def _render(report, written: Path | None) -> None:
    from rich.table import Table

    o = report.options
    for p in report.problems:
        err.print(f"[yellow]warning:[/] {p}", highlight=False)
    t = Table(title=f"{len(report.train)} tuning questions · {o.metric}@{o.k}, at most {o.context} tokens returned "
                    f"· ×100 (held out: {len(report.test)})", title_justify="left")
    for col in ("chunker", "retrieval", "recall", "IoU", "tokens", "held-out recall", "held-out IoU"):
        t.add_column(col, justify="left" if col in ("chunker", "retrieval") else "right")
    for c in report.ranked()[:12]:
        over = c.mean_tokens(report.train) > o.context
        mark = " (over budget)" if over else " ◀ winner" if c is report.winner else ""
        t.add_row(c.spec, c.retrieval.label() + mark, f"{100 * c.mean('recall', report.train):.1f}",
                  f"{100 * c.mean('iou', report.train):.2f}", f"{c.mean_tokens(report.train):.0f}",
                  f"{100 * c.mean('recall', report.test):.1f}", f"{100 * c.mean('iou', report.test):.2f}")
    out.print(t)
    if report.paired:
        p = Table(title="held out: the winner against … (mean per-question difference ×100 \\[bootstrap 95% CI])",
                  title_justify="left")
        for col in ("against", "metric", "diff", "95% CI", "W/T/L"):
            p.add_column(col)
        for d in report.paired:
            p.add_row(f"{d['against']}: {d['config']}", d["metric"], f"{100 * d['mean_diff']:+.2f}",
                      f"\\[{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}]", f"{d['wins']}/{d['ties']}/{d['losses']}")
        out.print(p)
    if report.skipped:
        err.print(f"the --budget left out: {', '.join(report.skipped)} (re-run to add them; done work is reused)",
                  highlight=False)
    if written is not None:
        err.print(f"written to {written}: ingest, search and eval now use it by default", highlight=False)
