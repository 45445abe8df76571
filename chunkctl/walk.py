"""Finding input files: folders walked recursively (symlinks followed, loops detected), globs
applied, and every path that cannot be used reported as a Reject instead of being skipped."""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Iterator, Sequence

from chunkctl.types import Reject


@dataclass(frozen=True)
class Found:
    path: Path  # absolute, as reached (not resolved: a symlinked file keeps its own name)
    size: int


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
         hidden: bool = False) -> Iterator[Found | Reject]:
    """Yield each usable file under ``roots`` (sorted, deterministic) or a Reject saying why a path
    is unusable. Include/exclude globs match the path relative to its root or the file name;
    hidden files and folders (dot-names) are left out unless ``hidden``."""
    for root in roots:
        root_path = Path(os.path.abspath(root))
        try:
            st = os.stat(root_path)
        except OSError as err:
            yield _stat_reject(root_path, err)
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(root_path, root_path, include, exclude, hidden, {(st.st_dev, st.st_ino)})
        else:
            yield _file(root_path, st)  # a file named on the command line is never filtered out


def _file(path: Path, st: os.stat_result) -> Found | Reject:
    if not stat.S_ISREG(st.st_mode):
        kind = ("named pipe" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
                else "device or special file")
        return Reject(str(path), "walk", f"not a regular file ({kind})")
    if not os.access(path, os.R_OK):
        return Reject(str(path), "read", "permission denied")
    return Found(path, st.st_size)


def _walk_dir(root: Path, d: Path, include, exclude, hidden, visited: set) -> Iterator[Found | Reject]:
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
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in visited:
                if entry.is_symlink():
                    yield Reject(str(path), "walk", "symlink loop, or a link to a folder already walked")
                continue
            if _matches(rel, exclude):
                continue
            visited.add(key)  # shared across the walk: each real folder is read once
            yield from _walk_dir(root, path, include, exclude, hidden, visited)
            continue
        if _matches(rel, exclude) or (include and not _matches(rel, include)):
            continue
        yield _file(path, st)
