"""Start-up time of the CLI as a shell pipeline pays it: `chunkctl --help` and `chunkctl chunk` on
a small text file, each run as a fresh process (median of --runs). Target: under 0.5 s each.

    .venv/bin/python bench/startup.py [--runs 7]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    runs = ap.parse_args().runs
    exe = str(Path(sys.executable).with_name("chunkctl"))
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "note.txt"
        f.write_text("A short note about seed storage.\n\nKeep jars cool and dry.\n" * 50)
        rows = [
            ("python -c pass (interpreter floor)", timed([sys.executable, "-c", "pass"], runs)),
            ("chunkctl --help", timed([exe, "--help"], runs)),
            ("chunkctl chunk note.txt (recursive)", timed([exe, "chunk", str(f)], runs)),
            ("chunkctl chunk note.txt -c sentence", timed([exe, "chunk", str(f), "-c", "sentence"], runs)),
        ]
    for name, t in rows:
        verdict = "" if name.startswith("python") else ("  (< 0.5 s)" if t < 0.5 else "  (over 0.5 s)")
        print(f"{name:40} {t * 1000:7.0f} ms{verdict}")


if __name__ == "__main__":
    main()
