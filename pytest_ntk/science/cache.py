r"""A content-addressed cache of trained networks, loss curves and kernels.

A cached value is found by the SHA-256 digest of a *key*: a JSON-ready description of everything
that determines the value (the network's ``describe()``, the data spec and seed, the training
settings, the profile, ...). The cache adds what the caller cannot see to the hashed payload --
the entry's ``name``, the versions of pytest-ntk, jax, jaxlib, numpy and scipy, a digest of
pytest-ntk's science-layer source, the installed accelerator plugins of jax, the machine
architecture and the environment variables that change JAX's numerics (:func:`environment`) --
so an upgrade, an edit of the science code or a move to a GPU never returns a stale value::

    digest = sha256( canonical_json({"format", "name", "key": key, "environment": environment()}) )

Three layers answer :meth:`Cache.get_or_compute`:

1. **memory** -- within one process the same digest returns the values already loaded or
   computed, without touching the disk (claims that share a trained network reuse it);
2. **disk** -- ``<directory>/<name>/<digest>.npz``: the arrays of the value plus a JSON manifest
   of its structure and a SHA-256 checksum of both (written to a temporary file in the same
   directory and moved into place with :func:`os.replace`, so no reader ever sees half an entry);
   a truncated, bit-flipped or undecodable entry is reported as a :class:`CacheCorruptWarning`,
   deleted and recomputed;
3. **compute** -- under a per-entry :class:`filelock.FileLock`, looking again after the lock is
   acquired, so concurrent processes (pytest-xdist workers) compute an entry once: the others wait
   and then read it.

What a value may be (the pytree is rebuilt with the same containers on every path, so a warm run
sees exactly what a cold run saw; arrays compare bitwise equal):

- ``numpy.ndarray`` and array-likes with ``__array__``, ``shape`` and ``dtype`` (JAX arrays):
  returned as **read-only** ``numpy.ndarray`` of the same dtype and shape (copy before mutating;
  one array may be shared by several claims). Object and structured dtypes are refused.
- numpy scalars (``np.float32(1.5)``: returned with their dtype), ``None``, ``bool``, ``int``,
  ``float`` (bit-exact, NaN and signed zeros included), ``complex``, ``str``, ``bytes``;
- ``list``, ``tuple``, ``dict`` (any mapping, returned as ``dict``; keys are scalars, strings or
  tuples of them), named tuples and dataclass instances whose class can be imported by
  ``module:qualname`` (not classes defined inside functions).

Nothing is pickled: an entry is an ``.npz`` read with ``allow_pickle=False`` plus JSON, so opening
a cache directory never runs code from it (restoring a dataclass imports its module by name).
The cache is a pure-Python/numpy module: it imports neither pytest nor jax.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import math
import os
import platform
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Cache",
    "CacheWarning",
    "CacheCorruptWarning",
    "canonical_json",
    "key_digest",
    "environment",
    "clear_entries",
    "code_digest",
    "FORMAT",
]

FORMAT = 1
"""Version of the on-disk layout; part of every digest (a new layout never reads an old one)."""

_PACKAGES = ("pytest-ntk", "jax", "jaxlib", "numpy", "scipy")
_ACCELERATOR_PREFIXES = ("jax-cuda", "jax-rocm", "jax_cuda", "jax_rocm", "libtpu", "jax-metal", "jax-tpu")
_NUMERIC_ENV = ("JAX_PLATFORMS", "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION", "XLA_FLAGS")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_DEFAULT_NAME = "entries"
_ARRAY_KINDS = set("biufcmMSU")
_FILE_MODE = 0o644


class CacheWarning(UserWarning):
    """The cache could not be used as intended (an entry could not be written); the value was computed."""


class CacheCorruptWarning(CacheWarning):
    """A cache entry was truncated, altered or undecodable: it was deleted and its value recomputed."""


class _Unreadable(Exception):
    """Raised inside the reader: why an entry on disk cannot be used."""


# ============================================================================ keys
def _canonical(obj: Any, where: str) -> Any:
    """The JSON-ready canonical form of a key (see :func:`canonical_json`)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(obj, (complex, np.complexfloating)):
        v = complex(obj)
        return {"__complex__": [_canonical(v.real, where), _canonical(v.imag, where)]}
    describe = getattr(obj, "describe", None)
    if callable(describe) and not isinstance(obj, type):
        return _canonical(describe(), f"{where}.describe()")
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ValueError(f"cache key: {where} has a non-string key {k!r}; key mappings need string keys")
            out[k] = _canonical(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _canonical(getattr(obj, f.name), f"{where}.{f.name}") for f in dataclasses.fields(obj)}
        return {"__dataclass__": f"{type(obj).__module__}:{type(obj).__qualname__}", "fields": fields}
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.ndarray) or _is_array_like(obj):
        arr = np.asarray(obj)
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise ValueError(f"cache key: {where} is an array of dtype {arr.dtype} that cannot be hashed")
        data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1) if arr.size else b""
        return {"__array__": {"dtype": arr.dtype.str, "shape": list(arr.shape),
                              "sha256": hashlib.sha256(data).hexdigest()}}
    raise ValueError(
        f"cache key: {where} = {obj!r} (type {type(obj).__name__}) cannot be part of a key; pass a JSON-ready "
        "description (numbers, strings, lists, dicts, arrays, dataclasses, objects with describe())"
    )


