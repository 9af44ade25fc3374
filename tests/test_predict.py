"""predict.py against independent computations: dense solves, scipy.linalg.expm, explicit iteration."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import scipy.linalg

from pytest_ntk.science import predict
from pytest_ntk.science.errors import IllConditionedKernel, IllConditionedKernelWarning, NumericalError


def _kernel_problem(n=12, m=5, k=None, seed=0, rank=None):
    """A PSD kernel from random features: K = F F^T / p, K_* = F_* F^T / p."""
    rng = np.random.default_rng(seed)
    p = rank or 3 * n
    feats = rng.normal(size=(n + m, p))
    full = feats @ feats.T / p
    y = rng.normal(size=(n,) if k is None else (n, k))
    return full[:n, :n], y, full[n:, :n], full[n:, n:]


def _with_spectrum(eigenvalues, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues), len(eigenvalues))))
    return (q * np.asarray(eigenvalues)) @ q.T


# ---------------------------------------------------------------------------- kernel_regression
@pytest.mark.parametrize("k", [None, 3])
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_kernel_regression_matches_dense_solve(k, ridge):
    K, y, Ks, _ = _kernel_problem(k=k)
    expected = Ks @ np.linalg.solve(K + ridge * np.eye(len(K)), y)
    got = predict.kernel_regression(K, y, Ks, ridge=ridge)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_kernel_regression_interpolates_training_points():
    K, y, _, _ = _kernel_problem()
    np.testing.assert_allclose(predict.kernel_regression(K, y, K), y, atol=1e-9)


def test_ill_conditioned_kernel_raises_with_condition_number():
    K = _with_spectrum(np.geomspace(1.0, 1e-13, 8))
    cond = np.linalg.cond(K)
    assert cond > 1e12
    with pytest.raises(IllConditionedKernel) as info:
        predict.kernel_regression(K, np.ones(8), K[:2])
    # LAPACK's estimate and numpy's SVD-based value agree to about a percent, but which side of
    # 1e13 each lands on depends on the CPU's BLAS: compare numbers, and check that the message
    # shows the estimate the error carries (never the leading digits of one machine's rounding).
    assert info.value.condition_number == pytest.approx(cond, rel=1e-2)
    assert f"{info.value.condition_number:.3e}" in str(info.value)
    assert "1.0e+12" in str(info.value)
    # A ridge repairs it.
    predict.kernel_regression(K, np.ones(8), K[:2], ridge=1e-6)


def test_moderately_ill_conditioned_kernel_warns_with_condition_number():
    K = _with_spectrum(np.geomspace(1.0, 1e-10, 8))
    cond = np.linalg.cond(K)
    with pytest.warns(IllConditionedKernelWarning) as record:
        predict.kernel_regression(K, np.ones(8), K[:2])
    message = str(record[0].message)
    stated = float(re.search(r"condition number ([0-9.e+-]+)", message).group(1))
    # the spectrum ends at 1e-10: the number sits on the 9.999e+09 / 1.000e+10 rollover, so compare values
    assert stated == pytest.approx(cond, rel=1e-3) and 1e9 < stated < 1e11


def test_well_conditioned_kernel_does_not_warn():
    K, y, Ks, _ = _kernel_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict.kernel_regression(K, y, Ks)


def test_singular_and_indefinite_kernels_are_refused():
    singular = _with_spectrum([1.0, 0.5, 0.0, 0.0])
    with pytest.raises(IllConditionedKernel, match="inf"):
        predict.kernel_regression(singular, np.ones(4), singular)
    indefinite = _with_spectrum([1.0, 0.5, -0.2, 0.1])
    with pytest.raises(IllConditionedKernel):
        predict.kernel_regression(indefinite, np.ones(4), indefinite)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(k_train_train=np.ones((3, 4))), "k_train_train"),
        (dict(y_train=np.ones(5)), "y_train"),
        (dict(k_test_train=np.ones((2, 5))), "k_test_train"),
        (dict(y_train=np.array([1.0, np.nan, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), "y_train"),
        (dict(ridge=-1.0), "ridge"),
    ],
)
def test_kernel_regression_validates_arguments(kwargs, name):
    K, y, Ks, _ = _kernel_problem()
    args = dict(k_train_train=K, y_train=y, k_test_train=Ks)
    args.update(kwargs)
    ridge = args.pop("ridge", 0.0)
    with pytest.raises(ValueError, match=name):
        predict.kernel_regression(args["k_train_train"], args["y_train"], args["k_test_train"], ridge=ridge)


def test_asymmetric_kernel_is_refused():
    K, y, Ks, _ = _kernel_problem()
    K[0, 1] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        predict.kernel_regression(K, y, Ks)


# ---------------------------------------------------------------------------- gradient_descent_mse
def test_gradient_flow_matches_matrix_exponential():
    K, y, Ks, _ = _kernel_problem(n=10, m=4)
    n = len(K)
    rng = np.random.default_rng(1)
    f0, f0s = rng.normal(size=n), rng.normal(size=4)
    for t in (0.3, 2.0, 15.0):
        decay = scipy.linalg.expm(-K * t / n)
        want_train = y + decay @ (f0 - y)
        want_test = f0s + Ks @ np.linalg.solve(K, (np.eye(n) - decay) @ (y - f0))
        got_train, got_test = predict.gradient_descent_mse(K, y, Ks, t, f0_train=f0, f0_test=f0s)
        np.testing.assert_allclose(got_train, want_train, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(got_test, want_test, rtol=1e-8, atol=1e-9)


def test_discrete_gradient_descent_matches_explicit_iteration():
    K, y, Ks, _ = _kernel_problem(n=10, m=4, k=2)
    n = len(K)
    rng = np.random.default_rng(2)
    f0, f0s = rng.normal(size=y.shape), rng.normal(size=(4, 2))
    lr = 0.5 * predict.critical_lr(K)
    f, fs = f0.copy(), f0s.copy()
    for _ in range(37):  # f <- f - (lr/n) Theta (f - y) on the train set, read out on the test set
        fs = fs - (lr / n) * Ks @ (f - y)
        f = f - (lr / n) * K @ (f - y)
    got_train, got_test = predict.gradient_descent_mse(K, y, Ks, 37 * lr, lr=lr, f0_train=f0, f0_test=f0s)
    np.testing.assert_allclose(got_train, f, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_test, fs, rtol=1e-10, atol=1e-12)


def test_time_zero_gives_initial_outputs_and_infinity_gives_kernel_regression():
    K, y, Ks, _ = _kernel_problem()
    rng = np.random.default_rng(3)
    f0, f0s = rng.normal(size=len(K)), rng.normal(size=len(Ks))
    f_train, f_test = predict.gradient_descent_mse(K, y, Ks, [0.0, np.inf], f0_train=f0, f0_test=f0s)
    np.testing.assert_allclose(f_train[0], f0, atol=1e-14)
    np.testing.assert_allclose(f_test[0], f0s, atol=1e-14)
    np.testing.assert_allclose(f_train[1], y, atol=1e-9)
    expected = f0s + Ks @ np.linalg.solve(K, y - f0)
    np.testing.assert_allclose(f_test[1], expected, rtol=1e-9, atol=1e-10)
    # Long finite times approach the t = inf limit through the eigendecomposition path.
    _, late = predict.gradient_descent_mse(K, y, Ks, 1e7, f0_train=f0, f0_test=f0s)
    np.testing.assert_allclose(late, expected, rtol=1e-6, atol=1e-7)


def test_ridge_limit_is_ridge_regression():
    K, y, Ks, _ = _kernel_problem()
    f_train, f_test = predict.gradient_descent_mse(K, y, Ks, np.inf, ridge=0.3)
    np.testing.assert_allclose(f_test, Ks @ np.linalg.solve(K + 0.3 * np.eye(len(K)), y), rtol=1e-10)
    np.testing.assert_allclose(f_train, K @ np.linalg.solve(K + 0.3 * np.eye(len(K)), y), rtol=1e-10)
    _, late = predict.gradient_descent_mse(K, y, Ks, 1e6, ridge=0.3)
    np.testing.assert_allclose(late, f_test, rtol=1e-8)


def test_singular_kernel_has_finite_dynamics():
    # rank 3 kernel on 8 points: on the null space the outputs do not move (g -> t/n, times Theta = 0)
    K, y, Ks, _ = _kernel_problem(n=8, m=3, rank=3)
    f_train, f_test = predict.gradient_descent_mse(K, y, Ks, 5.0)
    decay = scipy.linalg.expm(-K * 5.0 / 8)
    np.testing.assert_allclose(f_train, y - decay @ y, atol=1e-9)
    assert np.all(np.isfinite(f_test))


def test_gradient_descent_above_critical_rate_blows_up_or_raises():
    K, y, Ks, _ = _kernel_problem()
    lr = 2.5 * predict.critical_lr(K)
    f_train, _ = predict.gradient_descent_mse(K, y, Ks, 20 * lr, lr=lr)
    assert np.max(np.abs(f_train)) > 1e3 * np.max(np.abs(y))
    with pytest.raises(NumericalError, match="critical_lr"):
        predict.gradient_descent_mse(K, y, Ks, 5000 * lr, lr=lr)


def test_time_must_be_a_whole_number_of_steps():
    K, y, Ks, _ = _kernel_problem()
    with pytest.raises(ValueError, match="t must be a whole number"):
        predict.gradient_descent_mse(K, y, Ks, 0.35, lr=0.1)
    with pytest.raises(ValueError, match="t must be >= 0"):
        predict.gradient_descent_mse(K, y, Ks, -1.0)


def test_initial_outputs_must_come_in_pairs():
    K, y, Ks, _ = _kernel_problem()
    with pytest.raises(ValueError, match="f0_train and f0_test"):
        predict.gradient_descent_mse(K, y, Ks, 1.0, f0_train=np.zeros(len(K)))


# ---------------------------------------------------------------------------- gp_posterior, critical_lr
@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_gp_posterior_matches_dense_formulas(noise):
    K, y, Ks, Kss = _kernel_problem(n=10, m=4)
    A = K + noise * np.eye(len(K))
    mean, cov = predict.gp_posterior(K, y, Ks, Kss, noise=noise)
    np.testing.assert_allclose(mean, Ks @ np.linalg.solve(A, y), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(cov, Kss - Ks @ np.linalg.solve(A, Ks.T), rtol=1e-8, atol=1e-10)
    _, var = predict.gp_posterior(K, y, Ks, np.diag(Kss), noise=noise)
    np.testing.assert_allclose(var, np.diag(cov), rtol=1e-8, atol=1e-10)


def test_gp_posterior_at_training_points_without_noise_collapses():
    K, y, _, _ = _kernel_problem(n=8)
    mean, cov = predict.gp_posterior(K, y, K, K)
    np.testing.assert_allclose(mean, y, atol=1e-8)
    np.testing.assert_allclose(cov, 0.0, atol=1e-8)


def test_critical_lr_separates_convergence_from_divergence():
    K, y, _, _ = _kernel_problem(n=10)
    n = len(K)
    lam_max = np.linalg.eigvalsh(K)[-1]
    lr_c = predict.critical_lr(K)
    assert lr_c == pytest.approx(2 * n / lam_max, rel=1e-12)
    assert predict.critical_lr(K, n=4) == pytest.approx(2 * 4 / lam_max, rel=1e-12)
    for factor, converges in ((0.98, True), (1.02, False)):
        r = y.copy()  # residual f - y from f0 = 0
        for _ in range(3000):
            r = r - (factor * lr_c / n) * K @ r
        assert (np.linalg.norm(r) < np.linalg.norm(y)) == converges


def test_gradient_descent_past_half_the_critical_rate_matches_the_explicit_loop():
    """Below the critical rate some factors 1 - lr*lambda/n are negative: integer powers, no NaN.

    ``steps * lr / lr`` is not always the integer ``steps`` in floating point; a negative base to
    a non-integer power is NaN, so every step count from 1 to 12 is checked.
    """
    rng = np.random.default_rng(7)
    a = rng.standard_normal((12, 5))
    k = a @ a.T + 0.1 * np.eye(12)
    y = rng.standard_normal(12)
    n = 12
    lr = 0.043  # 7 * lr / lr == 7.000000000000001 in float64
    k *= 1.9 * n / (lr * np.linalg.eigvalsh(k).max())  # lr is 95% of the critical rate 2n/lambda_max
    f = np.zeros(n)
    for steps in range(1, 13):
        f = f - lr / n * k @ (f - y)
        f_train, _ = predict.gradient_descent_mse(k, y, k[:3], steps * lr, lr=lr)
        np.testing.assert_allclose(f_train, f, rtol=1e-9, atol=1e-12, err_msg=f"{steps} steps")
