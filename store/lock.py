"""Who holds a store, and readers waiting for it.

DuckDB lets one process open a file for writing and then no other process may open it, not even to
read. chunkctl makes that bearable in two ways:

- a writer leaves a note beside the store (``.<name>.writer``: PID, command, start time), so a
  blocked command can say "store busy: PID 4242 is writing it (chunkctl ingest docs/, started 3 min
  ago)" instead of DuckDB's lock error;
- a command asked to wait (``--wait``) leaves a knock (``.<name>.reader-<pid>``) while it waits. A
  writer looks for knocks between documents and between embedding batches (``Store.let_readers_in``),
  closes its connection, lets the readers open the file, and reopens it when they are done, so a
  `search` during a long ingest answers within about a second of the current document.

A note or knock whose process is gone is ignored (and removed when found).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

KNOCK_WAIT_S = 120.0  # longest a writer waits for knocking readers before it takes the store back


def _beside(db: str, suffix: str) -> Path:
    p = Path(db)
    return p.with_name(f".{p.name}.{suffix}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_lock_error(err: BaseException) -> bool:
    return "Could not set lock on file" in str(err) or "Conflicting lock" in str(err)


def write_note(db: str, command: str | None, started: float) -> None:
    try:
        _beside(db, "writer").write_text(json.dumps({"pid": os.getpid(), "command": command or "",
                                                     "started": started}))
    except OSError:
        pass  # a note is a courtesy; a store in a read-only folder is refused by DuckDB anyway


def remove_note(db: str) -> None:
    p = _beside(db, "writer")
    try:
        if json.loads(p.read_text()).get("pid") == os.getpid():
            p.unlink()
    except (OSError, ValueError):
        pass


def holder(db: str, err: BaseException | None = None) -> dict | None:
    """{pid, command, started} of the live process writing ``db``, from its note or, failing that,
    from DuckDB's lock error (which names the PID)."""
    try:
        note = json.loads(_beside(db, "writer").read_text())
        if alive(int(note["pid"])):
            return note
    except (OSError, ValueError, KeyError, TypeError):
        pass
    m = re.search(r"\(PID (\d+)\)", str(err or ""))
    return {"pid": int(m.group(1)), "command": "", "started": None} if m else None


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def busy_message(db: str, err: BaseException | None = None) -> str:
    h = holder(db, err)
    if h is None:
        return f"store busy: another process holds {db}"
    what = [f"`chunkctl {h['command']}`"] if h.get("command") else []
    if h.get("started"):
        what.append(f"started {_ago(time.time() - h['started'])}")
    return f"store busy: PID {h['pid']} is writing {db}" + (f" ({', '.join(what)})" if what else "")


class Knock:
    """A reader's knock, present while it waits for the store."""

    def __init__(self, db: str):
        self.path = _beside(db, f"reader-{os.getpid()}")

    def __enter__(self) -> "Knock":
        try:
            self.path.write_text(str(os.getpid()))
        except OSError:
            pass
        return self

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def knocking(db: str) -> list[int]:
    """PIDs of live readers waiting for ``db``; knocks of dead ones are removed."""
    p = Path(db)
    prefix = f".{p.name}.reader-"
    pids = []
    try:
        names = [n for n in os.listdir(p.parent if str(p.parent) else ".") if n.startswith(prefix)]
    except OSError:
        return []
    for name in names:
        try:
            pid = int(name[len(prefix):])
        except ValueError:
            continue
        if alive(pid):
            pids.append(pid)
        else:
            (p.parent / name).unlink(missing_ok=True)
    return pids
