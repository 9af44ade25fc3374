"""Kernel predictions in float64: kernel regression, gradient-descent dynamics, NNGP posterior.

Conventions shared with :mod:`pytest_ntk.science.train` (keep them in step):

* ``n`` training points ``x_1..x_n`` with targets ``y`` of shape ``(n,)`` or ``(n, k)``
  (``k`` outputs share one kernel: the ``(n, n)`` kernel acts on every column of ``y``).
* The training loss is the mean-squared error with a one-half factor,

      L(theta) = 1/(2n) * sum_i ||f(theta, x_i) - y_i||^2 ,

  so that gradient descent with learning rate ``lr`` moves the parameters by
  ``-lr * grad L = -(lr/n) J^T (f - y)`` and, for the linearized network (or an infinitely wide
  one), the outputs by ``-(lr/n) Theta (f - y)`` with the NTK ``Theta = J J^T``.
* Time is ``t = lr * steps``: gradient flow ``d theta/dt = -grad L`` is the limit ``lr -> 0`` of
  ``steps = t / lr`` gradient-descent steps.

Everything here is numpy/scipy float64; kernels computed in JAX are converted on entry.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from .errors import IllConditionedKernel, IllConditionedKernelWarning, NumericalError

__all__ = [
    "kernel_regression",
    "gradient_descent_mse",
    "gp_posterior",
    "critical_lr",
    "condition_number",
]

# An eigenvalue below -_PSD_TOLERANCE * max|eigenvalue| means the kernel is not positive
# semi-definite beyond round-off (kernels accumulated in float32 carry ~1e-7 relative noise).
_PSD_TOLERANCE = 1e-6


# ---------------------------------------------------------------------------- validation
def _as_float64(name: str, value, ndim: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real array, got {type(value).__name__}: {exc}") from None
    if arr.ndim not in ndim:
        want = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
    return arr


def _train_kernel(k_train_train) -> np.ndarray:
    k = _as_float64("k_train_train", k_train_train, (2,))
    if k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"k_train_train must be a non-empty square (n, n) matrix, got shape {k.shape}")
    scale = max(float(np.max(np.abs(k))), np.finfo(np.float64).tiny)
    asym = float(np.max(np.abs(k - k.T))) / scale
    if asym > 1e-6:
        raise ValueError(
            f"k_train_train must be symmetric: max |K - K^T| / max |K| = {asym:.3e} (> 1e-6)"
        )
    return 0.5 * (k + k.T)


def _targets(name: str, y, n: int) -> np.ndarray:
    arr = _as_float64(name, y, (1, 2))
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have n = {n} rows (the size of k_train_train), got shape {arr.shape}")
    return arr


def _cross_kernel(name: str, k, n: int) -> np.ndarray:
    arr = _as_float64(name, k, (2,))
    if arr.shape[1] != n:
        raise ValueError(f"{name} must have shape (m, n) with n = {n}, got shape {arr.shape}")
    return arr


def _nonnegative(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v


def _positive(name: str, value) -> float:
    v = _nonnegative(name, value)
    if v == 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


# ---------------------------------------------------------------------------- solves
def condition_number(k: np.ndarray) -> float:
    """2-norm condition number ``lambda_max / lambda_min`` of a symmetric PSD matrix (``inf`` if singular).

    From ``scipy.linalg.eigvalsh`` (O(n^3), a few times a Cholesky factorisation). The computed
    eigenvalues of a symmetric matrix are exact for a perturbation of norm about
    ``n eps lambda_max`` (backward stability), so a ``lambda_min`` at or below that is rounding
    noise -- its sign differs between CPUs and BLAS builds -- and the matrix counts as singular
    (``inf``), whatever side of zero the noise fell on.
    """
    a = np.asarray(k, dtype=np.float64)
    lam = scipy.linalg.eigvalsh(a)
    lam_max, lam_min = float(lam[-1]), float(lam[0])
    if lam_max <= 0 or lam_min <= a.shape[0] * np.finfo(np.float64).eps * lam_max:
        return float("inf")
    return lam_max / lam_min


def _cho_factor_checked(k, *, ridge, max_condition, warn_condition, what):
    """Cholesky factor of ``k + ridge I`` after checking its condition number."""
    n = k.shape[0]
    a = k + ridge * np.eye(n) if ridge else k
    cond = condition_number(a)
    if cond > max_condition:
        raise IllConditionedKernel(cond, max_condition, what=what)
    if cond > warn_condition:
        warnings.warn(
            f"{what} has condition number {cond:.3e} (above warn_condition={warn_condition:.1e}): "
            f"about {np.log10(cond):.0f} of float64's 16 significant digits may be lost; "
            f"consider ridge=...",
            IllConditionedKernelWarning,
            stacklevel=3,
        )
    try:
        return scipy.linalg.cho_factor(a, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise IllConditionedKernel(cond, max_condition, what=f"{what} (Cholesky failed: not positive definite)") from None


def _check_finite_result(name: str, value: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(value)):
        raise NumericalError(f"{name} is not finite ({int(np.sum(~np.isfinite(value)))} non-finite entries)")
    return value


def kernel_regression(
    k_train_train,
    y_train,
    k_test_train,
    *,
    ridge: float = 0.0,
    max_condition: float = 1e12,
    warn_condition: float = 1e8,
) -> np.ndarray:
    """Kernel regression predictions ``K_* (K + ridge I)^{-1} y`` in float64.

    ``k_train_train`` is ``K`` (n, n), ``y_train`` is ``y`` of shape (n,) or (n, k) (several
    right-hand sides share one factorisation), ``k_test_train`` is ``K_*`` (m, n). Returns shape
    (m,) or (m, k).

    The solve is a Cholesky factorisation of ``K + ridge I``. Its condition number
    ``lambda_max / lambda_min`` is computed first: above ``max_condition`` the solve is refused
    (:class:`~pytest_ntk.science.errors.IllConditionedKernel`); above ``warn_condition`` an
    :class:`~pytest_ntk.science.errors.IllConditionedKernelWarning` states it. A failed factorisation
    (the matrix is not numerically positive definite) also raises ``IllConditionedKernel``.
    """
    k = _train_kernel(k_train_train)
    n = k.shape[0]
    y = _targets("y_train", y_train, n)
    ks = _cross_kernel("k_test_train", k_test_train, n)
    ridge = _nonnegative("ridge", ridge)
    max_condition = _positive("max_condition", max_condition)
    warn_condition = _positive("warn_condition", warn_condition)
    factor = _cho_factor_checked(
        k, ridge=ridge, max_condition=max_condition, warn_condition=warn_condition, what="k_train_train"
    )
    alpha = scipy.linalg.cho_solve(factor, y, check_finite=False)
    return _check_finite_result("kernel_regression prediction", ks @ alpha)


def gp_posterior(
    k_train_train,
    y_train,
    k_test_train,
    k_test_test,
    *,
    noise: float = 0.0,
    max_condition: float = 1e12,
    warn_condition: float = 1e8,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-process (NNGP) posterior given noisy observations ``y = f(x) + eps``, ``eps ~ N(0, noise I)``.

    With ``K`` = ``k_train_train`` (n, n), ``K_*`` = ``k_test_train`` (m, n) and
    ``K_**`` = ``k_test_test`` (m, m)::

        mean = K_* (K + noise I)^{-1} y
        cov  = K_** - K_* (K + noise I)^{-1} K_*^T

    ``noise`` is the observation-noise *variance*. ``y_train`` may be (n,) or (n, k); the
    covariance is shared by all k outputs. If ``k_test_test`` is 1-D it is read as the diagonal
    ``k(x_*, x_*)`` and the marginal variances (m,) are returned instead of the full covariance.
    Condition checks as in :func:`kernel_regression`.
    """
    k = _train_kernel(k_train_train)
    n = k.shape[0]
    y = _targets("y_train", y_train, n)
    ks = _cross_kernel("k_test_train", k_test_train, n)
    m = ks.shape[0]
    kss = _as_float64("k_test_test", k_test_test, (1, 2))
    if kss.shape not in ((m, m), (m,)):
        raise ValueError(f"k_test_test must have shape ({m}, {m}) or ({m},), got {kss.shape}")
    noise = _nonnegative("noise", noise)
    factor = _cho_factor_checked(
        k,
        ridge=noise,
        max_condition=_positive("max_condition", max_condition),
        warn_condition=_positive("warn_condition", warn_condition),
        what="k_train_train + noise I",
    )
    mean = ks @ scipy.linalg.cho_solve(factor, y, check_finite=False)
    # K_* (K + noise I)^{-1} K_*^T = V^T V with V = L^{-1} K_*^T.
    v = scipy.linalg.solve_triangular(factor[0], ks.T, lower=True, check_finite=False)
    if kss.ndim == 1:
        cov = kss - np.einsum("ij,ij->j", v, v)
    else:
        cov = kss - v.T @ v
        cov = 0.5 * (cov + cov.T)
    return _check_finite_result("gp_posterior mean", mean), _check_finite_result("gp_posterior covariance", cov)


