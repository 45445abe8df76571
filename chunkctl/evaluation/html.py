"""``--html``: one self-contained report (no script, no network): the results table, plots drawn as
inline SVG with labelled axes — recall and IoU against k per strategy, chunk-size histograms, recall
per document — and the questions some strategy missed."""
from __future__ import annotations

import html
from collections import defaultdict

import numpy as np

from chunkctl.evaluation.report import SHOWN
from chunkctl.evaluation.run import EvalReport

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
W, H, PAD = 440, 260, 50
MISSES_SHOWN = 200  # rows of the misses table


def _frame(title: str, body: list[str], legend: list[str], x_title: str, y_title: str, y_top: float,
           y_unit: str = "") -> str:
    """A plot: axes, five labelled ticks on the y axis (0 to ``y_top``), both axis titles."""
    ticks = []
    for i in range(5):
        v = y_top * i / 4
        y = H - PAD - (H - PAD - 20) * i / 4
        ticks.append(f'<line x1="{PAD - 4}" y1="{y:.1f}" x2="{PAD}" y2="{y:.1f}" stroke="#444"/>'
                     f'<text class="tick" x="{PAD - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
                     f'{v:.3g}{y_unit}</text>')
    titles = (f'<text class="axis-title" x="{(PAD + W) / 2:.0f}" y="{H - 6}" font-size="11" '
              f'text-anchor="middle">{html.escape(x_title)}</text>'
              f'<text class="axis-title" x="12" y="{(H - PAD) / 2:.0f}" font-size="11" text-anchor="middle" '
              f'transform="rotate(-90 12 {(H - PAD) / 2:.0f})">{html.escape(y_title)}</text>')
    return (f'<figure><svg class="plot" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
            f'xmlns="http://www.w3.org/2000/svg"><rect width="{W}" height="{H}" fill="white"/>'
            f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#444"/>'
            f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>{"".join(ticks)}{titles}'
            f'{"".join(body)}</svg><figcaption>{html.escape(title)}<br>{" ".join(legend)}</figcaption></figure>')


def _legend(names: list[str]) -> list[str]:
    return [f'<span style="color:{COLOURS[i % len(COLOURS)]}">■ {html.escape(n)}</span>' for i, n in enumerate(names)]


def _xy(i: int, n: int, y: float, top: float) -> tuple[float, float]:
    x = PAD + 20 + (W - PAD - 50) * (i / max(n - 1, 1))
    return x, H - PAD - (H - PAD - 20) * (y / top if top else 0)


def metric_vs_k(report: EvalReport, metric: str) -> str:
    ks = list(dict.fromkeys(r["k"] for r in report.rows()))
    top = max([r[metric] for r in report.rows()] + [1e-9])
    body = [f'<text class="tick" x="{_xy(i, len(ks), 0, top)[0]:.0f}" y="{H - PAD + 16}" font-size="11" '
            f'text-anchor="middle">{html.escape(str(k))}</text>' for i, k in enumerate(ks)]
    for si, s in enumerate(report.strategies):
        pts = [_xy(ks.index(r["k"]), len(ks), r[metric], top) for r in s.rows]
        colour = COLOURS[si % len(COLOURS)]
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="3" points="'
                    + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>' for x, y in pts]
    name = dict(SHOWN).get(metric, metric)
    return _frame(f"{name} against k (×100)", body, _legend([s.spec for s in report.strategies]),
                  "k (results per question)", f"{name} ×100", 100 * top)


def size_histograms(report: EvalReport, bins: int = 20) -> str:
    sizes = [np.asarray(s.sizes or [0]) for s in report.strategies]
    edges = np.linspace(0, max(int(a.max()) for a in sizes) + 1, bins + 1)
    counts = [np.histogram(a, edges)[0] / max(len(a), 1) for a in sizes]
    top = max(float(c.max()) for c in counts) or 1.0
    bw = (W - PAD - 20) / bins / max(len(sizes), 1)
    body = []
    for si, c in enumerate(counts):
        for b, v in enumerate(c):
            h = (H - PAD - 20) * v / top
            x = PAD + 5 + (W - PAD - 20) * b / bins + si * bw
            body.append(f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}" '
                        f'fill="{COLOURS[si % len(COLOURS)]}"/>')
    for b in range(0, bins + 1, 4):  # every fourth bin edge
        body.append(f'<text class="tick" x="{PAD + 5 + (W - PAD - 20) * b / bins:.1f}" y="{H - PAD + 16}" '
                    f'font-size="10" text-anchor="middle">{edges[b]:.0f}</text>')
    return _frame("chunk sizes in tokens (share of each strategy's chunks)", body,
                  _legend([s.spec for s in report.strategies]), "tokens per chunk (bin edges)", "share of chunks",
                  100 * top, "%")


