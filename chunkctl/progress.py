"""Progress of long steps, told to whoever listens.

The steps that take time run deep (an embedding batch, an LLM call on a worker thread, a question
of an eval), so they report here instead of through a callback threaded through every layer: a
step says what it is, how much there is to do and how much is done. Nobody listens by default (a
library caller pays one attribute check per update); the CLI listens on a terminal and draws a
bar with an ETA per open step (``chunkctl.cli.render.progress_display``), and a Python caller may
pass any object with ``start``, ``update`` and ``end`` methods to ``listen``.

    with progress.step("embed", total=len(rows)) as s:
        for batch in batches:
            ...
            s.advance(len(batch))
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Protocol


class Listener(Protocol):
    def start(self, step: "Step") -> None: ...
    def update(self, step: "Step") -> None: ...
    def end(self, step: "Step") -> None: ...


_listener: Listener | None = None
_lock = threading.Lock()


class Step:
    """One step under way: ``name``, ``done`` of ``total`` (None: not known), and a short
    ``detail`` (the file being parsed, counts so far)."""

    def __init__(self, name: str, total: int | None = None):
        self.name, self.total, self.done, self.detail = name, total, 0, ""

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        with _lock:
            self.done += n
        if detail is not None:
            self.detail = detail
        self._tell()

    def update(self, done: int | None = None, total: int | None = None, detail: str | None = None) -> None:
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        if detail is not None:
            self.detail = detail
        self._tell()

    def grow(self, n: int) -> None:
        """More work found (chunks queued to embed as documents commit)."""
        with _lock:
            self.total = (self.total or 0) + n
        self._tell()

    def _tell(self) -> None:
        listener = _listener
        if listener is not None:
            listener.update(self)


@contextmanager
def step(name: str, total: int | None = None) -> Iterator[Step]:
    s = Step(name, total)
    listener = _listener
    if listener is not None:
        listener.start(s)
    try:
        yield s
    finally:
        if listener is not None:
            listener.end(s)


@contextmanager
def listen(listener: Listener | None) -> Iterator[None]:
    """Send every step's progress to ``listener`` inside the block (None: to nobody)."""
    global _listener
    before, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = before