def critical_lr(k_train_train, n: int | None = None) -> float:
    """The largest stable gradient-descent learning rate, ``2 n / lambda_max(Theta)``.

    For the loss ``L = 1/(2n) ||f - y||^2`` a gradient-descent step changes the outputs of the
    linearized network by ``-(lr/n) Theta (f - y)``, so along the eigenvector of ``Theta`` with
    eigenvalue ``lambda`` the residual is multiplied by ``1 - lr lambda / n`` each step: it
    converges iff ``lr < 2 / lambda_max(Theta / n)``. ``n`` is the loss normaliser (the number of
    points the loss averages over); by default the size of ``k_train_train``.
    """
    k = _train_kernel(k_train_train)
    if n is None:
        n = k.shape[0]
    n = _positive("n", n)
    lam_max = float(scipy.linalg.eigvalsh(k, subset_by_index=[k.shape[0] - 1, k.shape[0] - 1])[0])
    if lam_max <= 0:
        raise ValueError(f"k_train_train has no positive eigenvalue (lambda_max = {lam_max:.3e}): no critical rate")
    return 2.0 * n / lam_max


# ---------------------------------------------------------------------------- dynamics
def _times(t) -> np.ndarray:
    arr = np.asarray(t, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"t must be a scalar or a 1-D array of times, got shape {arr.shape}")
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError(f"t must be >= 0 (inf allowed), got {t!r}")
    return arr