def canonical_json(key: Any) -> str:
    """Canonical JSON of ``key``: sorted keys, no whitespace, ASCII; equal descriptions give equal text.

    Mappings (string keys; their order is irrelevant), lists and tuples (both become JSON arrays),
    ``None``/bool/int/float/str and numpy scalars, complex numbers, paths (as strings), dataclasses
    (their class name and fields), objects with a ``describe()`` method (its result), and arrays
    (dtype, shape and the SHA-256 of their bytes, never their values). Non-finite floats are spelt
    ``{"__float__": "nan"}``. ``1`` and ``1.0`` differ (an int is not a float). Anything else is a
    ValueError naming where in the key it sits.
    """
    return json.dumps(_canonical(key, "key"), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _source_digest() -> str:
    """SHA-256 of pytest-ntk's science-layer sources: every ``.py`` under ``pytest_ntk/science/``.

    Only the science layer produces cached values; the plugin, the verdict model and the reports
    live outside this folder, so editing them never invalidates an entry."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts:
            continue
        h.update(rel.as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _environment() -> tuple[tuple[str, Any], ...]:
    env: dict[str, Any] = {}
    for dist in _PACKAGES:
        try:
            env[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            env[dist] = None
    if env["pytest-ntk"] is None:  # running from a source tree that is not installed
        env["pytest-ntk"] = importlib.import_module("pytest_ntk").__version__
    env["pytest-ntk-source"] = _source_digest()
    accelerators = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith(_ACCELERATOR_PREFIXES):
            accelerators[name] = dist.version
    env["accelerator-plugins"] = dict(sorted(accelerators.items()))
    env["machine"] = platform.machine()
    env["python"] = platform.python_version()
    env["env"] = {k: os.environ[k] for k in _NUMERIC_ENV if k in os.environ}
    return tuple(sorted(env.items()))


def environment() -> dict[str, Any]:
    """What the cache adds to every key: package versions, science-source digest, platform.

    ``{"pytest-ntk", "jax", "jaxlib", "numpy", "scipy"}``: installed versions (importlib.metadata,
    jax is not imported; ``None`` when absent); ``"pytest-ntk-source"``: SHA-256 of the science
    layer's source files (so an edit invalidates entries even when the version number does not
    change); ``"accelerator-plugins"``: versions of installed ``jax-cuda*``/``jax-rocm*``/``libtpu``
    distributions (a GPU install never reads a CPU install's entries); ``"machine"``: the CPU
    architecture; ``"env"``: ``JAX_PLATFORMS``, ``JAX_ENABLE_X64``, ``JAX_DEFAULT_MATMUL_PRECISION``
    and ``XLA_FLAGS`` where set. Computed once per process.
    """
    return json.loads(json.dumps(dict(_environment())))


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {name!r}")
    if name == "":
        return _DEFAULT_NAME
    if not _NAME_RE.match(name):
        raise ValueError(
            f"name must be 1-64 characters from letters, digits, '_', '.', '-' (not starting with '.', '_' "
            f"or '-'), got {name!r}"
        )
    return name


def _feed_code(h, code, depth: int = 0) -> None:
    h.update(code.co_code)
    h.update(("\0" + "\0".join(code.co_names) + "\0").encode())
    for const in code.co_consts:
        if inspect.iscode(const):
            if depth < 32:
                _feed_code(h, const, depth + 1)
        elif isinstance(const, frozenset):  # its repr's order follows string hashing, which varies by process
            h.update(repr(sorted(repr(c) for c in const)).encode())
        else:
            h.update(f"{type(const).__name__}:{const!r}\0".encode())


def code_digest(fn: Callable) -> str:
    """SHA-256 of a function's own code: bytecode, names, constants and nested functions' code.

    Editing the function's body (or a lambda's, or a nested function's) changes it; moving it,
    renaming its local variables or editing code it *calls* does not (a called helper is not
    followed: put a ``version`` in :meth:`Cache.get_or_compute`, or a digest of the helper's
    module in the key, as :class:`pytest_ntk.harness.suite.Suite` does for claim suites). Bound
    methods and ``functools.partial`` objects are read through to their function; a callable
    object through its class's ``__call__``.
    """
    h = hashlib.sha256()
    seen = 0
    while isinstance(fn, functools.partial) and seen < 16:
        fn, seen = fn.func, seen + 1
    fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        code = getattr(getattr(type(fn), "__call__", None), "__code__", None)
    if code is None:  # a builtin: its name is all there is
        h.update(f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', repr(type(fn)))}".encode())
    else:
        _feed_code(h, code)
    return h.hexdigest()


def _stamp(compute: Callable, version: Any) -> str:
    """What makes a stored value current: the code digest of the function that computes it, and ``version``."""
    return hashlib.sha256(json.dumps({"code": code_digest(compute), "version": _canonical(version, "version")},
                                     sort_keys=True).encode()).hexdigest()


def _payload(key: Any, name: str, env: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "name": _check_name(name), "key": _canonical(key, "key"), "environment": env}


def key_digest(key: Any, *, name: str = "", env: Mapping[str, Any] | None = None) -> str:
    """The hex SHA-256 of the canonical JSON of ``{format, name, key, environment}`` (see the module doc).

    ``env`` defaults to :func:`environment`; pass another mapping to see what an upgrade would do.
    """
    payload = _payload(key, name, environment() if env is None else env)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# ============================================================================ values
def _is_array_like(obj: Any) -> bool:
    return hasattr(obj, "__array__") and hasattr(obj, "shape") and hasattr(obj, "dtype")


def _class_path(cls: type, where: str) -> str:
    module, qualname = cls.__module__, cls.__qualname__
    if "<locals>" in qualname or _resolve_class(f"{module}:{qualname}") is not cls:
        raise ValueError(
            f"cache value: {where} is a {qualname} defined where it cannot be imported back "
            f"({module}:{qualname}); define the class at module level"
        )
    return f"{module}:{qualname}"


def _resolve_class(path: str) -> Any:
    module, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        return None
    return obj


def _array_node(arr: np.ndarray, where: str, arrays: list[np.ndarray], tag: str) -> dict[str, Any]:
    if arr.dtype.kind not in _ARRAY_KINDS or arr.dtype.fields is not None:
        raise ValueError(f"cache value: {where} is an array of dtype {arr.dtype}, which the cache cannot store "
                         "without pickle (numeric, bool, datetime and string dtypes only)")
    arr = np.array(arr, copy=True, order="C")  # own, contiguous memory: later mutations by the caller don't leak in
    arr.setflags(write=False)
    arrays.append(arr)
    return {"t": tag, "i": len(arrays) - 1}


def _encode(obj: Any, where: str, arrays: list[np.ndarray]) -> dict[str, Any]:
    """The JSON structure of a value; its arrays are appended to ``arrays`` (referenced by index)."""
    if obj is None:
        return {"t": "none"}
    if isinstance(obj, np.generic):
        return _array_node(np.asarray(obj), where, arrays, "scalar")
    if isinstance(obj, np.ndarray):
        return _array_node(obj, where, arrays, "array")
    if isinstance(obj, bool):
        return {"t": "bool", "v": obj}
    if isinstance(obj, int):
        return {"t": "int", "v": int(obj)}
    if isinstance(obj, float):
        return {"t": "float", "v": float(obj).hex()}
    if isinstance(obj, complex):
        return {"t": "complex", "v": [obj.real.hex(), obj.imag.hex()]}
    if isinstance(obj, str):
        return {"t": "str", "v": str(obj)}
    if isinstance(obj, bytes):
        return {"t": "bytes", "v": obj.hex()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = _class_path(type(obj), where)
        fields = {f.name: _encode(getattr(obj, f.name), f"{where}.{f.name}", arrays)
                  for f in dataclasses.fields(obj)}
        return {"t": "dataclass", "cls": cls, "f": fields}
    if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):
        cls = _class_path(type(obj), where)
        return {"t": "namedtuple", "cls": cls, "v": [_encode(v, f"{where}[{i}]", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, (list, tuple)):
        return {"t": "list" if isinstance(obj, list) else "tuple",
                "v": [_encode(v, f"{where}[{i}]", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, Mapping):
        keys, values = [], []
        for k, v in obj.items():
            node = _encode(k, f"{where} key {k!r}", arrays)
            if not _scalar_node(node):
                raise ValueError(f"cache value: {where} has key {k!r}; mapping keys must be scalars, strings "
                                 "or tuples of them")
            keys.append(node)
            values.append(_encode(v, f"{where}[{k!r}]", arrays))
        return {"t": "dict", "k": keys, "v": values}
    if _is_array_like(obj):  # JAX arrays and other array-likes
        return _array_node(np.asarray(obj), where, arrays, "array")
    raise ValueError(
        f"cache value: {where} = {obj!r:.80} (type {type(obj).__name__}) cannot be stored; supported: arrays, "
        "numpy scalars, None/bool/int/float/complex/str/bytes, lists, tuples, dicts, named tuples, dataclasses"
    )


def _scalar_node(node: dict[str, Any]) -> bool:
    if node["t"] == "tuple":
        return all(_scalar_node(n) for n in node["v"])
    return node["t"] in ("none", "bool", "int", "float", "complex", "str", "bytes")


def _decode(node: Any, arrays: list[np.ndarray]) -> Any:
    """Rebuild a value from its structure (fresh containers; the read-only arrays are shared)."""
    t = node["t"]
    if t == "none":
        return None
    if t == "array":
        return arrays[node["i"]]
    if t == "scalar":
        return arrays[node["i"]][()]
    if t == "bool":
        return bool(node["v"])
    if t == "int":
        return int(node["v"])
    if t == "float":
        return float.fromhex(node["v"])
    if t == "complex":
        return complex(float.fromhex(node["v"][0]), float.fromhex(node["v"][1]))
    if t == "str":
        return str(node["v"])
    if t == "bytes":
        return bytes.fromhex(node["v"])
    if t == "list":
        return [_decode(n, arrays) for n in node["v"]]
    if t == "tuple":
        return tuple(_decode(n, arrays) for n in node["v"])
    if t == "dict":
        return {_decode(k, arrays): _decode(v, arrays) for k, v in zip(node["k"], node["v"], strict=True)}
    if t == "namedtuple":
        cls = _resolve_class(node["cls"])
        if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise _Unreadable(f"named tuple class {node['cls']} cannot be imported")
        return cls(*(_decode(n, arrays) for n in node["v"]))
    if t == "dataclass":
        cls = _resolve_class(node["cls"])
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise _Unreadable(f"dataclass {node['cls']} cannot be imported")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if set(fields) != set(node["f"]):
            raise _Unreadable(f"dataclass {node['cls']} now has fields {sorted(fields)}, the entry has "
                              f"{sorted(node['f'])}")
        values = {name: _decode(n, arrays) for name, n in node["f"].items()}
        obj = cls(**{k: v for k, v in values.items() if fields[k].init})
        for k, v in values.items():
            if not fields[k].init:
                object.__setattr__(obj, k, v)
        return obj
    raise _Unreadable(f"unknown node type {t!r}")


def _checksum(structure_json: str, arrays: list[np.ndarray]) -> str:
    """SHA-256 over the structure's JSON and each array's index, dtype, shape and bytes."""
    h = hashlib.sha256(structure_json.encode("utf-8"))
    for i, arr in enumerate(arrays):
        h.update(f"\0{i}:{arr.dtype.str}:{arr.shape}\0".encode())
        if arr.size:
            h.update(np.ascontiguousarray(arr).view(np.uint8).reshape(-1).data)
    return h.hexdigest()


class _Entry:
    """A value in memory: its structure and read-only arrays (decoded afresh on each hit)."""

    __slots__ = ("structure", "arrays", "stamp")

    def __init__(self, structure: dict[str, Any], arrays: list[np.ndarray], stamp: str | None = None):
        self.structure = structure
        self.arrays = arrays
        self.stamp = stamp

    def value(self) -> Any:
        return _decode(self.structure, self.arrays)


_MISSING = object()


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
