"""Fault cases: the file system (pipes, sockets, symlinks, races, crashes) and the store (kills, full disks)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from faults.kit import CHUNKCTL, GOOD, Skip, case, docs_with_good, ingest, offsets_hold, rejected, run, stored


# -- the file system ------------------------------------------------------------------------------
@case("fs", "named pipe in the folder", "reject: not a regular file")
def _(tmp):
    d = docs_with_good(tmp)
    os.mkfifo(d / "pipe.txt")
    return rejected(ingest(d, timeout=60), "pipe.txt", "named pipe")


@case("fs", "file replaced by a FIFO after the walk", "reject at open, no hang")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "z-late.txt").write_text(GOOD)
    code = (
        "import os, sys\n"
        "from chunkctl.chunkers import parse_spec\nfrom chunkctl.pipeline import IngestOptions, ingest\n"
        "from chunkctl.store import Store\n"
        "late = sys.argv[2] + '/z-late.txt'\n"
        "def on_file(path, status, total):\n"
        "    if path.endswith('good.txt'):\n"
        "        os.unlink(late); os.mkfifo(late)\n"
        "with Store(sys.argv[1]) as st:\n"
        "    r = ingest(st, [sys.argv[2]], IngestOptions([parse_spec('recursive')], parse_workers=0), on_file=on_file)\n"
        "print([(x.path, x.reason) for x in r.rejects])\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp / "s.duckdb"), str(d)], capture_output=True, text=True,
                       timeout=60)
    held = p.returncode == 0 and "not a regular file" in p.stdout and "z-late.txt" in p.stdout
    return held, (p.stdout.strip() or p.stderr.strip().splitlines()[-1])[:160]


@case("fs", "unix socket in the folder", "reject: not a regular file")
def _(tmp):
    d = docs_with_good(tmp)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "sock.txt"))
    try:
        return rejected(ingest(d), "sock.txt", "socket")
    finally:
        s.close()


def _secret(tmp: Path) -> Path:
    outside = tmp / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "shadow.txt").write_text("root:SECRET-HASH:19000:0:99999:7:::\n")
    return outside


@case("security", "symlink to a file outside the folder", "reject: leads outside; text never stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "link.txt").symlink_to(_secret(tmp) / "shadow.txt")
    r = ingest(d)
    held, seen = rejected(r, "link.txt", "outside")
    return held and not r.stored("link.txt"), seen


@case("security", "symlink outside, --follow-symlinks", "stored (the user asked)")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "link.txt").symlink_to(_secret(tmp) / "shadow.txt")
    return stored(ingest(d, "--follow-symlinks"), "link.txt")


@case("security", "symlink to a folder outside", "reject: leads outside")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "etc").symlink_to(_secret(tmp), target_is_directory=True)
    r = ingest(d)
    held, seen = rejected(r, "etc", "outside")
    return held and not r.stored("shadow.txt"), seen


@case("security", "symlink to /etc/passwd", "reject: leads outside")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "passwd.txt").symlink_to("/etc/passwd")
    return rejected(ingest(d), "passwd.txt", "outside")


@case("fs", "symlink inside the folder", "stored")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "sub").mkdir()
    (d / "sub" / "real.txt").write_text(GOOD + "more\n")
    (d / "alias.txt").symlink_to(d / "sub" / "real.txt")
    return stored(ingest(d), "alias.txt")


@case("fs", "broken symlink", "reject: broken symlink")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "gone.txt").symlink_to(tmp / "nowhere.txt")
    return rejected(ingest(d), "gone.txt", "broken symlink")


@case("fs", "symlink loop", "reject: loop")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "a.txt").symlink_to(d / "b.txt")
    (d / "b.txt").symlink_to(d / "a.txt")
    return rejected(ingest(d), "a.txt", "loop")


@case("fs", "folder symlinked into itself", "reject: loop, walk ends")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "again").symlink_to(d, target_is_directory=True)
    r = ingest(d)
    return rejected(r, "again", "loop")


@case("fs", "file deleted after the walk", "reject: cannot open")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "z-gone.txt").write_text(GOOD)
    code = (
        "import os, sys\n"
        "from chunkctl.chunkers import parse_spec\nfrom chunkctl.pipeline import IngestOptions, ingest\n"
        "from chunkctl.store import Store\n"
        "def on_file(path, status, total):\n"
        "    if path.endswith('good.txt'):\n"
        "        os.unlink(sys.argv[2] + '/z-gone.txt')\n"
        "with Store(sys.argv[1]) as st:\n"
        "    r = ingest(st, [sys.argv[2]], IngestOptions([parse_spec('recursive')], parse_workers=0), on_file=on_file)\n"
        "print([(x.path, x.reason) for x in r.rejects])\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp / "s.duckdb"), str(d)], capture_output=True, text=True,
                       timeout=60)
    held = p.returncode == 0 and "cannot open" in p.stdout
    return held, (p.stdout.strip() or p.stderr.strip().splitlines()[-1])[:160]


@case("fs", "parser process killed by a signal", "reject: the parser crashed; run goes on")
def _(tmp):
    from chunkctl.parse.isolated import ParsePool

    pool = ParsePool(1, timeout_s=30)
    try:
        job = pool.submit("x.txt", b"hello world " * 10)
        pool.result(job)
        worker = pool._idle[0]
        job = pool.submit("y.html", b"<p>word " * 3_000_000)
        time.sleep(0.3)
        os.kill(worker.proc.pid, signal.SIGSEGV)
        try:
            pool.result(job)
            return False, "parsed?"
        except Exception as e:
            ok = pool.parse("z.txt", GOOD.encode()).text.startswith("Seed")
            return "crashed" in str(e) and ok, f"{e}; next file parsed: {ok}"
    finally:
        pool.close()


# -- the store ------------------------------------------------------------------------------------
@case("store", "0-byte store file (killed while created)", "replaced, ingest works")
def _(tmp):
    d = docs_with_good(tmp)
    (tmp / "store.duckdb").write_bytes(b"")
    r = ingest(d)
    return r.code == 0 and r.stored("good.txt"), r.summary()


@case("store", "kill -9 around store creation (10 moments)", "every re-run works")
def _(tmp):
    d = docs_with_good(tmp)
    bad = []
    for i in range(10):
        db = tmp / f"k{i}.duckdb"
        p = subprocess.Popen([*CHUNKCTL, "ingest", str(d), "--db", str(db), "--no-embed", "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.25 + 0.08 * i)
        p.send_signal(signal.SIGKILL)
        p.wait()
        r = run("ingest", d, "--db", db, "--no-embed", "-q", db=db)
        if not (r.code == 0 and r.stored("good.txt")):
            bad.append((i, r.summary()))
    return not bad, f"10 kills, re-runs failed: {bad}" if bad else "10 kills, 10 re-runs exit 0 with the document"


@case("store", "kill -9 while a file streams", "temp file removed by the next run; document whole")
def _(tmp):
    d = docs_with_good(tmp)
    (d / "big.txt").write_text(("Seed packets are lent to members in spring. " * 20 + "\n\n") * 30000)
    db = tmp / "store.duckdb"
    p = subprocess.Popen([*CHUNKCTL, "ingest", str(d), "--db", str(db), "--no-embed", "-q", "--stream-mb", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp.glob(".chunkctl-*")):
        time.sleep(0.02)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    left = [x.name for x in tmp.glob(".chunkctl-*")]
    r = ingest(d, "--stream-mb", "1")
    after = [x.name for x in tmp.glob(".chunkctl-*")]
    held = bool(left) and not after and r.code == 0 and r.stored("big.txt") and offsets_hold(db)
    return held, f"temp files after the kill: {len(left)}, after the re-run: {len(after)}; {r.summary()}"


@case("store", "kill -9 mid-ingest, then re-run", "nothing half-written; re-run completes")
def _(tmp):
    d = docs_with_good(tmp)
    for i in range(40):
        (d / f"doc{i:02}.txt").write_text(GOOD * (20 + i))
    db = tmp / "store.duckdb"
    p = subprocess.Popen([*CHUNKCTL, "ingest", str(d), "--db", str(db), "-q"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(4)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = run("ingest", d, "--db", db, "-q", db=db)
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    missing = con.execute("SELECT count(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c "
                          "WHERE c.doc_id = d.doc_id)").fetchone()[0]
    no_vec = con.execute("SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
                         "WHERE e.chunk_id = c.chunk_id)").fetchone()[0]
    con.close()
    held = r.code == 0 and len(r.docs) == 41 and missing == 0 and no_vec == 0 and offsets_hold(db)
    return held, f"{r.summary()}; {len(r.docs)} documents, {missing} without chunks, {no_vec} chunks without vectors"


def _small_disk(tmp: Path, size: str) -> Path:
    if os.geteuid() != 0:
        raise Skip("mounting a tmpfs needs root")
    mnt = tmp / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if p.returncode:
        raise Skip(f"cannot mount a tmpfs here: {p.stderr.strip()[:80]}")
    return mnt


def _umount(mnt: Path) -> None:
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@case("store", "disk full under the store (3 MB tmpfs)", "exit 1, one line, no traceback; store opens")
def _(tmp):
    mnt = _small_disk(tmp, "3m")
    try:
        d = docs_with_good(tmp)
        for i in range(40):
            (d / f"doc{i:02}.txt").write_text(f"Document {i}. " + GOOD * 2500)
        db = mnt / "store.duckdb"
        r = run("ingest", d, "--db", db, "--no-embed", "-q", db=db)
        lines = [ln for ln in r.err.splitlines() if ln.strip()]
        ok_line = len(lines) == 1 and "store failure" in lines[0]
        opens = run("stats", "--db", db)
        held = r.code == 1 and ok_line and not r.traceback and opens.code == 0
        return held, f"{r.summary()}; stats afterwards: exit {opens.code}"
    finally:
        _umount(mnt)


@case("store", "disk full while a streamed file's text is written", "exit 1, one line; store opens")
def _(tmp):
    mnt = _small_disk(tmp, "6m")
    try:
        d = docs_with_good(tmp)
        (d / "big.txt").write_text(("Seed packets are lent to members in spring. " * 20 + "\n\n") * 9000)
        db = mnt / "store.duckdb"
        r = run("ingest", d, "--db", db, "--no-embed", "-q", "--stream-mb", "1", db=db)
        lines = [ln for ln in r.err.splitlines() if ln.strip()]
        opens = run("stats", "--db", db)
        held = r.code == 1 and len(lines) == 1 and "store failure" in lines[0] and not r.traceback and opens.code == 0
        return held, f"{r.summary()}; stats afterwards: exit {opens.code}"
    finally:
        _umount(mnt)


@case("store", "--db is a folder of other files", "exit 1 or 2, one line")
def _(tmp):
    d = docs_with_good(tmp)
    (tmp / "somewhere").mkdir()
    (tmp / "somewhere" / "x.bin").write_bytes(b"1")
    r = run("ingest", d, "--db", tmp / "somewhere", "--no-embed", "-q")
    return r.code in (1, 2) and not r.traceback, r.summary()


@case("store", "--db is a text file", "exit 2, one line, the file untouched")
def _(tmp):
    d = docs_with_good(tmp)
    (tmp / "notes.duckdb").write_text("not a database\n" * 100)
    r = run("ingest", d, "--db", tmp / "notes.duckdb", "--no-embed", "-q")
    untouched = (tmp / "notes.duckdb").read_text() == "not a database\n" * 100
    return r.code == 2 and not r.traceback and "not a DuckDB file" in r.err and untouched, r.summary()


@case("store", "store locked by another process", "exit 1, one line naming the PID")
def _(tmp):
    d = docs_with_good(tmp)
    db = tmp / "store.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(60)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        r = run("ingest", d, "--db", db, "--no-embed", "-q")
        return (r.code == 1 and not r.traceback and f"store busy: PID {holder.pid}" in r.err
                and "--wait" in r.err), r.summary()
    finally:
        holder.kill()
        holder.wait()


