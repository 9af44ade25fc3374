"""Data sets for the claims: the Liu et al. (2025) experiment and small synthetic sets.

Every function takes an explicit integer ``seed`` and returns float64 numpy arrays; the same
seed gives the same arrays (numpy's ``default_rng``; the draw order is documented per function,
so a test can recompute it independently). Arrays inside the returned dataclasses are
read-only.

Gaussian draws ``y ~ N(0, K)`` use the Cholesky factor ``K = L L^T``: ``y = L z`` with
``z ~ N(0, I)`` (unique factor, so the draw does not depend on LAPACK's eigenvector signs). If
``K`` is numerically singular (Cholesky fails), a jitter ``eps * mean(diag K)`` is added to the
diagonal, with ``eps`` = 1e-12, 1e-11, ... up to 1e-6 (the first that works); the amount used
is recorded (``jitter``). Beyond that, :class:`pytest_ntk.science.errors.NumericalError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import NumericalError

__all__ = [
    "Liu2025Trial",
    "liu2025_sphere",
    "circle",
    "sphere",
    "Teacher",
    "teacher",
    "cholesky_with_jitter",
    "gaussian_sample",
]

_JITTERS = (0.0,) + tuple(10.0**k for k in range(-12, -5))


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64) if a.dtype.kind == "f" else np.array(a)
    a.setflags(write=False)
    return a


# ------------------------------------------------------------------ Gaussian draws
def cholesky_with_jitter(K, what: str = "covariance matrix") -> tuple[np.ndarray, float]:
    """``(L, jitter)`` with ``L L^T = K + jitter * mean(diag K) * I`` (module docstring)."""
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{what} must be a square matrix, got shape {K.shape}")
    if not np.isfinite(K).all():
        raise ValueError(f"{what} has non-finite entries")
    scale = float(np.mean(np.diag(K))) if K.size else 1.0
    eye = np.eye(K.shape[0])
    for eps in _JITTERS:
        try:
            return np.linalg.cholesky(K + eps * scale * eye if eps else K), eps * scale
        except np.linalg.LinAlgError:
            continue
    raise NumericalError(
        f"{what} is not positive semi-definite: Cholesky failed even with a jitter of "
        f"{_JITTERS[-1]:.0e} * mean(diag) = {_JITTERS[-1] * scale:.3e} "
        f"(smallest eigenvalue {np.linalg.eigvalsh(K).min():.3e})"
    )


def gaussian_sample(K, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Draws of ``N(0, K)``, shape (n,) or (size, n): ``y = L z``, ``z = rng.standard_normal``."""
    L, _ = cholesky_with_jitter(K)
    n = L.shape[0]
    if size is None:
        return L @ rng.standard_normal(n)
    return rng.standard_normal((int(size), n)) @ L.T


# ------------------------------------------------------------------ Liu et al. (2025)
@dataclass(frozen=True, eq=False)
class Liu2025Trial:
    """One trial of the Liu et al. (2025) experiment (see :func:`liu2025_sphere`)."""

    seed: int
    as_published: bool
    x: np.ndarray  # (n, d), unit rows
    y: np.ndarray  # (n,)
    train_idx: np.ndarray  # (n_train,) int
    test_idx: np.ndarray  # (n - n_train,) int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    jitter: float  # added to the Gram's diagonal before Cholesky (0.0: none was needed)

    @property
    def n_train(self) -> int:
        return int(self.train_idx.size)

    @property
    def n_test(self) -> int:
        return int(self.test_idx.size)


def liu2025_sphere(
    seed: int, n: int = 1000, d: int = 15, n_train: int = 670, *, as_published: bool = True
) -> Liu2025Trial:
    r"""One trial of the paper's experiment: inputs on the unit sphere, targets a draw of NTKB1.

    With ``rng = numpy.random.default_rng(seed)``, in this order:

    1. ``x = rng.uniform(-5, 7, size=(n, d))``, each row then divided by its L2 norm;
    2. ``y = L z`` with ``z = rng.standard_normal(n)`` and ``L`` the Cholesky factor of the NTKB1
       Gram of ``x`` (:func:`pytest_ntk.science.kernels.liu2025.kernel` with ``as_published`` and
       ``d_in = d``), jittered only if needed (module docstring): ``y ~ N(0, K)``, no noise;
    3. ``perm = rng.permutation(n)``; ``train_idx = perm[:n_train]``, ``test_idx = perm[n_train:]``
       (the paper's 67/33 split: 670 / 330 for n = 1000).

    The published NTKB1 Gram of such inputs is positive definite (smallest eigenvalue about
    3e-4 at n = 1000), so no jitter is used there in practice.
    """
    from .kernels import liu2025

    seed = _check_seed(seed)
    n = _check_count("n", n, 2)
    d = _check_count("d", d, 1)
    n_train = _check_count("n_train", n_train, 1)
    if n_train >= n:
        raise ValueError(
            f"n_train must be < n = {n} (the test set may not be empty), got {n_train}"
        )
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5.0, 7.0, size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    K = liu2025.kernel("NTKB1", x, as_published=as_published, d_in=d)
    L, jitter = cholesky_with_jitter(K, what="the NTKB1 Gram matrix")
    y = L @ rng.standard_normal(n)
    perm = rng.permutation(n)
    train_idx, test_idx = perm[:n_train], perm[n_train:]
    return Liu2025Trial(
        seed=seed,
        as_published=bool(as_published),
        x=_frozen(x),
        y=_frozen(y),
        train_idx=_frozen(train_idx),
        test_idx=_frozen(test_idx),
        x_train=_frozen(x[train_idx]),
        y_train=_frozen(y[train_idx]),
        x_test=_frozen(x[test_idx]),
        y_test=_frozen(y[test_idx]),
        jitter=float(jitter),
    )


