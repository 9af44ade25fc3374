"""Infinite-width kernels: the nine Liu et al. (2025) kernels over the paper's 50 trials, and the
FullyConnected NNGP/NTK recursion.

Run: ``uv run pytest benchmarks/bench_kernels.py`` (pytest-benchmark).

The audit builds, for each of 50 trials, the nine 1000 x 1000 Gram matrices of all 1000 inputs
(then slices train/train and test/train blocks). ``test_liu2025_nine_kernels_50_trials`` times
exactly that, for the published and the corrected angle; the goal is under 10 s on 2 CPU cores
(``extra_info["target_s"]``). Inputs are drawn outside the timed region (uniform(-5, 7) rows
scaled to unit norm, as :func:`pytest_ntk.science.data.liu2025_sphere` draws them). One round each:
a round is 50 trials already, and the machine is shared.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_ntk.science.kernels import analytic, liu2025
from pytest_ntk.science.nets import FullyConnected

N_TRIALS, N, D = 50, 1000, 15
TARGET_S = 10.0


def _inputs(n_trials: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5.0, 7.0, size=(n_trials, N, D))
    return x / np.linalg.norm(x, axis=2, keepdims=True)


@pytest.fixture(scope="module")
def trials():
    return _inputs(N_TRIALS)


def _run_all(xs, as_published):
    total = 0.0
    for kernels in liu2025.kernels_over_trials(xs, as_published=as_published):
        total += sum(float(k[0, 0]) for k in kernels.values())  # touch every result
    return total


@pytest.mark.parametrize("form", ["published", "corrected"])
def test_liu2025_nine_kernels_50_trials(benchmark, trials, form):
    benchmark.group = "liu2025: 9 kernels x 50 trials, n=1000"
    benchmark.extra_info.update(
        {"trials": N_TRIALS, "n": N, "d": D, "kernels": len(liu2025.KERNEL_NAMES),
         "target_s": TARGET_S}
    )
    result = benchmark.pedantic(
        _run_all, args=(trials, form == "published"), rounds=1, iterations=1, warmup_rounds=0
    )
    assert np.isfinite(result)


def test_liu2025_nine_kernels_one_trial(benchmark, trials):
    benchmark.group = "liu2025: 9 kernels, one trial, n=1000"
    out = benchmark.pedantic(liu2025.all_kernels, args=(trials[0],), rounds=5, warmup_rounds=1)
    assert set(out) == set(liu2025.KERNEL_NAMES)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_fully_connected_ntk_depth3_n1000(benchmark, trials, activation):
    benchmark.group = "analytic: NNGP + NTK, depth 3, n=1000"
    model = FullyConnected(3, 512, activation, 1.5, 0.1)
    nngp, ntk = benchmark.pedantic(
        analytic.nngp_and_ntk, args=(model, trials[0]), rounds=5, warmup_rounds=1
    )
    assert ntk.shape == (N, N)
