"""Cache keys: the canonical JSON of a key, the environment mixed into every digest, code stamps.

See :mod:`pytest_ntk.science.cache` for how the cache uses them.
"""

from __future__ import annotations

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

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
def _is_array_like(obj: Any) -> bool:
    return hasattr(obj, "__array__") and hasattr(obj, "shape") and hasattr(obj, "dtype")


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


def _source_digest(root: Path | None = None) -> str:
    """SHA-256 of pytest-ntk's science-layer sources: every ``.py`` under ``pytest_ntk/science/``
    (``root``, for tests), with its path relative to that folder.

    Only the science layer produces cached values -- the training programs (``train.py``,
    ``sgd_fast.py``), the kernels, the empirical NTKs -- so any edit there invalidates every entry;
    the plugin, the verdict model and the reports live outside this folder, so editing them never
    does."""
    root = Path(__file__).resolve().parent.parent if root is None else root  # pytest_ntk/science
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


