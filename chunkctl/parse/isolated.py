"""Parsing in worker processes, so one hostile file cannot take the run down with it.

A zip bomb in a DOCX, a flate bomb in a PDF or a pathological HTML tree makes a parser run for
minutes or allocate gigabytes. Each parse runs in a small pool of worker processes (forked from a
fork server, which imports the parsers once); a watchdog thread in the parent reads each busy
worker's resident memory every ``POLL_S`` and kills the worker when it passes ``memory_mb`` or its
parse passes ``timeout_s`` of wall time. The file becomes a reject row saying which limit it hit,
the pool starts a fresh worker, and the run goes on. A worker that dies on its own (a segfault in a
C parser) is a reject too.

The pool runs up to ``workers`` parses at once (the parent chunks and stores meanwhile), so on two
cores parsing also uses the second one. ``workers=0`` parses in the calling process: no limits,
for debugging and for callers that isolate themselves (Ray tasks).
"""
from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from chunkctl.types import Document, RejectError

POLL_S = 0.02  # a bomb faults in at most ~3 GB/s: 20 ms of overshoot is under 100 MB
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 3072
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (Linux /proc); None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _serve(conn) -> None:
    """A worker: parse each job it is sent, answer ("ok", Document) or ("reject", stage, reason)."""
    from chunkctl.parse import load_document

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        path, data, kind, pdf_backend, sha = job
        try:
            conn.send(("ok", load_document(path, data, kind=kind, pdf_backend=pdf_backend, sha256=sha)))
        except RejectError as e:
            conn.send(("reject", e.stage, e.reason))
        except BaseException as e:  # MemoryError, RecursionError, a parser bug: this file only
            conn.send(("reject", "parse", f"{type(e).__name__}: {e}"[:500]))


@dataclass
class Job:
    path: str
    started: float = 0.0
    result: Any = None  # ("ok", doc) | ("reject", stage, reason) once done
    done: threading.Event = field(default_factory=threading.Event)


