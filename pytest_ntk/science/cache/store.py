"""The cache itself: memory, then disk, then compute, process-safe (:class:`Cache`).

See :mod:`pytest_ntk.science.cache` for the layers and the on-disk format.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .keys import (FORMAT, _DIGEST_RE, _FILE_MODE, CacheCorruptWarning, CacheWarning, _Unreadable,
                   _check_name, _stamp, canonical_json, environment, key_digest)
from .values import _MISSING, _checksum, _encode, _Entry


# ============================================================================ the cache
class Cache:
    """Memoized, disk-backed, process-safe results of expensive computations (see the module doc).

    ``Cache(directory)``: memory plus disk under ``directory`` (created on first write).
    ``Cache(None)``: memory only (no disk; e.g. pytest ran with ``-p no:cacheprovider``).
    ``Cache(..., enabled=False)``: no cache at all -- every call computes (``--ntk-no-cache``).
    ``env`` replaces :func:`environment` in the digests (for tests; leave it alone).
    """

    def __init__(self, directory: str | os.PathLike | None, *, enabled: bool = True,
                 env: Mapping[str, Any] | None = None):
        self.directory = None if directory is None else Path(directory)
        self.enabled = bool(enabled)
        self._env = dict(env) if env is not None else None
        self._memory: dict[str, _Entry] = {}
        self._stats: dict[str, float] = dict.fromkeys(
            ("memory_hits", "disk_hits", "misses", "writes", "corrupt", "stale", "write_errors",
             "compute_s", "load_s", "saved_s"), 0)
        self._depth = 0  # nesting of computations (see _compute)

    def __repr__(self) -> str:
        where = "disabled" if not self.enabled else (str(self.directory) if self.directory else "memory only")
        return f"Cache({where})"

    # ------------------------------------------------------------------ keys and paths
    @property
    def environment(self) -> dict[str, Any]:
        """The environment mixed into this cache's digests (:func:`environment` unless overridden)."""
        return dict(self._env) if self._env is not None else environment()

    def digest(self, key: Any, *, name: str = "") -> str:
        """The hex SHA-256 that addresses ``key`` under ``name`` (:func:`key_digest` with this cache's env)."""
        return key_digest(key, name=name, env=self.environment)

    def entry_path(self, key: Any, *, name: str = "") -> Path | None:
        """Where the entry of ``key`` lives (or would live) on disk; ``None`` without a directory."""
        if self.directory is None or not self.enabled:
            return None
        return self.directory / _check_name(name) / f"{self.digest(key, name=name)}.npz"

    # ------------------------------------------------------------------ the main call
    def get_or_compute(self, key: Any, compute: Callable[[], Any], *, name: str = "", version: Any = None,
                       code: Callable | None = None) -> Any:
        """The value of ``compute()`` for ``key``: from memory, else from disk, else computed and stored.

        ``key`` describes everything that determines the value (see :func:`canonical_json`);
        ``name`` (letters, digits, ``_.-``) says what kind of value it is (``"trained_fc"``,
        ``"empirical_ntk"``): it is part of the digest and names the sub-directory. ``compute`` takes
        no argument. Its exceptions propagate and nothing is stored. The value comes back in its
        cached form on every path (arrays as read-only numpy arrays; see the module doc), so a
        warm run sees bit for bit what the cold run saw. A value that cannot be stored is a
        ValueError naming where in it the offending object sits.

        **Stale values.** Every entry is stamped with :func:`code_digest` of ``compute`` (or of
        ``code``, the function that really computes when ``compute`` is a thin wrapper around it)
        and with ``version`` (any key-able value). An entry whose stamp differs -- the function's
        body was edited, or the version changed -- is never served: it is recomputed and replaced
        (counted as ``stale``). Code that ``compute`` *calls* is not followed: when that changes,
        change ``version`` or put a digest of that code in the key. pytest-ntk's own science
        layer is covered by the environment's source digest.
        """
        if not callable(compute):
            raise ValueError(f"compute must be a callable taking no argument, got {compute!r}")
        name = _check_name(name)
        digest = self.digest(key, name=name)  # validates the key in every mode
        stamp = _stamp(code if code is not None else compute, version)
        if not self.enabled:
            self._stats["misses"] += 1
            return self._compute(compute, name, stamp)[0].value()
        entry = self._memory.get(digest)
        if entry is not None and entry.stamp == stamp:
            self._stats["memory_hits"] += 1
            return entry.value()
        if self.directory is None:
            self._stats["misses"] += 1
            entry = self._compute(compute, name, stamp)[0]
        else:
            entry = self._through_disk(digest, key, compute, name, stamp)
        self._memory[digest] = entry
        return entry.value()

    def memoize(self, name: str, *, key: Mapping[str, Any] | None = None) -> Callable[[Callable], Callable]:
        """Decorator form: ``cache.memoize("trained_fc")(fn)(*args, **kwargs)``.

        The key is ``{"function": name, "arguments": <fn's bound arguments, defaults applied>}``
        merged with ``key`` (extra context, e.g. ``{"profile": "quick"}``); every argument must be
        key-able (see :func:`canonical_json`; pass ``model`` objects with ``describe()``).
        """
        name = _check_name(name)
        extra = dict(key or {})

        def decorate(fn: Callable) -> Callable:
            sig = inspect.signature(fn)

            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                bound = sig.bind(*args, **kwargs)
                bound.apply_defaults()
                full = {"function": name, "arguments": dict(bound.arguments), **extra}
                return self.get_or_compute(full, lambda: fn(*args, **kwargs), name=name, code=fn)

            return wrapper

        return decorate

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        """JSON-ready counters of this process's cache (sum them over xdist workers with :meth:`add_stats`).

        ``memory_hits``, ``disk_hits`` (values read back; ``hits`` is their sum), ``misses`` (values
        computed), ``writes`` (entries written), ``corrupt`` (entries found broken and replaced),
        ``write_errors``; ``compute_s`` (seconds spent computing), ``load_s`` (seconds reading
        entries), ``saved_s`` (compute time the disk hits recorded when they were written);
        ``enabled`` and ``directory`` say which cache it is.
        """
        s: dict[str, Any] = {k: (round(v, 6) if k.endswith("_s") else int(v)) for k, v in self._stats.items()}
        s["hits"] = s["memory_hits"] + s["disk_hits"]
        s["enabled"] = self.enabled
        s["directory"] = str(self.directory) if self.directory is not None else None
        return s

    @staticmethod
    def add_stats(*stats: Mapping[str, Any]) -> dict[str, Any]:
        """Sum the counters of several :meth:`stats` dicts (one per xdist worker)."""
        out: dict[str, Any] = {}
        for s in stats:
            for k, v in s.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[k] = out.get(k, 0) + v
                else:
                    out.setdefault(k, v)
        return out

    def summary(self) -> str:
        """One line for a terminal: ``ntk cache: 7 hits (4 memory, 3 disk), 2 computed, ...``."""
        s = self.stats()
        if not self.enabled:
            return f"ntk cache: disabled (--ntk-no-cache), {s['misses']} computed in {s['compute_s']:.1f}s"
        where = s["directory"] or "memory only"
        return (f"ntk cache ({where}): {s['hits']} hits ({s['memory_hits']} memory, {s['disk_hits']} disk, "
                f"saving {s['saved_s']:.1f}s), {s['misses']} computed in {s['compute_s']:.1f}s, "
                f"{s['writes']} written" + (f", {s['corrupt']} corrupt replaced" if s["corrupt"] else "")
                + (f", {s['write_errors']} write errors" if s["write_errors"] else ""))

    def clear_memory(self) -> None:
        """Forget the in-memory values (the disk entries stay)."""
        self._memory.clear()

    # ------------------------------------------------------------------ internals
    def _compute(self, compute: Callable[[], Any], name: str, stamp: str | None = None) -> tuple[_Entry, float]:
        """Run ``compute`` and put its value in cached form: (entry, seconds it took).

        ``compute_s`` counts each second once: a computation that itself asks the cache for
        another value (nested) does not add that value's time again.
        """
        t0 = time.perf_counter()
        self._depth += 1
        try:
            value = compute()
        finally:
            self._depth -= 1
        seconds = time.perf_counter() - t0
        if self._depth == 0:
            self._stats["compute_s"] += seconds
        arrays: list[np.ndarray] = []
        structure = _encode(value, f"{name} value", arrays)
        return _Entry(structure, arrays, stamp), seconds

    def _through_disk(self, digest: str, key: Any, compute: Callable[[], Any], name: str, stamp: str) -> _Entry:
        path = self.directory / name / f"{digest}.npz"
        found = self._read(path, digest, report=False, stamp=stamp)  # fast path: no lock for a finished entry
        if found is not _MISSING:
            return found
        import filelock  # a declared dependency; imported here to keep `import pytest_ntk.science.cache` light

        lock_dir = self.directory / ".locks"
        try:
            self._ensure_directory()
            lock_dir.mkdir(exist_ok=True)
            lock = filelock.FileLock(str(lock_dir / f"{digest}.lock"), timeout=-1)
            lock.acquire()
        except OSError as exc:
            self._warn_write(path, name, f"cannot lock it ({exc})")
            self._stats["misses"] += 1
            return self._compute(compute, name, stamp)[0]
        try:
            found = self._read(path, digest, report=True, stamp=stamp)  # another process may have written it
            if found is not _MISSING:
                return found
            self._stats["misses"] += 1
            entry, seconds = self._compute(compute, name, stamp)
            self._write(path, digest, key, name, entry, seconds)
            return entry
        finally:
            lock.release()

    def _read(self, path: Path, digest: str, *, report: bool, stamp: str | None = None) -> Any:
        """The entry at ``path``, or _MISSING (absent; stale -- computed by other code or another
        ``version``; or broken -- then, when ``report``, warned and deleted)."""
        t0 = time.perf_counter()
        try:
            with np.load(path, allow_pickle=False) as npz:
                try:
                    manifest = json.loads(npz["manifest"].tobytes().decode("utf-8"))
                except (KeyError, ValueError, UnicodeDecodeError) as exc:
                    raise _Unreadable(f"manifest unreadable ({type(exc).__name__}: {exc})") from None
                if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                    raise _Unreadable(f"unknown format {manifest.get('format') if isinstance(manifest, dict) else '?'}")
                if manifest.get("digest") != digest:
                    raise _Unreadable(f"it holds digest {manifest.get('digest')!r}, its file name says {digest}")
                n = manifest["n_arrays"]
                arrays = [npz[f"a{i}"] for i in range(n)]
            structure_json = manifest["structure"]
            if _checksum(structure_json, arrays) != manifest["checksum"]:
                raise _Unreadable("checksum mismatch")
            for arr in arrays:
                arr.setflags(write=False)
            if stamp is not None and manifest.get("stamp") != stamp:
                if report:
                    self._stats["stale"] += 1
                return _MISSING  # computed by code that has changed since (or another version): recompute
            entry = _Entry(json.loads(structure_json), arrays, manifest.get("stamp"))
            entry.value()  # decodable (classes importable, fields match) before it counts as a hit
        except FileNotFoundError:
            return _MISSING
        except MemoryError:
            raise
        except Exception as exc:  # truncated zip, bad CRC, bad header, wrong manifest, undecodable value
            if report:
                reason = str(exc) if isinstance(exc, _Unreadable) else f"{type(exc).__name__}: {exc}"
                self._discard_corrupt(path, reason)
            return _MISSING
        self._stats["load_s"] += time.perf_counter() - t0
        self._stats["disk_hits"] += 1
        self._stats["saved_s"] += float(manifest.get("compute_s", 0.0))
        return entry

    def _discard_corrupt(self, path: Path, reason: str) -> None:
        self._stats["corrupt"] += 1
        try:
            path.unlink()
            action = "deleted it; recomputing"
        except FileNotFoundError:
            action = "it is gone; recomputing"
        except OSError as exc:
            action = f"could not delete it ({exc}); recomputing"
        warnings.warn(CacheCorruptWarning(
            f"pytest-ntk cache entry {path.parent.name}/{path.name} ({path}) is corrupt: {reason}; {action}"),
            stacklevel=4)

    def _warn_write(self, path: Path, name: str, reason: str) -> None:
        self._stats["write_errors"] += 1
        warnings.warn(CacheWarning(f"pytest-ntk cache entry {path.parent.name}/{path.name} ({path}): {reason}; "
                                   "the value was computed and not stored"), stacklevel=4)

    def _ensure_directory(self) -> None:
        """Create the cache directory; one we create gets a ``.gitignore`` of ``*`` (as pytest's own has)."""
        if self.directory.is_dir():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.directory / ".gitignore", "x") as f:
                f.write("# created by pytest-ntk's cache\n*\n")
        except FileExistsError:
            pass

    def _write(self, path: Path, digest: str, key: Any, name: str, entry: _Entry, compute_s: float) -> None:
        """Write the entry atomically: a temporary file in the same directory, then os.replace."""
        structure_json = json.dumps(entry.structure, sort_keys=True, separators=(",", ":"))
        manifest = {
            "format": FORMAT,
            "digest": digest,
            "name": name,
            "key": json.loads(canonical_json(key)),
            "environment": self.environment,
            "n_arrays": len(entry.arrays),
            "structure": structure_json,
            "checksum": _checksum(structure_json, entry.arrays),
            "stamp": entry.stamp,
            "compute_s": compute_s,
            "created": time.time(),
        }
        raw = np.frombuffer(json.dumps(manifest, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        tmp = None
        try:
            self._ensure_directory()
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                if hasattr(os, "fchmod"):  # mkstemp makes 0600 files: a shared cache dir needs them readable
                    os.fchmod(f.fileno(), _FILE_MODE)
                np.savez(f, manifest=raw, **{f"a{i}": a for i, a in enumerate(entry.arrays)})
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            self._warn_write(path, name, f"cannot write it ({exc})")
            return
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        self._stats["writes"] += 1


def clear_entries(directory: str | os.PathLike) -> int:
    """Delete the cache entries (and lock and temporary files) under ``directory``; return how many entries.

    Only files the cache writes are touched (``<name>/<64 hex>.npz``, ``<name>/.tmp-*``,
    ``.locks/<64 hex>.lock``), so pointing it at a directory that holds other files is safe. For
    ``--cache-clear`` with ``--ntk-cache-dir``: call it once, in the controller, before any test runs
    (pytest's own cache directory is emptied by pytest itself).
    """
    root = Path(directory)
    if not root.is_dir():
        return 0
    count = 0
    for sub in root.iterdir():
        if not sub.is_dir():
            continue
        if sub.name == ".locks":
            for f in sub.glob("*.lock"):
                if _DIGEST_RE.match(f.stem):
                    f.unlink(missing_ok=True)
            continue
        for f in sub.iterdir():
            if f.suffix == ".npz" and _DIGEST_RE.match(f.stem):
                f.unlink(missing_ok=True)
                count += 1
            elif f.name.startswith(".tmp-") and f.suffix == ".npz":
                f.unlink(missing_ok=True)
    return count

