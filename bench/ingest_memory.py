"""Peak memory of ingesting one very large text file through the CLI (parse, chunk, store; with
--no-embed: the CPU would embed 100k chunks for hours), target under 1 GB for 200 MB. The file is
built from the benchmark texts, repeated, with CRLF line ends and non-ASCII characters so that
decoding and normalisation are exercised; the ingest runs as a child process and its peak RSS is
read from the kernel (getrusage of children).

    .venv/bin/python bench/ingest_memory.py [--mb 200] [--chunker recursive]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import bench_texts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--chunker", default="recursive")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in" / "big.txt"
        src.parent.mkdir()
        seed = "".join(t + "\n\n" for _, t in bench_texts()).replace("\n", "\r\n") + "Zoë — 種 🌱\r\n\r\n"
        target = args.mb * 1_000_000
        with open(src, "w", encoding="utf-8", newline="") as fh:
            written = 0
            while written < target:
                fh.write(seed)
                written += len(seed.encode())
        size_mb = src.stat().st_size / 1e6
        db = Path(tmp) / "big.duckdb"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "chunkctl", "ingest", str(src.parent), "--db", str(db),
                               "-c", args.chunker, "--json", "--no-embed"], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            raise SystemExit(f"ingest failed ({proc.returncode}): {proc.stderr[-2000:]}")
        import json

        chunks = sum(json.loads(proc.stdout)["chunks_written"].values())
        print(f"ingest of one {size_mb:.0f} MB text file ({args.chunker}): {seconds:.1f} s, "
              f"{size_mb / seconds:.2f} MB/s, {chunks} chunks, store {db.stat().st_size / 1e6:.0f} MB")
        print(f"peak RSS {peak_mb:.0f} MB  (target < 1024 MB: {'met' if peak_mb < 1024 else 'NOT met'})")


if __name__ == "__main__":
    main()