class _Worker:
    """``python -m chunkctl.parse.isolated FD``: a fresh interpreter (never a fork of the parent,
    whose DuckDB and ONNX threads make fork unsafe, and not multiprocessing's spawn, which re-runs
    the caller's ``__main__``: a user's script without a main guard would ingest again), talking
    pickles over a socket pair. Start-up and parser imports cost about 0.2 s, once: idle workers
    outlive their pool and serve the next one."""

    def __init__(self):
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # finds what we found
        self.proc = subprocess.Popen([sys.executable, "-m", "chunkctl.parse.isolated", str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True, env=env)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.job: Job | None = None
        self.killed: str | None = None  # why the watchdog killed it

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def join(self, timeout: float = 1.0) -> int | None:
        try:
            return self.proc.wait(timeout)
        except Exception:  # subprocess.TimeoutExpired
            return None

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        if self.join() is None:
            self.proc.kill()
            self.join()
        self.conn.close()

    def kill(self, why: str) -> None:
        self.killed = why
        try:
            self.proc.kill()
        except OSError:
            pass


_SPARE: list[_Worker] = []  # idle workers of closed pools, for the next pool of this process
_SPARE_LOCK = threading.Lock()


@atexit.register
def _stop_spares() -> None:
    with _SPARE_LOCK:
        spares, _SPARE[:] = list(_SPARE), []
    for w in spares:
        w.stop()


class ParsePool:
    """``submit`` a file's bytes, later ``result`` it (in any order): a Document or RejectError."""

    def __init__(self, workers: int = 2, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                 memory_mb: int | None = DEFAULT_MEMORY_MB):
        self.size = max(0, workers)
        self.timeout_s = timeout_s or None
        self.memory = memory_mb * (1 << 20) if memory_mb else None
        self._idle: list[_Worker] = []
        self._busy: list[_Worker] = []
        self._queue: deque[tuple[Job, tuple]] = deque()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watchdog: threading.Thread | None = None

    def __enter__(self) -> "ParsePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, path: str, data: bytes, kind: str | None = None, pdf_backend: str = "pdfium",
               sha256: str | None = None) -> Job:
        job = Job(str(path))
        args = (str(path), data, kind, pdf_backend, sha256)
        if not self.size:
            job.result = _parse_here(*args)
            job.done.set()
            return job
        with self._lock:
            self._queue.append((job, args))
            self._dispatch()
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, daemon=True, name="chunkctl-parse-watchdog")
            self._watchdog.start()
        return job

    def result(self, job: Job) -> Document:
        """The job's Document; RejectError for a reject, a limit hit, or a worker that died."""
        job.done.wait()
        kind, *rest = job.result
        if kind == "ok":
            return rest[0]
        raise RejectError(*rest)

    def parse(self, path: str, data: bytes, **kw) -> Document:
        return self.result(self.submit(path, data, **kw))

    def close(self) -> None:
        """Idle workers are kept for the next pool; busy ones (an interrupted run) are killed."""
        self._closed.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=1)
        with self._lock:
            idle, busy = self._idle, self._busy
            self._idle, self._busy = [], []
        for w in busy:
            w.kill("closed")
            w.join()
            w.conn.close()
        with _SPARE_LOCK:
            _SPARE.extend(w for w in idle if w.alive)

    # -- inside: dispatch under the lock, the watchdog thread reads replies and enforces limits --
    def _dispatch(self) -> None:
        while self._queue and (self._idle or len(self._busy) < self.size):
            w = self._idle.pop() if self._idle else _spare() or _Worker()
            job, args = self._queue.popleft()
            try:
                w.conn.send(args)
            except (OSError, ValueError) as e:  # the worker died while idle: a new one takes the job
                w.kill(f"worker lost: {e}")
                self._queue.appendleft((job, args))
                continue
            job.started, w.job = time.monotonic(), job
            self._busy.append(w)

    def _watch(self) -> None:
        from multiprocessing.connection import wait

        while not self._closed.is_set():
            with self._lock:
                busy = list(self._busy)
            if not busy:
                time.sleep(POLL_S)
                continue
            ready = wait([w.conn for w in busy], timeout=POLL_S)
            now = time.monotonic()
            for w in busy:
                reply = None
                if w.conn in ready:
                    try:
                        reply = w.conn.recv()
                    except (EOFError, OSError):  # it died: killed, a segfault, the OOM killer
                        reply = ("reject", "parse", self._death(w))
                elif self.timeout_s and now - w.job.started > self.timeout_s:
                    w.kill("timeout")
                    reply = ("reject", "parse", f"parsing took longer than {self.timeout_s:g} s "
                                                "(--document-timeout); the parser was stopped")
                elif self.memory and (rss := rss_bytes(w.proc.pid) or 0) > self.memory:
                    w.kill("memory")
                    reply = ("reject", "parse", f"parsing needed more than {self.memory >> 20} MB "
                                                f"({rss >> 20} MB resident; --parse-memory); the parser was stopped")
                elif not w.alive:
                    reply = ("reject", "parse", self._death(w))
                if reply is not None:
                    self._finish(w, reply)

    def _death(self, w: _Worker) -> str:
        code = w.join()
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the parser crashed ({name})"
        return f"the parser process ended unexpectedly (exit {code})"

    def _finish(self, w: _Worker, reply) -> None:
        job = w.job
        with self._lock:
            self._busy.remove(w)
            w.job = None
            if w.killed is None and w.alive:
                self._idle.append(w)
            else:
                w.join()
                w.conn.close()
            self._dispatch()
        job.result = reply
        job.done.set()


def _spare() -> _Worker | None:
    with _SPARE_LOCK:
        while _SPARE:
            w = _SPARE.pop()
            if w.alive:
                return w
    return None


def _parse_here(path, data, kind, pdf_backend, sha):
    from chunkctl.parse import load_document

    try:
        return ("ok", load_document(path, data, kind=kind, pdf_backend=pdf_backend, sha256=sha))
    except RejectError as e:
        return ("reject", e.stage, e.reason)


if __name__ == "__main__":
    import sys
    from multiprocessing.connection import Connection

    _serve(Connection(int(sys.argv[1])))