# ------------------------------------------------------------------ synthetic sets
def circle(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, angle)``: ``n`` points on the unit circle, ``x = (cos angle, sin angle)``.

    ``angle = sort(default_rng(seed).uniform(0, 2 pi, n))`` (sorted, so a kernel row plotted
    against the angle is a curve). ``x`` has shape (n, 2), ``angle`` shape (n,).
    """
    seed = _check_seed(seed)
    n = _check_count("n", n)
    angle = np.sort(np.random.default_rng(seed).uniform(0.0, 2.0 * math.pi, size=n))
    return np.stack([np.cos(angle), np.sin(angle)], axis=1), angle


def sphere(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points uniform on the unit sphere S^{d-1} of R^d: normalised standard Gaussians.

    ``g = default_rng(seed).standard_normal((n, d))``; rows ``g_i / |g_i|``. Shape (n, d).
    """
    seed = _check_seed(seed)
    n = _check_count("n", n)
    d = _check_count("d", d)
    g = np.random.default_rng(seed).standard_normal((n, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class Teacher:
    """Inputs ``x`` (n, d) on the sphere and targets ``y`` ((n,), or (n, out_dim)) of a teacher."""

    x: np.ndarray
    y: np.ndarray
    kind: str  # "network" or "gp"
    params: Any = None  # the teacher's weights (kind="network"), else None
    jitter: float = 0.0  # kind="gp": added to the NNGP Gram's diagonal (module docstring)


def teacher(model, n: int, d: int, seed: int, *, kind: str = "network") -> Teacher:
    r"""A teacher-student regression set: targets that a ``model``-shaped network can represent.

    ``x = sphere(n, d, seed)``. Then, from ``rng = default_rng(seed + 1)``:

    - ``kind="network"`` (default): a random finite network of ``model``'s shape (its ``width``),
      ``params = model.init(jax.random.PRNGKey(rng.integers(2**31)), d, float64)`` and
      ``y = model.apply(params, x)``, computed in float64 (``numerics.x64``). The target of a
      finite teacher: a student of the same width can fit it exactly.
    - ``kind="gp"``: one draw of the infinite-width teacher, ``y ~ N(0, model.nngp(x))``
      (independently per output column), i.e. a sample from the network's NNGP prior at
      infinite width; ``y = L z``, ``z = rng.standard_normal((n, out_dim))``.

    Targets have shape (n,) for ``out_dim == 1``, else (n, out_dim); float64 numpy.
    """
    seed = _check_seed(seed)
    n = _check_count("n", n)
    d = _check_count("d", d)
    if kind not in ("network", "gp"):
        raise ValueError(f"kind must be 'network' or 'gp', got {kind!r}")
    x = sphere(n, d, seed)
    rng = np.random.default_rng(seed + 1)
    out_dim = int(getattr(model, "out_dim", 1))
    if kind == "network":
        import jax
        import jax.numpy as jnp

        from .numerics import x64

        key_seed = int(rng.integers(2**31))
        with x64():
            params = model.init(jax.random.PRNGKey(key_seed), d, dtype=jnp.float64)
            y = np.asarray(model.apply(params, jnp.asarray(x)), dtype=np.float64)
            params = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=np.float64), params)
        if not np.isfinite(y).all():
            raise NumericalError(f"the teacher network {model!r} produced non-finite outputs")
        return Teacher(x=_frozen(x), y=_frozen(y), kind=kind, params=params)
    from .kernels import analytic

    K = analytic.nngp(model, x)
    L, jitter = cholesky_with_jitter(K, what="the teacher's NNGP Gram matrix")
    y = L @ rng.standard_normal((n, out_dim))
    if out_dim == 1:
        y = y[:, 0]
    return Teacher(x=_frozen(x), y=_frozen(y), kind=kind, jitter=float(jitter))
