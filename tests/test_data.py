"""Data sets: shapes, seeds, the documented draw order, and the Gaussian targets' distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_ntk.science import data
from pytest_ntk.science.errors import NumericalError
from pytest_ntk.science.kernels import analytic, liu2025
from pytest_ntk.science.nets import FullyConnected


@pytest.fixture(scope="module")
def trial():
    return data.liu2025_sphere(seed=11342)


def test_liu2025_shapes_norms_and_split(trial):
    assert trial.x.shape == (1000, 15) and trial.y.shape == (1000,)
    assert trial.x_train.shape == (670, 15) and trial.y_train.shape == (670,)
    assert trial.x_test.shape == (330, 15) and trial.y_test.shape == (330,)
    assert trial.n_train == 670 and trial.n_test == 330
    for a in (trial.x, trial.y, trial.x_train, trial.y_train, trial.x_test, trial.y_test):
        assert a.dtype == np.float64
        assert not a.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(trial.x, axis=1), 1.0, rtol=1e-14)
    idx = np.concatenate([trial.train_idx, trial.test_idx])
    np.testing.assert_array_equal(np.sort(idx), np.arange(1000))
    np.testing.assert_array_equal(trial.x_train, trial.x[trial.train_idx])
    np.testing.assert_array_equal(trial.y_test, trial.y[trial.test_idx])
    assert trial.jitter == 0.0 and trial.as_published and trial.seed == 11342


def test_liu2025_follows_the_documented_draws(trial):
    """Recompute the trial from its docstring: uniform(-5, 7) rows, Cholesky draw, permutation."""
    rng = np.random.default_rng(11342)
    raw = rng.uniform(-5, 7, size=(1000, 15))
    x = raw / np.sqrt((raw**2).sum(axis=1))[:, None]
    np.testing.assert_allclose(trial.x, x, rtol=1e-15)
    K = liu2025.kernel("NTKB1", x)
    y = np.linalg.cholesky(K) @ rng.standard_normal(1000)
    np.testing.assert_allclose(trial.y, y, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(trial.train_idx, rng.permutation(1000)[:670])


def test_liu2025_targets_are_whitened_by_the_ntkb1_gram(trial):
    """L^-1 y must look like 1000 independent N(0, 1) draws (a test that can fail)."""
    K = liu2025.kernel("NTKB1", trial.x)
    w = np.linalg.solve(np.linalg.cholesky(K), trial.y)
    assert abs(w.mean()) < 5 / math.sqrt(1000)
    assert abs(w.var() - 1) < 5 * math.sqrt(2 / 1000)
    assert stats.kstest(w, "norm").pvalue > 1e-4
    # the same check rejects the corrected NTKB1 as y's covariance
    K2 = liu2025.kernel("NTKB1", trial.x, as_published=False)
    w2 = np.linalg.solve(np.linalg.cholesky(K2), trial.y)
    assert abs(w2.var() - 1) > 5 * math.sqrt(2 / 1000)


def test_liu2025_seeds(trial):
    again = data.liu2025_sphere(seed=11342)
    for name in ("x", "y", "train_idx", "test_idx"):
        np.testing.assert_array_equal(getattr(again, name), getattr(trial, name))
    other = data.liu2025_sphere(seed=11343)
    assert not np.allclose(other.x, trial.x)
    assert not np.allclose(other.y, trial.y)
    assert not np.array_equal(other.train_idx, trial.train_idx)


def test_liu2025_small_and_corrected():
    t = data.liu2025_sphere(seed=3, n=40, d=5, n_train=30, as_published=False)
    assert t.x.shape == (40, 5) and t.x_train.shape == (30, 5) and t.x_test.shape == (10, 5)
    assert not t.as_published
    # same x as the published version of the seed, different K, so different y
    p = data.liu2025_sphere(seed=3, n=40, d=5, n_train=30)
    np.testing.assert_array_equal(t.x, p.x)
    assert not np.allclose(t.y, p.y)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 0, "n_train": 1000}, "n_train"),
        ({"seed": 0, "n": 1}, "n must be"),
        ({"seed": 0, "d": 0}, "d must be"),
    ],
)
def test_liu2025_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.liu2025_sphere(**kwargs)


# ------------------------------------------------------------------ Gaussian sampler
def test_gaussian_sample_covariance_matches_k():
    """Empirical covariance of 40000 draws vs K, entry by entry within 5 standard errors."""
    x = data.sphere(6, 15, seed=1)
    K = liu2025.kernel("NTKB1", x)
    draws = data.gaussian_sample(K, np.random.default_rng(2), size=40_000)
    assert draws.shape == (40_000, 6)
    emp = draws.T @ draws / draws.shape[0]
    se = np.sqrt((np.outer(np.diag(K), np.diag(K)) + K**2) / draws.shape[0])
    assert np.all(np.abs(emp - K) < 5 * se)
    # and it would notice a wrong covariance: e.g. the corrected NTKB1
    K2 = liu2025.kernel("NTKB1", x, as_published=False)
    assert np.any(np.abs(emp - K2) > 5 * se)


def test_cholesky_jitter_for_singular_and_failure_for_indefinite():
    v = np.arange(1.0, 5.0)
    K = np.outer(v, v)  # rank one
    L, jitter = data.cholesky_with_jitter(K)
    assert jitter > 0
    np.testing.assert_allclose(L @ L.T, K + jitter * np.eye(4), atol=1e-12)
    with pytest.raises(NumericalError, match="not positive semi-definite"):
        data.cholesky_with_jitter(np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="square"):
        data.cholesky_with_jitter(np.ones((2, 3)))


# ------------------------------------------------------------------ synthetic sets
def test_circle():
    x, angle = data.circle(50, seed=4)
    assert x.shape == (50, 2) and angle.shape == (50,) and x.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=4e-15)  # ~18 ulps: libm's sin/cos vary
    np.testing.assert_allclose(np.arctan2(x[:, 1], x[:, 0]) % (2 * np.pi), angle, atol=1e-12)
    assert np.all(np.diff(angle) >= 0) and angle.min() >= 0 and angle.max() < 2 * np.pi
    np.testing.assert_array_equal(data.circle(50, seed=4)[0], x)
    assert not np.allclose(data.circle(50, seed=5)[0], x)


def test_sphere_is_uniform():
    x = data.sphere(4000, 3, seed=6)
    assert x.shape == (4000, 3) and x.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-14)
    # uniform on S^2: each coordinate is uniform on [-1, 1] (Archimedes), mean 0
    assert stats.kstest(x[:, 2], "uniform", args=(-1, 2)).pvalue > 1e-4
    assert np.all(np.abs(x.mean(axis=0)) < 5 * math.sqrt(1 / 3 / 4000))
    np.testing.assert_array_equal(data.sphere(4000, 3, seed=6), x)
    assert not np.allclose(data.sphere(4000, 3, seed=7), x)


def test_teacher_network():
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science.numerics import x64

    model = FullyConnected(2, 16, "relu", 1.3, 0.2)
    t = data.teacher(model, 20, 4, seed=8)
    assert t.kind == "network" and t.x.shape == (20, 4) and t.y.shape == (20,)
    assert t.y.dtype == np.float64
    np.testing.assert_array_equal(t.x, data.sphere(20, 4, seed=8))
    key_seed = int(np.random.default_rng(9).integers(2**31))
    with x64():
        params = model.init(jax.random.PRNGKey(key_seed), 4, dtype=jnp.float64)
        y = np.asarray(model.apply(params, jnp.asarray(t.x)))
    np.testing.assert_allclose(t.y, y, rtol=1e-14)
    np.testing.assert_array_equal(data.teacher(model, 20, 4, seed=8).y, t.y)
    assert not np.allclose(data.teacher(model, 20, 4, seed=9).y, t.y)
    multi = data.teacher(FullyConnected(1, 8, out_dim=3), 5, 4, seed=1)
    assert multi.y.shape == (5, 3)


def test_teacher_gp_is_a_draw_of_the_nngp():
    model = FullyConnected(2, 16, "erf", 1.5, 0.3)
    t = data.teacher(model, 300, 5, seed=10, kind="gp")
    assert t.kind == "gp" and t.y.shape == (300,) and t.params is None
    K = analytic.nngp(model, t.x)
    L, _ = data.cholesky_with_jitter(K)
    w = np.linalg.solve(L, t.y)
    assert stats.kstest(w, "norm").pvalue > 1e-4
    with pytest.raises(ValueError, match="kind"):
        data.teacher(model, 3, 2, seed=0, kind="mlp")
