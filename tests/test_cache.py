"""pytest_ntk.science.cache: content-addressed keys, exact round trips, memo/disk/compute layers,
corruption handling, process safety, and the `ntk_cache` fixture in real pytest runs."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import functools
import json
import math
import os
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

import pytest_ntk
from pytest_ntk.science.cache import (
    FORMAT,
    Cache,
    CacheCorruptWarning,
    CacheWarning,
    canonical_json,
    code_digest,
    clear_entries,
    environment,
    key_digest,
)


def _SAME():
    """Passed as ``code=`` where a test computes a value with one callable and reads it back with another
    (a lambda that fails if called): the entry's stamp is this function's code, the same on both calls."""



# ---------------------------------------------------------------------------- helpers
@dataclasses.dataclass(frozen=True)
class Trained:
    params: list
    losses: np.ndarray
    lr: float
    note: str = "x"
    derived: int = dataclasses.field(default=0, init=False)


class Pair(NamedTuple):
    first: object
    second: object


class Counter:
    """A compute function that counts its calls and returns a fresh copy of ``value`` each time."""

    def __init__(self, make):
        self.make = make
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.make()


def assert_same(a, b, where="value"):
    """Exact equality: same container types, same array dtypes/shapes/bytes, bit-equal floats."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
        return
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert a.hex() == b.hex() or (math.isnan(a) and math.isnan(b)), where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, where


def pytree():
    rng = np.random.default_rng(0)
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal((5,)),
        "i64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "i8": np.array([-3, 0, 7], dtype=np.int8),
        "bool": np.array([True, False]),
        "empty": np.zeros((0, 3)),
        "zero_d": np.array(2.5),
        "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
        "scalars": (np.float32(0.1), np.float64(-0.0), np.int32(-7), np.bool_(True)),
        "py": [1, 2**70, 0.1, -0.0, float("nan"), float("inf"), 1 + 2j, "text ü", b"\x00\xff", None, True],
        7: "int key",
        (1, "a"): "tuple key",
        "nested": {"params": [{"W": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}]},
        "dc": Trained(params=[np.eye(2)], losses=np.array([3.0, 1.0]), lr=0.5),
        "nt": Pair(np.arange(3), ("a", 1.5)),
    }


