"""The JSON report: ``{"schema": 1, "run": {...}, "complete": bool, "claims": [...]}``, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["SCHEMA", "build", "write", "read", "atomic_write_text"]

SCHEMA = 1


def build(run: dict, claims: list[dict], *, complete: bool) -> dict:
    return {"schema": SCHEMA, "run": run, "complete": bool(complete), "claims": claims}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    The file gets the permissions an ordinary ``open(path, "w")`` would give it (``0666`` less the
    umask), not the ``0600`` of a temporary file: a report is meant to be read by others.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write(path, report: dict) -> None:
    atomic_write_text(path, json.dumps(report, indent=2, allow_nan=False) + "\n")


def read(path) -> dict:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or "claims" not in data:
        raise ValueError(f"{path}: not a pytest-ntk JSON report of schema {SCHEMA}")
    return data
