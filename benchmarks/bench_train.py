"""Ensemble training: 8 seeds vmapped into one program vs 8 sequential single-seed runs.

Run: ``uv run pytest benchmarks/bench_train.py`` (pytest-benchmark). Each scenario's two rows share
a group, so the table's relative column is the speed-up of the vmapped ensemble (goal: >= 2x).

Both sides call :func:`pytest_ntk.science.train.train` and get a compiled ``lax.scan`` program; the only
difference is one ``vmap`` over 8 seeds against 8 calls with one seed each. Compilation is excluded
from both: every benchmark first runs its function once (``warmup_rounds=1``), which compiles and
caches its program (train's programs are cached per model and configuration), then times
``ROUNDS`` rounds. ``train`` returns numpy losses, so each round waits for the device.

Sizes: the paper-like configuration (FullyConnected(depth=2, width=512) on 256 points, 200
full-batch steps / SGD with batch 8) runs on an accelerator or with ``NTK_BENCH_FULL=1``; on a
CPU the default is width 128 so that a run takes seconds, not minutes, on a shared machine.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.train import train

FULL = os.environ.get("NTK_BENCH_FULL") == "1" or jax.default_backend() != "cpu"
WIDTH = 512 if FULL else 128
N_POINTS, D, N_SEEDS = 256, 8, 8
SEEDS = list(range(N_SEEDS))
ROUNDS = 5

SCENARIOS = {
    # name: keyword arguments of train()
    "full-batch-200-steps": dict(steps=200, lr=0.5),
    "sgd-batch8-2-epochs": dict(epochs=2, batch_size=8, lr=0.05),  # 64 steps of 8 points
}


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_POINTS, D)) / np.sqrt(D)
    y = np.sin(3 * x[:, 0]) + x[:, 1]
    return FullyConnected(depth=2, width=WIDTH), x, y


def _vmapped(model, x, y, kw):
    return train(model, x, y, seeds=SEEDS, **kw).final_loss


def _sequential(model, x, y, kw):
    return np.concatenate([train(model, x, y, seeds=[s], **kw).final_loss for s in SEEDS])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("how", ["vmapped", "sequential"])
def test_ensemble_training(benchmark, problem, scenario, how):
    model, x, y = problem
    kw = SCENARIOS[scenario]
    fn = _vmapped if how == "vmapped" else _sequential
    benchmark.group = f"train 8 seeds, FC(2, {WIDTH}), {N_POINTS} points: {scenario}"
    benchmark.extra_info.update(width=WIDTH, n_points=N_POINTS, n_seeds=N_SEEDS, scenario=scenario,
                                backend=jax.default_backend())
    losses = benchmark.pedantic(fn, args=(model, x, y, kw), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    # Both ways train the same members: the benchmark compares like with like.
    reference = _vmapped(model, x, y, kw) if how == "sequential" else _sequential(model, x, y, kw)
    np.testing.assert_allclose(losses, reference, rtol=1e-3, atol=1e-6)
    assert np.all(np.isfinite(losses))
