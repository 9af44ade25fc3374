"""Cache values: a value's pytree as JSON structure plus arrays (no pickle), and back.

See :mod:`pytest_ntk.science.cache` for what a value may be.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
from collections.abc import Mapping
from typing import Any

import numpy as np

from .keys import _ARRAY_KINDS, _is_array_like, _Unreadable


# ============================================================================ values
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


