"""A stop asked for (Ctrl-C), readable anywhere. The signal handler raises KeyboardInterrupt in the
main thread, but a native library may turn it into an exception of its own on the way out (DuckDB:
"Query interrupted", a RuntimeError or InterruptException), which a per-file error handler would
then record as that file's failure and go on. Code that catches broad exceptions asks
``requested()`` first; loops call ``check()`` between units of work."""
from __future__ import annotations

_requested = False


def request() -> None:
    global _requested
    _requested = True


def requested() -> bool:
    return _requested


def check() -> None:
    """Raise KeyboardInterrupt if a stop was asked for."""
    if _requested:
        raise KeyboardInterrupt


_shields = 0


def shielded() -> bool:
    return _shields > 0


class shield:
    """A block Ctrl-C does not cut in two (a commit and the counts of what it committed): the
    signal handler only records the stop while one is open; the stop takes effect when the
    outermost block ends."""

    def __enter__(self) -> "shield":
        global _shields
        _shields += 1
        return self

    def __exit__(self, exc_type, *_) -> None:
        global _shields
        _shields -= 1
        if not _shields and exc_type is None:
            check()
