"""What the cache costs per call: key digest, memory hit, disk hit and cold write of an 8 MB kernel.

Run: ``uv run pytest benchmarks/bench_cache.py --benchmark-only``. A disk hit reads the ``.npz``,
checks its SHA-256 and rebuilds the value; a cold write adds the compute (here a copy) and an
fsync'd atomic write. These set the floor under a warm rerun of the claims: compare them with the
seconds a trained network or an empirical kernel takes to compute.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pytest_ntk.science.cache import Cache, key_digest

N = 1000  # a 1000 x 1000 float64 kernel: 8 MB
KERNEL = np.random.default_rng(0).standard_normal((N, N))
def _kernel_code():
    """The stamp of the benchmark's entry (the computing lambdas differ between cold and warm calls)."""


KEY = {
    "model": {"kind": "FullyConnected", "depth": 2, "width": 2048, "activation": "relu", "W_std": 1.4,
              "b_std": 0.1, "parameterization": "ntk", "out_dim": 1},
    "data": {"name": "synthetic", "n_train": 256, "n_test": 128, "seed": 7},
    "training": {"lr_fraction": 0.5, "steps": 2000, "batch_size": None, "seeds": list(range(8))},
    "profile": "quick",
}


def _megabytes_per_second(benchmark) -> None:
    benchmark.extra_info["MB"] = KERNEL.nbytes / 1e6
    benchmark.extra_info["MB_per_s"] = KERNEL.nbytes / 1e6 / benchmark.stats.stats.mean


def test_key_digest(benchmark):
    digest = benchmark(key_digest, KEY, name="trained_fc")
    assert len(digest) == 64


def test_memory_hit(benchmark, tmp_path):
    cache = Cache(tmp_path)
    cache.get_or_compute(KEY, lambda: {"ntk": KERNEL}, name="kernel", code=_kernel_code)
    value = benchmark(cache.get_or_compute, KEY, lambda: pytest.fail("recomputed"), name="kernel")
    assert value["ntk"].tobytes() == KERNEL.tobytes()


def test_disk_hit_8mb(benchmark, tmp_path):
    Cache(tmp_path).get_or_compute(KEY, lambda: {"ntk": KERNEL}, name="kernel", code=_kernel_code)

    def disk_hit():
        return Cache(tmp_path).get_or_compute(KEY, lambda: pytest.fail("recomputed"), name="kernel", code=_kernel_code)

    value = benchmark(disk_hit)
    assert value["ntk"].tobytes() == KERNEL.tobytes()
    _megabytes_per_second(benchmark)


def test_cold_write_8mb(benchmark, tmp_path):
    fresh = (tmp_path / str(i) for i in itertools.count())

    def setup():
        return (Cache(next(fresh)),), {}

    def cold(cache):
        return cache.get_or_compute(KEY, lambda: {"ntk": KERNEL}, name="kernel", code=_kernel_code)

    value = benchmark.pedantic(cold, setup=setup, rounds=10)
    assert value["ntk"].tobytes() == KERNEL.tobytes()
    _megabytes_per_second(benchmark)
