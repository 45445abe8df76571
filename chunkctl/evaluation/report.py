"""What an evaluation produces besides the terminal table: JSON, Markdown, Parquet history, and the
quality gates CI pipelines use (``--fail-under recall@5=0.80``)."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from chunkctl.evaluation.run import EvalReport

METRICS = ("recall", "precision", "iou", "precision_omega", "hit", "mrr", "ndcg", "coverage")
SHOWN = (("recall", "recall"), ("precision", "prec"), ("iou", "IoU"), ("precision_omega", "PΩ"),
         ("hit", "hit"), ("mrr", "MRR"), ("ndcg", "nDCG"), ("coverage", "cover"))


@dataclass(frozen=True)
class Gate:
    metric: str
    k: str | None  # None: every k evaluated
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{'@' + self.k if self.k else ''}>={self.value:g}"


def parse_gate(text: str) -> Gate:
    m = re.fullmatch(r"\s*([a-z_]+)(?:@(\w+))?\s*=\s*([0-9.]+)\s*", text)
    if not m or m.group(1) not in METRICS:
        raise ValueError(f"--fail-under takes METRIC[@K]=VALUE with METRIC one of {', '.join(METRICS)}, "
                         f"e.g. recall@5=0.80; got {text!r}")
    return Gate(m.group(1), m.group(2), float(m.group(3)))


def failed_gates(report: EvalReport, gates: list[Gate]) -> list[str]:
    """One line per (strategy, k) below a gate; an unevaluated k is itself a failure."""
    out = []
    for g in gates:
        rows = [r for r in report.rows() if g.k is None or str(r["k"]) == g.k]
        if not rows:
            out.append(f"{g}: k={g.k} was not evaluated")
        out += [f"{r['strategy']} {g.metric}@{r['k']} = {r[g.metric]:.4f} < {g.value:g}" for r in rows
                if not r[g.metric] >= g.value]
    return out


def as_dict(report: EvalReport) -> dict:
    return {"questions": report.n_questions, "mode": report.mode, "retrieval": report.retrieval.as_dict(),
            "locate": report.locate, "model": report.model_id,
            "baseline": report.baseline, "results": report.rows(), "paired": report.paired,
            "problems": report.problems, "per_question": per_question(report)}


def per_question(report: EvalReport) -> list[dict]:
    """One row per (strategy, question): what retrieval returned and the question's metrics at each k."""
    return [{"strategy": s.spec, "question": q, "document": doc, "returned": s.returned[i],
             "metrics": {k: {m: vals[i] for m, vals in by_metric.items()} for k, by_metric in s.per_question.items()}}
            for s in report.strategies for i, (q, doc) in enumerate(zip(report.questions, report.question_docs))]


def write_json(report: EvalReport, path: str) -> None:
    text = json.dumps(as_dict(report), indent=2, default=float)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n", encoding="utf-8")


def markdown(report: EvalReport) -> str:
    head = "| strategy | k | " + " | ".join(h for _, h in SHOWN) + " | chunks | mean tokens |"
    lines = [f"{report.n_questions} questions; retrieval {report.retrieval.label()}"
             + (f" ({report.model_id})" if report.model_id and report.retrieval.dense else "")
             + f"; chunks located by {report.locate}; mean ± population std, ×100", "",
             head, "|" + "---|" * (len(SHOWN) + 4)]
    for r in report.rows():
        cells = [f"{100 * r[m]:.1f} ± {100 * r[m + '_std']:.1f}" for m, _ in SHOWN]
        lines.append(f"| {r['strategy']} | {r['k']} | " + " | ".join(cells)
                     + f" | {r['chunks']} | {r['tokens_mean']:.0f} |")
    if any("intrinsic_sc" in r for r in report.rows()):
        lines += ["", "Intrinsic (Adaptive Chunking), ×100 (RC needs a coreference model: not available offline):", "",
                  "| strategy | SC | ICC | DCC | BI |", "|---|---|---|---|---|"]
        for st in report.strategies:
            r = st.rows[0]
            lines.append(f"| {st.spec} | " + " | ".join("—" if r[f"intrinsic_{m}"] is None else
                                                        f"{100 * r[f'intrinsic_{m}']:.1f}"
                                                        for m in ("sc", "icc", "dcc", "bi")) + " |")
    if report.paired:
        lines += ["", f"Against the baseline {report.baseline} (per-question differences, bootstrap 95% CI, ×100):", "",
                  "| strategy | k | metric | mean diff | 95% CI | wins / ties / losses |", "|---|---|---|---|---|---|"]
        for p in report.paired:
            lines.append(f"| {p['strategy']} | {p['k']} | {p['metric']} | {100 * p['mean_diff']:+.2f} | "
                         f"[{100 * p['ci95'][0]:+.2f}, {100 * p['ci95'][1]:+.2f}] | "
                         f"{p['wins']} / {p['ties']} / {p['losses']} |")
    return "\n".join(lines) + "\n"


def save_parquet(report: EvalReport, path: str, qa: str) -> int:
    """Append this run's rows to a Parquet file (created if missing), so CI keeps a history."""
    import polars as pl

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    frame = pl.DataFrame([{**r, "k": str(r["k"]), "qa": qa, "run_at": stamp} for r in report.rows()],
                         infer_schema_length=None)  # k stays text in the history: "min" is a k too
    p = Path(path)
    if p.exists():
        frame = pl.concat([pl.read_parquet(p), frame], how="diagonal_relaxed")
    frame.write_parquet(p)
    return frame.height