def expected_form(value):
    """What the cache returns for ``value``, built independently: arrays as C-ordered numpy copies."""
    if isinstance(value, np.ndarray):
        return np.array(value, order="C")
    if isinstance(value, dict):
        return {k: expected_form(v) for k, v in value.items()}
    if isinstance(value, Pair):
        return Pair(*(expected_form(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(expected_form(v) for v in value)
    if isinstance(value, Trained):
        return Trained(params=expected_form(value.params), losses=value.losses, lr=value.lr, note=value.note)
    return value


# ---------------------------------------------------------------------------- round trips
def test_roundtrip_nested_pytree_is_exact_on_every_path(tmp_path):
    compute = Counter(pytree)
    cold = Cache(tmp_path).get_or_compute({"k": 1}, compute, name="tree", code=_SAME)
    expected = expected_form(pytree())
    assert_same(expected, cold)
    warm_cache = Cache(tmp_path)
    warm = warm_cache.get_or_compute({"k": 1}, compute, name="tree", code=_SAME)
    memo = warm_cache.get_or_compute({"k": 1}, compute, name="tree", code=_SAME)
    assert compute.calls == 1
    assert_same(expected, warm)
    assert_same(expected, memo)
    assert warm["dc"].derived == 0 and isinstance(warm["nt"], Pair)
    assert warm_cache.stats()["disk_hits"] == 1 and warm_cache.stats()["memory_hits"] == 1


def test_jax_arrays_come_back_as_numpy_bitwise(tmp_path):
    jax = pytest.importorskip("jax")
    from pytest_ntk.science.numerics import x64

    def compute():
        with x64():
            k = jax.random.PRNGKey(3)
            a = jax.random.normal(k, (4, 3), dtype=jax.numpy.float64)
            b = jax.random.normal(k, (4, 3), dtype=jax.numpy.float32)
            return {"f64": a @ a.T, "f32": b, "int": jax.numpy.arange(3)}

    direct = jax.tree_util.tree_map(np.asarray, compute())
    cold = Cache(tmp_path).get_or_compute({"jax": 1}, compute, name="jax", code=_SAME)
    warm = Cache(tmp_path).get_or_compute({"jax": 1}, lambda: pytest.fail("recomputed"), name="jax", code=_SAME)
    for k in direct:
        assert_same(np.asarray(direct[k]), cold[k])
        assert_same(np.asarray(direct[k]), warm[k])
    assert cold["f64"].dtype == np.float64 and cold["f32"].dtype == np.float32


def test_trained_network_parameters_identical_warm_and_cold(tmp_path):
    jax = pytest.importorskip("jax")
    from pytest_ntk.science.nets import FullyConnected
    from pytest_ntk.science.numerics import x64

    model = FullyConnected(depth=2, width=16)

    def init():
        with x64():
            return model.init(jax.random.PRNGKey(0), 3, dtype=jax.numpy.float64)

    key = {"model": model.describe(), "seed": 0, "in_dim": 3}
    cold = Cache(tmp_path).get_or_compute(key, init, name="init", code=_SAME)
    warm = Cache(tmp_path).get_or_compute(key, lambda: pytest.fail("recomputed"), name="init", code=_SAME)
    again = jax.tree_util.tree_map(np.asarray, init())  # an independent recomputation
    assert_same(again, cold)
    assert_same(again, warm)
    with x64():
        x = np.linspace(-1, 1, 6).reshape(2, 3)
        assert np.asarray(model.apply(warm, x)).tobytes() == np.asarray(model.apply(again, x)).tobytes()


def test_returned_arrays_are_read_only_and_containers_fresh(tmp_path):
    original = {"a": np.arange(3.0), "l": [1, 2]}
    cache = Cache(tmp_path)
    first = cache.get_or_compute("k", lambda: original, name="ro", code=_SAME)
    original["a"][0] = 99.0  # the caller's own array: the cached copy must not follow
    with pytest.raises(ValueError, match="read-only"):
        first["a"][1] = 5.0
    first["l"].append(3)  # containers are rebuilt on every hit
    second = cache.get_or_compute("k", lambda: pytest.fail("recomputed"), name="ro", code=_SAME)
    assert second["l"] == [1, 2]
    assert second["a"].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("bad, where", [
    ({"f": lambda x: x}, "['f']"),
    ({"obj": np.array([object()], dtype=object)}, "['obj']"),
    ([1, {2, 3}], "[1]"),
    ({np.float32(1): 1}, " has key"),
])
def test_unstorable_values_are_a_value_error_naming_where(tmp_path, bad, where):
    cache = Cache(tmp_path)
    with pytest.raises(ValueError) as info:
        cache.get_or_compute("k", lambda: bad, name="bad", code=_SAME)
    assert f"bad value{where}" in str(info.value)
    assert not (tmp_path / "bad").exists()  # nothing written


def test_local_dataclass_is_refused():
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(ValueError, match="module level"):
        Cache(None).get_or_compute("k", lambda: Local(1), name="local", code=_SAME)


# ---------------------------------------------------------------------------- keys
def test_key_digest_is_sha256_of_canonical_json_with_environment():
    key = {"b": [1, 2.5, None], "a": {"y": True, "x": "s"}}
    env = {"numpy": "1.0"}
    payload = {"format": FORMAT, "name": "kern", "environment": env,
               "key": {"a": {"x": "s", "y": True}, "b": [1, 2.5, None]}}
    by_hand = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert key_digest(key, name="kern", env=env) == by_hand


def test_key_order_irrelevant_values_relevant():
    a = {"model": {"depth": 2, "width": 8}, "seed": 0, "lr": 0.1}
    b = {"lr": 0.1, "seed": 0, "model": {"width": 8, "depth": 2}}
    assert canonical_json(a) == canonical_json(b)
    assert key_digest(a) == key_digest(b)
    variants = [dict(a, seed=1), dict(a, lr=0.10000000000000002), dict(a, lr=1), dict(a, model={"depth": 2}),
                dict(a, extra=None)]
    digests = {key_digest(v) for v in variants} | {key_digest(a)}
    assert len(digests) == len(variants) + 1
    assert key_digest(a, name="x") != key_digest(a, name="y")
    assert key_digest({"lr": 1}) != key_digest({"lr": 1.0})  # an int is not a float
    assert key_digest((1, 2)) == key_digest([1, 2])


def test_key_arrays_numpy_scalars_describe_and_nonfinite():
    x = np.linspace(0, 1, 5)
    assert key_digest({"x": x}) == key_digest({"x": x.copy()})
    assert key_digest({"x": x}) != key_digest({"x": x.astype(np.float32)})
    y = x.copy()
    y[2] += 1e-15
    assert key_digest({"x": x}) != key_digest({"x": y})
    assert key_digest({"s": np.int64(3), "f": np.float64(0.5)}) == key_digest({"s": 3, "f": 0.5})
    assert key_digest({"v": float("nan")}) != key_digest({"v": float("inf")})

    class Model:
        def describe(self):
            return {"kind": "FC", "width": 8}

    assert key_digest({"model": Model()}) == key_digest({"model": {"kind": "FC", "width": 8}})


@pytest.mark.parametrize("bad", [{1: "a"}, {"f": print}, {"s": {1, 2}}])
def test_bad_keys_are_value_errors(bad):
    with pytest.raises(ValueError, match="key"):
        key_digest(bad)


def test_every_science_source_is_in_the_digest_and_nothing_else(tmp_path):
    """A cached training result must not outlive the program that trained it: an edit of any file
    of the science layer (here the fused SGD program and the reference one) changes the source
    digest, hence every key; a file outside it (the plugin) does not."""
    import shutil

    from pytest_ntk.science.cache.keys import _source_digest

    package = Path(pytest_ntk.__file__).resolve().parent
    science = tmp_path / "science"
    shutil.copytree(package / "science", science, ignore=shutil.ignore_patterns("__pycache__"))
    assert _source_digest(science) == environment()["pytest-ntk-source"]
    seen = {_source_digest(science)}
    for rel in ("sgd_fast.py", "train.py", "kernels/analytic.py"):
        path = science / rel
        path.write_text(path.read_text() + "\n# edited\n")
        seen.add(_source_digest(science))
    assert len(seen) == 4
    (tmp_path / "plugin.py").write_text("# outside the science layer\n")
    assert _source_digest(science) in seen


def test_environment_holds_installed_versions_and_changes_the_digest(tmp_path):
    env = environment()
    for dist in ("jax", "jaxlib", "numpy"):
        assert env[dist] == importlib.metadata.version(dist)
    assert env["pytest-ntk"] in (importlib.metadata.version("pytest-ntk"),)
    assert len(env["pytest-ntk-source"]) == 64
    upgraded = dict(env, jax="99.0")
    assert key_digest("k") == key_digest("k", env=env)
    assert key_digest("k", env=upgraded) != key_digest("k", env=env)
    # an upgrade is a miss: the old entry is never read
    old = Cache(tmp_path, env=env)
    new = Cache(tmp_path, env=upgraded)
    compute = Counter(lambda: np.arange(2))
    old.get_or_compute("k", compute, name="v", code=_SAME)
    new.get_or_compute("k", compute, name="v", code=_SAME)
    assert compute.calls == 2
    with np.load(old.entry_path("k", name="v")) as npz:
        manifest = json.loads(npz["manifest"].tobytes())
    assert manifest["environment"]["numpy"] == np.__version__ and manifest["name"] == "v"


def test_bad_name_is_a_value_error():
    with pytest.raises(ValueError, match="name"):
        Cache(None).get_or_compute("k", lambda: 1, name="../escape", code=_SAME)


# ---------------------------------------------------------------------------- layers
def test_memory_hit_does_not_touch_disk(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    compute = Counter(lambda: np.arange(4.0))
    cache.get_or_compute("k", compute, name="m", code=_SAME)
    cache.entry_path("k", name="m").unlink()  # the disk copy is gone
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("read the disk"))
    again = cache.get_or_compute("k", compute, name="m", code=_SAME)
    assert compute.calls == 1 and again.tolist() == [0.0, 1.0, 2.0, 3.0]
    s = cache.stats()
    assert (s["memory_hits"], s["disk_hits"], s["misses"], s["writes"], s["hits"]) == (1, 0, 1, 1, 1)


def test_disk_hit_in_a_new_instance(tmp_path):
    compute = Counter(lambda: {"k": np.full((2, 2), 3.0)})
    Cache(tmp_path).get_or_compute({"a": 1}, compute, name="d", code=_SAME)
    fresh = Cache(tmp_path)
    value = fresh.get_or_compute({"a": 1}, compute, name="d", code=_SAME)
    assert compute.calls == 1 and value["k"].sum() == 12.0
    s = fresh.stats()
    assert (s["disk_hits"], s["misses"], s["writes"]) == (1, 0, 0)
    assert s["saved_s"] >= 0 and s["load_s"] > 0
    assert "1 disk" in fresh.summary()


def test_memory_only_cache_without_directory():
    cache = Cache(None)
    compute = Counter(lambda: [np.ones(2)])
    cache.get_or_compute("k", compute)
    cache.get_or_compute("k", compute)
    assert compute.calls == 1 and cache.entry_path("k") is None
    assert cache.stats()["memory_hits"] == 1


def test_disabled_cache_computes_every_time(tmp_path):
    cache = Cache(tmp_path, enabled=False)
    compute = Counter(lambda: {"a": np.arange(3)})
    values = [cache.get_or_compute("k", compute, name="n", code=_SAME) for _ in range(3)]
    assert compute.calls == 3
    assert not any(tmp_path.iterdir())
    assert all(v["a"].flags.writeable is False for v in values)  # same form as when caching
    s = cache.stats()
    assert (s["hits"], s["misses"], s["writes"], s["enabled"]) == (0, 3, 0, False)
    with pytest.raises(ValueError, match="key"):  # keys are checked in every mode
        cache.get_or_compute({"f": print}, compute)


def test_compute_errors_propagate_and_store_nothing(tmp_path):
    cache = Cache(tmp_path)

    def boom():
        raise ZeroDivisionError("diverged")

    with pytest.raises(ZeroDivisionError):
        cache.get_or_compute("k", boom, name="e", code=_SAME)
    assert not cache.entry_path("k", name="e").exists()
    assert cache.get_or_compute("k", lambda: 1, name="e", code=_SAME) == 1


def test_half_written_temporary_file_is_never_read(tmp_path):
    cache = Cache(tmp_path)
    path = cache.entry_path("k", name="t")
    path.parent.mkdir(parents=True)
    (path.parent / ".tmp-abc.npz").write_bytes(b"PK\x03\x04half")
    assert cache.get_or_compute("k", lambda: 5, name="t", code=_SAME) == 5
    assert path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == [".tmp-abc.npz", path.name]


def test_unwritable_directory_warns_and_returns_the_value(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = Cache(blocker)
    with pytest.warns(CacheWarning, match="not stored"):
        assert cache.get_or_compute("k", lambda: 3, name="w", code=_SAME) == 3
    assert cache.get_or_compute("k", lambda: pytest.fail("recomputed"), name="w", code=_SAME) == 3  # memo still works


def test_memoize_binds_arguments_into_the_key(tmp_path):
    cache = Cache(tmp_path)
    calls = []

    @cache.memoize("square", key={"profile": "quick"})
    def square(x, power=2):
        calls.append(x)
        return np.full(2, float(x) ** power)

    assert square(3).tolist() == [9.0, 9.0]
    assert square(x=3, power=2).tolist() == [9.0, 9.0]
    assert square(3, 3).tolist() == [27.0, 27.0]
    assert calls == [3, 3]
    assert Cache(tmp_path).entry_path(
        {"function": "square", "arguments": {"x": 3, "power": 2}, "profile": "quick"}, name="square").exists()


# ---------------------------------------------------------------------------- corruption
def _write_entry(tmp_path, value=None):
    value = {"K": np.arange(64, dtype=np.float64).reshape(8, 8)} if value is None else value
    cache = Cache(tmp_path)
    cache.get_or_compute("k", lambda: value, name="c", code=_SAME)
    return cache.entry_path("k", name="c"), value


def _assert_recomputed(tmp_path, path, value, match):
    compute = Counter(lambda: value)
    with pytest.warns(CacheCorruptWarning, match=match) as record:
        got = Cache(tmp_path).get_or_compute("k", compute, name="c", code=_SAME)
    assert compute.calls == 1
    assert path.name in str(record[0].message)  # names the entry
    assert_same(expected_form(value), got)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry is sound: a clean disk hit
        again = Cache(tmp_path)
        assert_same(expected_form(value), again.get_or_compute("k", lambda: pytest.fail("recomputed"), name="c", code=_SAME))
        assert again.stats()["disk_hits"] == 1


@pytest.mark.parametrize("cut", [0, 10, 0.5, -1])
def test_truncated_entry_warns_and_recomputes(tmp_path, cut):
    path, value = _write_entry(tmp_path)
    data = path.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (len(data) + cut if cut < 0 else cut)
    path.write_bytes(data[:n])
    _assert_recomputed(tmp_path, path, value, "corrupt")


def test_flipped_byte_in_array_data_warns_and_recomputes(tmp_path):
    path, value = _write_entry(tmp_path)
    data = bytearray(path.read_bytes())
    at = bytes(data).find(value["K"].tobytes())
    assert at > 0
    data[at + 100] ^= 0x01
    path.write_bytes(bytes(data))
    _assert_recomputed(tmp_path, path, value, "corrupt")


def test_altered_array_with_valid_zip_fails_the_checksum(tmp_path):
    path, value = _write_entry(tmp_path)
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    members["a0"] = members["a0"].copy()
    members["a0"][3, 3] = -1.0
    np.savez(path, **members)  # a well-formed zip whose array no longer matches the manifest
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
    _assert_recomputed(tmp_path, path, value, "checksum")


def test_entry_under_the_wrong_name_is_rejected(tmp_path):
    path, value = _write_entry(tmp_path)
    other = Cache(tmp_path).entry_path("other", name="c")
    path.rename(other)  # a file whose content belongs to another digest
    compute = Counter(lambda: 1)
    with pytest.warns(CacheCorruptWarning, match="digest"):
        assert Cache(tmp_path).get_or_compute("other", compute, name="c", code=_SAME) == 1


def test_garbage_file_warns_and_recomputes(tmp_path):
    path, value = _write_entry(tmp_path)
    path.write_bytes(b"this is not a zip file at all")
    _assert_recomputed(tmp_path, path, value, "corrupt")


# ---------------------------------------------------------------------------- processes
CONTENDER = """
import json, os, sys, time
from pathlib import Path
import numpy as np

import pytest_ntk.science.cache as cache_module  # pure Python and numpy: the child starts fast
directory, log, rendezvous, me = sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5]

def compute():
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(0.5)
    return {"K": np.arange(12.0).reshape(3, 4) * 0.1}

cache = cache_module.Cache(directory)
(rendezvous / f"ready-{me}").touch()
while not (rendezvous / "go").exists():  # all four ask at the same moment
    time.sleep(0.005)
value = cache.get_or_compute({"shared": True}, compute, name="race")
s = cache.stats()
digest = cache_module.key_digest({"a": "x", "b": (1, 2.5)}, name="p")  # stable across processes
print(json.dumps({"K": value["K"].tobytes().hex(), "misses": s["misses"], "disk_hits": s["disk_hits"],
                  "digest": digest}))
"""


def test_concurrent_processes_compute_once(tmp_path):
    import pytest_ntk.science.cache as cache_module

    script = tmp_path / "contender.py"
    script.write_text(CONTENDER)
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    log = tmp_path / "computed.log"
    procs = [subprocess.Popen([sys.executable, str(script), cache_module.__file__, str(tmp_path / "cache"), str(log),
                               str(rendezvous), str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONHASHSEED=str(i)))
             for i in range(4)]
    deadline = time.monotonic() + 120
    while len(list(rendezvous.glob("ready-*"))) < 4 and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.01)
    (rendezvous / "go").touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    got = [json.loads(out) for out, _ in outputs]
    assert len(log.read_text().splitlines()) == 1  # computed exactly once
    assert {g["K"] for g in got} == {(np.arange(12.0).reshape(3, 4) * 0.1).tobytes().hex()}
    assert sorted((g["misses"], g["disk_hits"]) for g in got) == [(0, 1), (0, 1), (0, 1), (1, 0)]
    assert not list((tmp_path / "cache" / "race").glob(".tmp-*"))
    assert {g["digest"] for g in got} == {key_digest({"b": [1, 2.5], "a": "x"}, name="p")}


# ---------------------------------------------------------------------------- configuration
class FakeConfig:
    def __init__(self, cache_dir=None, no_cache=False, provider=None, invocation_dir=".", cache_clear=False):
        self._options = {"ntk_cache_dir": cache_dir, "ntk_no_cache": no_cache, "cacheclear": cache_clear}
        if provider is not None:
            self.cache = provider
        self.invocation_params = type("P", (), {"dir": invocation_dir})()

    def getoption(self, name):
        return self._options[name]


class FakeProvider:
    def __init__(self, root):
        self.root = root

    def mkdir(self, name):
        path = self.root / "d" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def test_cache_directory_from_the_options(tmp_path):
    from pytest_ntk.harness.options import cache_directory

    assert cache_directory(FakeConfig(provider=FakeProvider(tmp_path), invocation_dir=tmp_path)) == (
        tmp_path / "d" / "ntk", True)
    assert cache_directory(FakeConfig(invocation_dir=tmp_path)) == (None, True)  # -p no:cacheprovider: memory only
    explicit = cache_directory(FakeConfig(cache_dir="rel", provider=FakeProvider(tmp_path), invocation_dir=tmp_path))
    assert explicit == (tmp_path / "rel", True)
    assert cache_directory(FakeConfig(cache_dir="x", no_cache=True, provider=FakeProvider(tmp_path))) == (None, False)


def test_clear_at_start_clears_an_explicit_directory_in_the_controller_only(tmp_path):
    from pytest_ntk.harness.options import clear_cache_at_start

    Cache(tmp_path / "c").get_or_compute("a", lambda: 1, name="one", code=_SAME)
    worker = FakeConfig(cache_dir=str(tmp_path / "c"), cache_clear=True, invocation_dir=tmp_path)
    worker.workerinput = {}
    assert clear_cache_at_start(worker) == 0
    assert clear_cache_at_start(FakeConfig(cache_dir=str(tmp_path / "c"), invocation_dir=tmp_path)) == 0
    assert clear_cache_at_start(FakeConfig(cache_dir=str(tmp_path / "c"), cache_clear=True,
                                           invocation_dir=tmp_path)) == 1
    assert not list((tmp_path / "c" / "one").glob("*.npz"))


# ---------------------------------------------------------------------------- stale values
def _compute_v1():
    return np.arange(3.0)


def _compute_v2():
    return np.arange(3.0) * 2  # the same function, edited


def test_an_edited_function_never_gets_its_old_value(tmp_path):
    """The entry is stamped with the computing function's code: an edit of its body is a recompute."""
    assert code_digest(_compute_v1) != code_digest(_compute_v2)
    Cache(tmp_path).get_or_compute("k", _compute_v1, name="s")
    fresh = Cache(tmp_path)  # a later run, with the function edited
    assert fresh.get_or_compute("k", _compute_v2, name="s").tolist() == [0.0, 2.0, 4.0]
    assert fresh.stats()["stale"] == 1 and fresh.stats()["misses"] == 1
    again = Cache(tmp_path)
    assert again.get_or_compute("k", _compute_v2, name="s").tolist() == [0.0, 2.0, 4.0]
    assert again.stats()["disk_hits"] == 1
    same = Cache(tmp_path)
    assert same.get_or_compute("k", _compute_v2, name="s", version=2).tolist() == [0.0, 2.0, 4.0]
    assert same.stats()["stale"] == 1  # a new version recomputes too


def test_code_digest_ignores_position_but_not_constants_or_called_names():
    def f(x=1):
        return np.sum([x, 2])

    def g(x=1):
        return np.sum([x, 2])

    def h(x=1):
        return np.sum([x, 3])

    def k(x=1):
        return np.prod([x, 2])

    assert code_digest(f) == code_digest(g)
    assert len({code_digest(f), code_digest(h), code_digest(k)}) == 3
    assert code_digest(functools.partial(f, 2)) == code_digest(f)
    assert code_digest(lambda: {1, 2} <= frozenset({"a", "b"})) == code_digest(lambda: {1, 2} <= frozenset({"a", "b"}))


def test_nested_computations_count_their_time_once(tmp_path, monkeypatch):
    """A computation that asks the cache for another counts that time once (a fake clock: no timing)."""
    from pytest_ntk.science.cache import store

    clock = [0.0]
    monkeypatch.setattr(store, "time", type("FakeTime", (), {"perf_counter": staticmethod(lambda: clock[0]),
                                                            "time": staticmethod(lambda: clock[0])}))
    cache = Cache(tmp_path)

    def inner():
        clock[0] += 5.0
        return 1

    def outer():
        clock[0] += 3.0
        return cache.get_or_compute("inner", inner, name="n") + 1

    cache.get_or_compute("outer", outer, name="n")
    assert cache.stats()["compute_s"] == 8.0  # not 13: the inner 5 s are inside the outer 8 s


def test_clear_entries_removes_only_cache_files(tmp_path):
    cache = Cache(tmp_path)
    cache.get_or_compute("a", lambda: 1, name="one", code=_SAME)
    cache.get_or_compute("b", lambda: 2, name="two", code=_SAME)
    (tmp_path / "one" / "notes.txt").write_text("mine")
    (tmp_path / "keep.npz").write_bytes(b"")
    assert clear_entries(tmp_path) == 2
    assert (tmp_path / "one" / "notes.txt").exists() and (tmp_path / "keep.npz").exists()
    assert not list(tmp_path.rglob("*.lock"))
    assert Cache.add_stats({"hits": 1, "directory": "a"}, {"hits": 2, "directory": "b"}) == {"hits": 3,
                                                                                              "directory": "a"}


# ---------------------------------------------------------------------------- in pytest runs
CLAIMS = """
import os, time
import numpy as np
import pytest

import pytest_ntk

LOG = {log!r}

def compute():
    with open(LOG, "a") as f:
        f.write("compute " + os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
    time.sleep({sleep})
    return {{"K": np.full((3, 3), 2.0), "n": 3}}

@pytest.mark.claim("cache.first", source="test", statement="the cached kernel sums to 18")
def test_first(claim, ntk_cache):
    value = ntk_cache.get_or_compute({{"what": "shared kernel"}}, compute, name="shared")
    claim.close(float(value["K"].sum()), 18.0)

@pytest.mark.claim("cache.second", source="test", statement="the same kernel, shared")
def test_second(claim, ntk_cache):
    value = ntk_cache.get_or_compute({{"what": "shared kernel"}}, compute, name="shared")
    claim.close(float(value["K"].sum()), 18.0)
"""


def _claims(pytester, sleep=0.0):
    log = pytester.path / "computed.log"
    pytester.makepyfile(test_claims=CLAIMS.format(log=str(log), sleep=sleep))
    return log


def _computes(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_fixture_memo_then_disk_then_cache_clear_then_no_cache(pytester):
    log = _claims(pytester)
    pytester.runpytest().assert_outcomes(passed=2)
    assert len(_computes(log)) == 1  # the second claim reused the first's value (memory)
    assert list((pytester.path / ".pytest_cache" / "d" / "ntk" / "shared").glob("*.npz"))
    pytester.runpytest().assert_outcomes(passed=2)
    assert len(_computes(log)) == 1  # warm run: from disk
    pytester.runpytest("--cache-clear").assert_outcomes(passed=2)
    assert len(_computes(log)) == 2  # cleared: computed again, once
    pytester.runpytest("--ntk-no-cache").assert_outcomes(passed=2)
    assert len(_computes(log)) == 4  # no cache: every claim computes
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    assert len(_computes(log)) == 5  # memory only


def test_fixture_with_explicit_cache_dir(pytester):
    log = _claims(pytester)
    pytester.runpytest("--ntk-cache-dir", "mycache").assert_outcomes(passed=2)
    pytester.runpytest("--ntk-cache-dir", "mycache").assert_outcomes(passed=2)
    assert len(_computes(log)) == 1
    assert list((pytester.path / "mycache" / "shared").glob("*.npz"))
    assert (pytester.path / "mycache" / ".gitignore").exists()


def test_xdist_workers_share_the_cache_and_compute_once(pytester):
    pytest.importorskip("xdist")
    log = _claims(pytester, sleep=0.5)
    result = pytester.runpytest_subprocess("-n", "2", "-v")
    result.assert_outcomes(passed=2)
    assert len(_computes(log)) == 1, _computes(log)
    workers = {w for line in result.outlines for w in ("[gw0]", "[gw1]") if w in line}
    assert workers == {"[gw0]", "[gw1]"}, result.outlines  # the two claims ran in different processes
