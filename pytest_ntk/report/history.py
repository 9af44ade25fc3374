"""The verdict history: one JSON line per run in ``DIR/history.jsonl``.

Each record::

    {"schema": 1, "time": "2025-...+00:00", "git_commit": "abc..." | null, "profile": "quick",
     "seed": 0, "complete": true,
     "claims": {"<claim id>": {"verdict": "HOLDS", "margin": 0.012 | null}, ...}}

``margin`` is the decisive measurement's ``tolerance - gap`` (>= 0 when the point estimate is
within tolerance), the number the HTML report draws as a sparkline.

Concurrent runs (several CI jobs on one machine, ``pytest -n``'s controller and a second
session) must not corrupt the store. :func:`append` holds an exclusive ``filelock`` on
``DIR/history.jsonl.lock`` and writes the whole line with a single ``write`` on a file
opened with ``O_APPEND`` (so even a writer that ignores the lock cannot interleave inside a
line on a local file system), then fsyncs. A line torn by a crash (no trailing newline) is
fenced off by starting the next record on a new line, and :func:`read` skips lines that do
not parse, so one bad line never hides the rest of the history.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from .baseline import decisive

__all__ = ["SCHEMA", "FILENAME", "record", "append", "read", "series", "merge"]

SCHEMA = 1
FILENAME = "history.jsonl"
LOCK_TIMEOUT_S = 60.0


def record(report: dict) -> dict:
    """The history record of one run (a JSON report dict)."""
    run = report.get("run") or {}
    profile = run.get("profile")
    claims = {}
    for c in report.get("claims", []):
        m = decisive(c) or {}
        margin = m.get("margin")
        claims[c["id"]] = {"verdict": c.get("verdict"),
                           "margin": margin if isinstance(margin, (int, float)) else None}
    return {
        "schema": SCHEMA,
        "time": run.get("time"),
        "git_commit": run.get("git_commit"),
        "profile": profile.get("name") if isinstance(profile, dict) else profile,
        "seed": run.get("seed"),
        "complete": bool(report.get("complete", True)),
        "claims": claims,
    }


def _path(directory) -> Path:
    return Path(directory) / FILENAME


def append(directory, rec: dict) -> Path:
    """Append one record to ``DIR/history.jsonl`` (created with DIR if needed); returns the file."""
    path = _path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(rec, sort_keys=True, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        with _locked(fd, path):
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a torn last line (a crashed writer): start on a fresh line
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
    finally:
        os.close(fd)
    return path


@contextlib.contextmanager
def _locked(fd: int, path: Path):
    """An exclusive lock on the history file itself (``flock``; no lock file is left behind).

    Concurrent writers (several runs sharing one store) wait up to ``LOCK_TIMEOUT_S``; where
    ``fcntl`` does not exist (Windows) a ``filelock`` file next to the store is used and removed.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        from filelock import FileLock

        lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)
        with lock:
            yield
        with contextlib.suppress(OSError):
            os.unlink(str(path) + ".lock")
        return
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the history store {path} stayed locked for {LOCK_TIMEOUT_S:.0f}s") from None
            time.sleep(0.01)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def read(directory, last: int | None = None) -> list[dict]:
    """The records in ``DIR/history.jsonl``, oldest first (the ``last`` ones when given).

    Lines that do not parse as a record (torn by a crash, edited by hand) are skipped.
    A missing store is an empty history.
    """
    path = _path(directory)
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("schema") == SCHEMA and isinstance(rec.get("claims"), dict):
                out.append(rec)
    return out[-last:] if last else out


def merge(*record_lists: list[dict]) -> list[dict]:
    """Records from several sources, one per run (same time and commit), sorted by time."""
    seen = {}
    for records in record_lists:
        for rec in records:
            seen[(rec.get("time"), rec.get("git_commit"))] = rec
    return sorted(seen.values(), key=lambda r: str(r.get("time") or ""))


def series(records: list[dict], claim_id: str, last: int = 20) -> list[dict]:
    """``[{"time", "git_commit", "verdict" (None when the claim did not run), "margin"}]`` of one claim
    over the ``last`` runs, oldest first."""
    out = []
    for rec in records[-last:]:
        c = rec.get("claims", {}).get(claim_id) or {}
        out.append({"time": rec.get("time"), "git_commit": rec.get("git_commit"),
                    "verdict": c.get("verdict"), "margin": c.get("margin")})
    return out