def per_document(report: EvalReport, metric: str = "recall") -> str:
    k = report.strategies[0].rows[0]["k"] if report.strategies else "5"
    docs = sorted(set(report.question_docs))
    means = []
    for s in report.strategies:
        by: dict[str, list[float]] = defaultdict(list)
        for d, v in zip(report.question_docs, s.per_question[str(k)][metric]):
            by[d].append(v)
        means.append([float(np.mean(by[d])) if by[d] else 0.0 for d in docs])
    group = (W - PAD - 20) / max(len(docs), 1)
    bw = group / (len(report.strategies) + 1)
    body = []
    for di, d in enumerate(docs):
        for si, row in enumerate(means):
            h = (H - PAD - 20) * row[di]
            x = PAD + 5 + di * group + si * bw
            body.append(f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}" '
                        f'fill="{COLOURS[si % len(COLOURS)]}"/>')
        body.append(f'<text x="{PAD + 5 + di * group + group / 2:.1f}" y="{H - PAD + 16}" font-size="10" '
                    f'text-anchor="middle">{html.escape(d[:14])}</text>')
    return _frame(f"{metric}@{k} per document (0–100)", body, _legend([s.spec for s in report.strategies]),
                  "document", f"{metric}@{k} ×100", 100.0)


def misses(report: EvalReport, metric: str = "recall") -> str:
    """The questions some strategy answered with none of the reference text at the first k: each
    strategy's recall for it, so what one strategy finds and another misses is visible."""
    if not report.strategies:
        return ""
    k = report.strategies[0].rows[0]["k"]
    key = str(k)
    rows = []
    for i, (q, d) in enumerate(zip(report.questions, report.question_docs)):
        vals = [s.per_question[key][metric][i] for s in report.strategies]
        if min(vals) == 0:
            rows.append((sum(vals), q, d, vals))
    rows.sort(key=lambda r: r[0])
    head = "".join(f"<th>{html.escape(s.spec)}</th>" for s in report.strategies)
    body = "".join(f"<tr><td>{html.escape(q)}</td><td>{html.escape(d)}</td>"
                   + "".join(f'<td class="{"miss" if v == 0 else "hit"}">{100 * v:.0f}</td>' for v in vals) + "</tr>"
                   for _, q, d, vals in rows[:MISSES_SHOWN])
    more = f"<p>… and {len(rows) - MISSES_SHOWN} more (all in --json per_question).</p>" if len(rows) > MISSES_SHOWN else ""
    return (f'<h2 id="misses">Misses: {len(rows)} of {report.n_questions} questions with {metric}@{k} = 0 for some '
            f'strategy</h2><table class="misses"><tr><th>question</th><th>document</th>{head}</tr>{body}</table>{more}')


def render(report: EvalReport, title: str = "chunkctl eval") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["strategy", "k", *(h for _, h in SHOWN), "chunks", "tokens"])
    rows = "".join(
        "<tr>" + f"<td>{html.escape(r['strategy'])}</td><td>{html.escape(str(r['k']))}</td>"
        + "".join(f"<td>{100 * r[m]:.1f} ± {100 * r[m + '_std']:.1f}</td>" for m, _ in SHOWN)
        + f"<td>{r['chunks']}</td><td>{r['tokens_mean']:.0f}</td></tr>" for r in report.rows())
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in report.problems)
    plots = [metric_vs_k(report, "recall"), metric_vs_k(report, "iou"), size_histograms(report),
             per_document(report)]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 6px;text-align:right}}td:first-child{{text-align:left}}td.miss{{background:#fdd}}
td.hit{{background:#dfd}}table.misses td:nth-child(2){{text-align:left}}figure{{display:inline-block;margin:1em}}
figcaption{{font-size:12px;max-width:{W}px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{report.n_questions} questions · retrieval {html.escape(report.retrieval.label())} {html.escape(report.model_id or '')} ·
chunks located by {html.escape(report.locate)} · mean ± population std, ×100</p>
<table><tr>{head}</tr>{rows}</table>
<div id="plots">{"".join(plots)}</div>
{misses(report)}
{f"<h2>Problems</h2><ul>{problems}</ul>" if problems else ""}
</body></html>
"""
