"""Determinism: the same claims with the same base seed give the same verdicts and measurements.

Three real pytest processes (run side by side) train tiny JAX networks on CPU from
``claim.seed`` / ``claim.seeds(n)``: two with the default base seed must produce identical JSON
reports once timings are removed (each process also gets its own random ``PYTHONHASHSEED``, so
seeds cannot depend on Python's string hashing); ``--ntk-seed 1`` must change every claim's seeds
and the measured values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

SEEDED_CLAIMS = '''
import jax
import numpy as np
import pytest

from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.train import train


def data(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 3))
    return x, np.sin(x[:, 0])


@pytest.mark.claim("det.training", source="test", statement="gradient descent lowers the training loss")
def test_training(claim):
    x, y = data(claim.seed)
    result = train(FullyConnected(depth=1, width=32), x, y, seeds=claim.seeds(3), steps=25, lr=0.5)
    claim.samples(result.final_loss, predicted=0.0, atol=1.0, name="final_loss")
    claim.at_most(result.final_loss, result.losses[:, 0], name="loss_decreased")


@pytest.mark.parametrize("n", [10, 40])
@pytest.mark.claim("det.sample_mean", source="test", statement="the mean of n unit normals is 0 +- 2")
def test_sample_mean(claim, n):
    draws = [np.random.default_rng(s).normal() for s in claim.seeds(n)]
    claim.samples(draws, predicted=0.0, atol=2.0, name="mean")
'''


def _strip_times(obj):
    """The report without wall-clock fields (durations, the run's start time)."""
    if isinstance(obj, dict):
        return {k: _strip_times(v) for k, v in obj.items() if k not in ("duration_s", "time")}
    if isinstance(obj, list):
        return [_strip_times(v) for v in obj]
    return obj


def test_same_seed_same_verdicts_and_another_seed_other_measurements(pytester):
    pytester.makepyfile(test_seeded=SEEDED_CLAIMS)
    runs = {"first": [], "second": [], "seed1": ["--ntk-seed", "1"]}
    procs = {}
    for name, extra in runs.items():
        env = dict(os.environ, PYTHONHASHSEED="random", PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTEST_ADDOPTS", None)
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
             "-p", "no:benchmark", f"--ntk-json={name}.json", *extra],
            cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
    reports = {}
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for p in procs.values():
                p.kill()
            pytest.fail(f"run {name} did not finish")
        assert proc.returncode == 0, out
        reports[name] = json.loads((pytester.path / f"{name}.json").read_text())

    first, second, seed1 = (reports[k] for k in ("first", "second", "seed1"))
    assert [c["verdict"] for c in first["claims"]] == ["HOLDS"] * 3
    assert _strip_times(first["claims"]) == _strip_times(second["claims"])  # every measured digit
    assert first["run"]["seed"] == second["run"]["seed"] == 0 and seed1["run"]["seed"] == 1

    a = {c["id"]: c for c in first["claims"]}
    b = {c["id"]: c for c in seed1["claims"]}
    assert set(a) == set(b)
    # the parametrized cases of one claim share its seed; another base seed changes it
    assert a["det.sample_mean[n=10]"]["seed"] == a["det.sample_mean[n=40]"]["seed"]
    for claim_id in a:
        assert a[claim_id]["seed"] != b[claim_id]["seed"], claim_id
        for ma, mb in zip(a[claim_id]["measurements"], b[claim_id]["measurements"]):
            assert ma["name"] == mb["name"]
            assert ma["measured"] != mb["measured"], (claim_id, ma["name"])