def _flow_factor(lam: np.ndarray, t: np.ndarray, n: int, lr: float | None) -> np.ndarray:
    """``g(lambda, t) = (1 - d(lambda, t)) / lambda`` for finite times ``t`` (shape (T, n)).

    ``d`` is the decay of the residual along an eigenvector: ``exp(-lambda t / n)`` for gradient
    flow, ``(1 - lr lambda / n)^(t / lr)`` for gradient descent. At ``lambda = 0`` the limit
    ``g = t / n`` is used. Computed with expm1/log1p so that small ``lambda t / n`` keep their digits.
    """
    lam = lam[None, :]
    tt = t[:, None]
    safe = np.where(lam > 0, lam, 1.0)
    if lr is None:
        one_minus_d = -np.expm1(-lam * tt / n)
    else:
        steps = np.round(tt / lr)  # a whole number (checked by the caller): (1 - a)^steps for a > 1 too
        a = lr * lam / n
        with np.errstate(over="ignore", invalid="ignore"):
            stable = -np.expm1(steps * np.log1p(-np.minimum(a, 0.5)))
            general = 1.0 - np.power(1.0 - a, steps)
        one_minus_d = np.where(a <= 0.5, stable, general)
    g = np.where(lam > 0, one_minus_d / safe, tt / n)
    return g


