"""Finding input files: folders walked recursively, globs applied, and every path that cannot be
used reported as a Reject instead of being skipped.

Symlinks are followed only while they stay inside the roots named on the command line (a link in a
shared folder to ``/etc/shadow`` or ``~/.ssh`` is a reject, not an input); ``follow_symlinks``
lifts that. Loops are detected. ``open_regular`` re-checks at open time what the walk saw: the path
may have become a FIFO (which would block a plain ``open`` forever) or a link leaving the roots."""
from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Iterator, Sequence

from chunkctl.types import Reject


@dataclass(frozen=True)
class Found:
    path: Path  # absolute, as reached (not resolved: a symlinked file keeps its own name)
    size: int
    roots: tuple[str, ...] = ()  # the real paths of the roots a link may lead into; () = anywhere


def real_roots(roots: Sequence[str | Path]) -> tuple[str, ...]:
    """The resolved roots: a link may lead anywhere inside these."""
    return tuple(os.path.realpath(r) for r in roots)


def inside(real: str, roots: Sequence[str]) -> bool:
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def open_regular(item: Found, limit: int | None = None) -> bytes:
    """The file's bytes, re-checked at open: a regular file (opened non-blocking, so a FIFO swapped
    in after the walk cannot hang the run), still inside the roots, at most ``limit`` bytes.
    RejectError says what is wrong."""
    from chunkctl.types import RejectError

    with _checked(item) as (fh, st):
        if limit is not None and st.st_size > limit:
            raise RejectError("read", f"file grew past {limit >> 20} MB after the walk")
        try:
            data = fh.read() if limit is None else fh.read(limit + 1)
        except OSError as err:
            raise RejectError("read", f"cannot read: {err.strerror or err}") from None
    if limit is not None and len(data) > limit:
        raise RejectError("read", f"file grew past {limit >> 20} MB after the walk")
    return data


def check_regular(item: Found) -> None:
    """What ``open_regular`` checks, for a file read later block by block (a streamed text)."""
    with _checked(item):
        pass


@contextmanager
def _checked(item: Found):
    from chunkctl.types import RejectError

    try:
        fd = os.open(item.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise RejectError("read", f"cannot open: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RejectError("read", "not a regular file any more (replaced after the walk)")
        if item.roots:
            real = _fd_path(fd) or os.path.realpath(item.path)
            if not inside(real, item.roots):
                raise RejectError("read", f"a symlink leads outside the given folders (to {real}); "
                                          "--follow-symlinks allows it")
        os.set_blocking(fd, True)
        yield fh, st


def _fd_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch(rel, p) or fnmatch(name, p) for p in patterns)


def _stat_reject(path: Path, err: OSError) -> Reject:
    if err.errno == errno.ELOOP:
        return Reject(str(path), "walk", "symlink loop")
    if isinstance(err, FileNotFoundError) and path.is_symlink():
        return Reject(str(path), "walk", f"broken symlink to {os.readlink(path)}")
    if isinstance(err, FileNotFoundError):
        return Reject(str(path), "walk", "no such file or directory")
    if isinstance(err, PermissionError):
        return Reject(str(path), "walk", "permission denied")
    return Reject(str(path), "walk", f"cannot stat: {err.strerror or err}")


def walk(roots: Sequence[str | Path], include: Sequence[str] = (), exclude: Sequence[str] = (),
         hidden: bool = False, follow_symlinks: bool = False) -> Iterator[Found | Reject]:
    """Yield each usable file under ``roots`` (sorted, deterministic) or a Reject saying why a path
    is unusable. Include/exclude globs match the path relative to its root or the file name;
    hidden files and folders (dot-names) are left out unless ``hidden``; symlinks that lead outside
    the roots are rejected unless ``follow_symlinks``."""
    allowed = () if follow_symlinks else real_roots(roots)
    for root in roots:
        root_path = Path(os.path.abspath(root))
        try:
            st = os.stat(root_path)
        except OSError as err:
            yield _stat_reject(root_path, err)
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(root_path, root_path, include, exclude, hidden, {(st.st_dev, st.st_ino)}, allowed)
        else:
            yield _file(root_path, st, allowed)  # a file named on the command line is never filtered out


def _file(path: Path, st: os.stat_result, allowed: tuple[str, ...] = ()) -> Found | Reject:
    if not stat.S_ISREG(st.st_mode):
        kind = ("named pipe" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
                else "device or special file")
        return Reject(str(path), "walk", f"not a regular file ({kind})")
    if not os.access(path, os.R_OK):
        return Reject(str(path), "read", "permission denied")
    return Found(path, st.st_size, allowed)


def _walk_dir(root: Path, d: Path, include, exclude, hidden, visited: set, allowed) -> Iterator[Found | Reject]:
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError as err:
        yield Reject(str(d), "walk", f"cannot list folder: {err.strerror or err}")
        return
    for entry in entries:
        if not hidden and entry.name.startswith("."):
            continue
        path = Path(entry.path)
        rel = path.relative_to(root).as_posix()
        try:
            st = os.stat(path)  # follows symlinks
        except OSError as err:
            if not _matches(rel, exclude):
                yield _stat_reject(path, err)
            continue
        if allowed and entry.is_symlink() and not _matches(rel, exclude):
            real = os.path.realpath(path)
            if not inside(real, allowed):
                yield Reject(str(path), "walk", f"symlink leads outside the given folders (to {real}); "
                                                "--follow-symlinks allows it")
                continue
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in visited:
                if entry.is_symlink():
                    yield Reject(str(path), "walk", "symlink loop, or a link to a folder already walked")
                continue
            if _matches(rel, exclude):
                continue
            visited.add(key)  # shared across the walk: each real folder is read once
            yield from _walk_dir(root, path, include, exclude, hidden, visited, allowed)
            continue
        if _matches(rel, exclude) or (include and not _matches(rel, include)):
            continue
        yield _file(path, st, allowed)
