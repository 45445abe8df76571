"""The fault catalogue as a table: kind -> expected -> observed -> verdict, with each case's peak
RSS (the chunkctl process and its parser workers, the largest of them) and seconds.

The cases are tests/faults/cases.py, the same ones `make test` runs; this prints them all in one
run. Usage: python bench/fault_suite.py [substring of a kind ...]
"""
from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from faults.cases import CASES, Skip  # noqa: E402


def main(filters: list[str]) -> int:
    rows, held = [], 0
    cases = [c for c in CASES if not filters or any(f.lower() in c.kind.lower() for f in filters)]
    for c in cases:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="fault-") as tmp:
            try:
                ok, observed = c.fn(Path(tmp))
                verdict = "held" if ok else "BROKEN"
            except Skip as why:
                ok, observed, verdict = True, str(why), "skipped"
            except Exception as e:  # a case that cannot run is a finding too
                ok, observed, verdict = False, f"{type(e).__name__}: {e}", "BROKEN"
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rss = f"{peak / 1024:.0f}" if peak > before else f"<={peak / 1024:.0f}"  # ru_maxrss only grows
        held += verdict == "held"
        rows.append((c.group, c.kind, c.expected, observed, verdict, rss, seconds))
        print(f"{verdict:>7}  {c.group:<8} {c.kind[:48]:<48} {seconds:6.1f} s", file=sys.stderr, flush=True)
    widths = (8, 46, 44, 100, 7, 9, 7)
    head = ("group", "kind", "expected", "observed", "verdict", "peak MB", "seconds")
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-+-".join("-" * w for w in widths))
    for g, k, e, o, v, r, s in rows:
        o = " ".join(o.split())
        print(" | ".join([g.ljust(8), k[:46].ljust(46), e[:44].ljust(44), o[:100].ljust(100), v.ljust(7), r.rjust(9),
                          f"{s:7.1f}"]))
    skipped = sum(r[4] == "skipped" for r in rows)
    broken = len(rows) - held - skipped
    print(f"\n{len(rows)} kinds: {held} held, {broken} broken, {skipped} skipped; "
          f"{sum(r[6] for r in rows):.0f} s in all")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