def gradient_descent_mse(
    k_train_train,
    y_train,
    k_test_train,
    t,
    *,
    lr: float | None = None,
    f0_train=None,
    f0_test=None,
    ridge: float = 0.0,
    max_condition: float = 1e12,
    warn_condition: float = 1e8,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Outputs of a network trained on MSE in the kernel (linearized / infinite-width) regime.

    Loss ``L = 1/(2n) ||f - y||^2`` as in :mod:`pytest_ntk.science.train`; ``Theta`` = ``k_train_train``
    (the NTK on the n training points), ``Theta_*`` = ``k_test_train`` (m, n); ``f0_train`` (n,)
    / ``f0_test`` (m,) are the outputs at initialisation (default 0, the infinite-width mean).
    Time is ``t = lr * steps``. With ``Theta = V diag(lambda) V^T``:

    gradient flow (``lr=None``)::

        f_train(t) = y + e^{-Theta t / n} (f0_train - y)
        f_test(t)  = f0_test + Theta_* Theta^{-1} (I - e^{-Theta t / n}) (y - f0_train)

    gradient descent with learning rate ``lr`` (``steps = t / lr`` must be an integer)::

        f_train = y + (I - lr Theta / n)^steps (f0_train - y)
        f_test  = f0_test + Theta_* Theta^{-1} (I - (I - lr Theta / n)^steps) (y - f0_train)

    ``Theta^{-1} (I - e^{-Theta t/n})`` is applied through the eigendecomposition, so it is finite
    for singular ``Theta`` at finite t (its limit on the null space is ``t/n``).
    ``t = inf`` gives kernel regression with the initial-output term,
    ``f0_test + Theta_* (Theta + ridge I)^{-1} (y - f0_train)``, solved by Cholesky with the
    condition checks of :func:`kernel_regression`.

    ``ridge`` runs the dynamics on ``Theta + ridge I`` and reads them out through ``Theta``
    (``f_train = f0 + Theta (Theta + ridge I)^{-1} (I - decay) (y - f0)``); ``ridge = 0`` is the
    exact linearized dynamics.

    ``t`` is a scalar or a 1-D array of T times; returns ``(f_train, f_test)`` with shapes
    (n[, k]) / (m[, k]), or (T, n[, k]) / (T, m[, k]) for an array of times. ``f_test`` is None
    when ``k_test_train`` is None.
    """
    k = _train_kernel(k_train_train)
    n = k.shape[0]
    y = _targets("y_train", y_train, n)
    ks = None if k_test_train is None else _cross_kernel("k_test_train", k_test_train, n)
    ridge = _nonnegative("ridge", ridge)
    times = _times(t)
    if lr is not None:
        lr = _positive("lr", lr)
    if (f0_train is None) != (f0_test is None) and ks is not None:
        raise ValueError(
            "f0_train and f0_test must be given together (the initial-output term needs both); "
            f"got f0_train={'None' if f0_train is None else 'array'}, f0_test={'None' if f0_test is None else 'array'}"
        )
    f0 = np.zeros_like(y) if f0_train is None else _as_float64("f0_train", f0_train, (y.ndim,))
    if f0.shape != y.shape:
        raise ValueError(f"f0_train must have the shape of y_train {y.shape}, got {f0.shape}")
    if ks is not None:
        m = ks.shape[0]
        want = (m,) + y.shape[1:]
        f0s = np.zeros(want) if f0_test is None else _as_float64("f0_test", f0_test, (y.ndim,))
        if f0s.shape != want:
            raise ValueError(f"f0_test must have shape {want}, got {f0s.shape}")
    if lr is not None:
        finite_t = times[np.isfinite(times)]
        steps = finite_t / lr
        if np.any(np.abs(steps - np.round(steps)) > 1e-6 * np.maximum(1.0, steps)):
            raise ValueError(
                f"t must be a whole number of gradient-descent steps times lr={lr!r} (t = lr * steps), "
                f"got t={t!r} (t/lr = {steps!r})"
            )

    scalar = times.ndim == 0
    times = np.atleast_1d(times)
    y2 = y.reshape(n, -1)
    r0 = y2 - f0.reshape(n, -1)  # y - f0_train, (n, k)
    out_train = np.empty((times.size, n, y2.shape[1]))
    out_test = None if ks is None else np.empty((times.size, ks.shape[0], y2.shape[1]))

    finite = np.isfinite(times)
    if np.any(finite):
        lam, vec = scipy.linalg.eigh(k + ridge * np.eye(n) if ridge else k)
        lam_scale = max(float(np.max(np.abs(lam))), np.finfo(np.float64).tiny)
        if lam[0] < -_PSD_TOLERANCE * lam_scale:
            raise ValueError(
                f"k_train_train{' + ridge I' if ridge else ''} is not positive semi-definite: "
                f"smallest eigenvalue {lam[0]:.3e} (largest {lam[-1]:.3e})"
            )
        lam = np.maximum(lam, 0.0)
        if lr is not None:
            # Rounding t/lr to the integer it was checked to be.
            tf = np.round(times[finite] / lr) * lr
        else:
            tf = times[finite]
        g = _flow_factor(lam, tf, n, lr)  # (T, n)
        c = vec.T @ r0  # (n, k) residual in the eigenbasis
        # Theta V = V diag(lambda - ridge): the train read-out needs no product with Theta.
        train_gain = np.maximum(lam - ridge, 0.0)[None, :] * g
        out_train[finite] = f0.reshape(n, -1)[None] + np.einsum("ij,tj,jk->tik", vec, train_gain, c)
        if ks is not None:
            out_test[finite] = f0s.reshape(ks.shape[0], -1)[None] + np.einsum(
                "ij,tj,jk->tik", ks @ vec, g, c
            )
    if not np.all(finite):
        ks_all = k if ks is None else np.concatenate([k, ks], axis=0)
        pred = kernel_regression(
            k, r0, ks_all, ridge=ridge, max_condition=max_condition, warn_condition=warn_condition
        )
        out_train[~finite] = f0.reshape(n, -1) + pred[:n]
        if ks is not None:
            out_test[~finite] = f0s.reshape(ks.shape[0], -1) + pred[n:]

    for name, arr in (("f_train", out_train), ("f_test", out_test)):
        if arr is not None and not np.all(np.isfinite(arr)):
            hint = ""
            if lr is not None:
                lam_max = float(scipy.linalg.eigvalsh(k)[-1])
                hint = f"; lr={lr:.6g} vs critical_lr 2n/lambda_max = {2 * n / lam_max:.6g}"
            raise NumericalError(f"gradient_descent_mse: {name} is not finite{hint}")

    def shape(arr, rows):
        if arr is None:
            return None
        arr = arr.reshape((times.size, rows) + y.shape[1:])
        return arr[0] if scalar else arr

    return shape(out_train, n), (None if ks is None else shape(out_test, ks.shape[0]))
