r"""Infinite-width NNGP kernel and NTK of a :class:`pytest_ntk.science.nets.FullyConnected` network.

Pure float64 numpy, vectorised over all pairs of inputs. The conventions are those of
neural-tangents' ``stax.serial(Dense, act, ..., Dense)`` with the same ``W_std``/``b_std`` in
every layer, so that ``nngp``/``ntk`` here equal its ``kernel_fn`` (tested to 1e-10).

Recursion
---------
Inputs ``x, y`` of dimension ``d``; ``L = depth`` hidden layers of width ``n``, then the readout
(layer ``L + 1``); ``sw2 = W_std**2``, ``sb2 = b_std**2``. Write ``S^l`` for the covariance of
layer ``l``'s pre-activations (its NNGP kernel), ``T^l`` for their NTK, and ``Sh^l``, ``Sd^l``
for the activation's Gaussian expectations

    Sh^l(x, y) = E[phi(u) phi(v)],   Sd^l(x, y) = E[phi'(u) phi'(v)],
    (u, v) ~ N(0, [[S^l(x, x), S^l(x, y)], [S^l(x, y), S^l(y, y)]]).

The input layer has ``Sh^0(x, y) = <x, y> / d`` (a per-unit covariance, as neural-tangents
normalises it), ``Sd^0 = 1`` and ``T^0 = 0``. Each dense layer ``l = 1, ..., L + 1`` with fan-in
``n_{l-1}`` (``n_0 = d``, otherwise ``n``) maps

    S^l = sw2 * Sh^{l-1} + sb2
    NTK parameterization:       T^l = S^l + sw2 * Sd^{l-1} * T^{l-1}
    standard parameterization:  T^l = n_{l-1} * Sh^{l-1} + 1 + sw2 * Sd^{l-1} * T^{l-1}

and ``nngp = S^{L+1}``, ``ntk = T^{L+1}``. In the standard parameterization a weight
``W_ij ~ N(0, sw2 / n_{l-1})`` is trained in its own units, so its gradient ``h_i(x)`` adds
``sum_i h_i(x) h_i(y) = n_{l-1} Sh^{l-1}`` (this grows with the width: the standard NTK depends
on ``model.width``, exactly as neural-tangents' ``Dense(parameterization="standard")``); the
bias adds 1 whatever ``b_std`` (it is a trained parameter even when initialised at 0), and the
first layer's weights add ``d * <x, y> / d = <x, y>``.

Gaussian expectations (``q1 = S(x, x)``, ``q2 = S(y, y)``, ``c = S(x, y)``,
``rho = c / sqrt(q1 q2)``, ``theta = arccos rho``):

- relu (arc-cosine kernels of degree 1 and 0, Cho & Saul 2009)::

      Sh = sqrt(q1 q2) / (2 pi) * (sin theta + (pi - theta) cos theta),   Sd = (pi - theta) / (2 pi)

  with ``relu'(0) = 0`` (jax's convention), so ``Sd = 0`` where ``q1 q2 = 0``.
- erf (Williams 1997)::

      Sh = (2 / pi) * arcsin(2 c / sqrt((1 + 2 q1)(1 + 2 q2))),
      Sd = (4 / pi) / sqrt((1 + 2 q1)(1 + 2 q2) - 4 c^2)

- identity: ``Sh = c``, ``Sd = 1``.
- square (``phi(u) = u^2``, ``phi'(u) = 2u``; Isserlis' theorem): ``Sh = q1 q2 + 2 c^2``,
  ``Sd = 4 c``. Each layer doubles the degree in the inputs, so the NTK of ``L`` hidden layers is a
  polynomial of degree ``2^L`` in ``<x, x'>`` (on the sphere) and has finite rank there.
- tanh: no closed form; a 2-D trapezoidal rule in standard-normal coordinates
  ``u = sqrt(q1) z1``, ``v = sqrt(q2) (rho z1 + sqrt(1 - rho^2) z2)`` (see
  :func:`tanh_quadrature_grid`). The integrand is analytic in a strip of half-width
  ``pi / (2 sqrt(q))`` (the poles of tanh), where the trapezoidal rule converges exponentially;
  the step is chosen from that width and the node count grows like ``sqrt(max q)``. Measured
  absolute error of each expectation: below 1e-11 for ``q`` in [0.001, 200] and every ``rho``
  in [-1, 1] (against a grid 3-4x finer); ``tests/test_kernels_analytic.py`` checks convergence
  and compares with scipy's adaptive ``dblquad`` and neural-tangents' numerical layer. Cost
  ``O(n1 n2 K^2)`` with ``K ~ 70 sqrt(max q)`` nodes per axis (at least 23): about a second per
  layer for 200 inputs with ``q ~ 1``, and tens of seconds per layer for n = 1000, against
  milliseconds for the closed forms.

The kernel is the same for every output unit, so for ``out_dim > 1`` the per-output kernel is
returned (the full kernel is it times the identity over outputs).

Diagonal entries of a Gram matrix (``x2=None``) use ``rho = 1`` exactly (the 1-D forms
``Sh = E[phi(u)^2]``, ``Sd = E[phi'(u)^2]``), so no ``arccos`` of a rounded 1 enters them.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import NumericalError

__all__ = [
    "nngp",
    "ntk",
    "nngp_and_ntk",
    "gaussian_expectations",
    "tanh_quadrature_grid",
    "ACTIVATIONS",
    "TANH_QUADRATURE_EPS",
]

ACTIVATIONS = ("relu", "erf", "tanh", "identity", "square")
PARAMETERIZATIONS = ("ntk", "standard")

TANH_QUADRATURE_EPS = 1e-13
"""Target of the trapezoidal step rule for tanh (the measured error is below 1e-11)."""

_TWO_PI = 2.0 * math.pi
_CHUNK_ELEMENTS = 1 << 21  # pairs * nodes^2 evaluated at once in the tanh quadrature


# ---------------------------------------------------------------------------------- inputs
def _check_model(model):
    fields = ("depth", "width", "activation", "W_std", "b_std", "parameterization")
    missing = [f for f in fields if not hasattr(model, f)]
    if missing:
        raise ValueError(
            f"model must be a pytest_ntk.science.nets.FullyConnected, got {type(model).__name__} "
            f"(missing {', '.join(missing)})"
        )
    if model.activation not in ACTIVATIONS:
        raise ValueError(
            f"model.activation must be one of {ACTIVATIONS}, got {model.activation!r}"
        )
    if model.parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"model.parameterization must be one of {PARAMETERIZATIONS}, "
            f"got {model.parameterization!r}"
        )
    if int(model.depth) != model.depth or model.depth < 0:
        raise ValueError(f"model.depth must be an integer >= 0, got {model.depth!r}")
    for name in ("W_std", "b_std"):
        value = float(getattr(model, name))
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"model.{name} must be finite and >= 0, got {value!r}")


def as_inputs(x, name: str) -> np.ndarray:
    """``x`` as a finite float64 array of shape (n, d), or a ValueError naming ``name``."""
    if np.iscomplexobj(x):
        raise ValueError(f"{name} must be real, got a complex array")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a 2-D array of real numbers, got {type(x).__name__} ({exc})"
        ) from None
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (n, d), got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one feature, got shape {a.shape}")
    finite = np.isfinite(a)
    if not finite.all():
        row = int(np.argwhere(~finite)[0, 0])
        raise ValueError(f"{name} has non-finite entries (first in row {row}: {a[row].tolist()})")
    return a


def input_pair(x1, x2) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate ``(x1, x2)``; ``x2=None`` means ``x2 = x1`` (then ``symmetric`` is True)."""
    a = as_inputs(x1, "x1")
    if x2 is None:
        return a, a, True
    b = as_inputs(x2, "x2")
    if b.shape[1] != a.shape[1]:
        raise ValueError(
            f"x1 and x2 must have the same feature dimension, got x1 of shape {a.shape} "
            f"and x2 of shape {b.shape}"
        )
    return a, b, False


def gram(x1: np.ndarray, x2: np.ndarray, symmetric: bool):
    """``(<x1_i, x2_j>, |x1_i|^2, |x2_j|^2)``.

    With ``symmetric`` the Gram is made exactly symmetric and its diagonal is the norms.
    """
    g = x1 @ x2.T
    if symmetric:
        g = 0.5 * (g + g.T)
        q = np.diagonal(g).copy()
        return g, q, q
    return g, np.einsum("ij,ij->i", x1, x1), np.einsum("ij,ij->i", x2, x2)


# ------------------------------------------------------------------ Gaussian expectations
def _correlation(q1, q2, c):
    """``rho = c / sqrt(q1 q2)`` clipped to [-1, 1] (0 where ``q1 q2 = 0``), and ``sqrt(q1 q2)``."""
    s = np.sqrt(q1 * q2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(s > 0, c / np.where(s > 0, s, 1.0), 0.0)
    return np.clip(rho, -1.0, 1.0), s


def _relu(q1, q2, c):
    rho, s = _correlation(q1, q2, c)
    theta = np.arccos(rho)
    pi_minus = math.pi - theta
    sh = s / _TWO_PI * (np.sqrt(1.0 - rho * rho) + pi_minus * rho)
    sd = np.where(s > 0, pi_minus / _TWO_PI, 0.0)
    return sh, sd


def _erf(q1, q2, c):
    # (1 + 2 q1)(1 + 2 q2) - 4 c^2 = 1 + 2 (q1 + q2) + 4 (q1 q2 - c^2), with q1 q2 >= c^2
    a = (1.0 + 2.0 * q1) * (1.0 + 2.0 * q2)
    det = 1.0 + 2.0 * (q1 + q2) + 4.0 * np.maximum(q1 * q2 - c * c, 0.0)
    sh = (2.0 / math.pi) * np.arcsin(np.clip(2.0 * c / np.sqrt(a), -1.0, 1.0))
    sd = (4.0 / math.pi) / np.sqrt(det)
    return sh, sd


def _identity(q1, q2, c):
    c = np.asarray(c, dtype=np.float64)
    return c.copy(), np.ones_like(c)


def _square(q1, q2, c):
    c = np.asarray(c, dtype=np.float64)
    return q1 * q2 + 2.0 * c * c, 4.0 * c


def tanh_quadrature_grid(q_max: float, eps: float = TANH_QUADRATURE_EPS, safety: float = 0.75):
    r"""Nodes and weights of the trapezoidal rule for ``E[f(z)]``, ``z ~ N(0, 1)``, used for tanh.

    For ``f(z) = g(sqrt(q) z)`` with ``g`` analytic in the strip ``|Im| < pi / 2`` (tanh, sech^2),
    ``f`` is analytic for ``|Im z| < tau = safety * pi / (2 sqrt(q))``. The trapezoidal error of
    ``f * gaussian`` is about ``exp(-2 pi tau / h + tau^2 / 2)``; the step is the largest ``h``
    making that ``eps`` for some admissible ``tau`` (at most ``sqrt(2 ln(1/eps))``, where the
    bound is best: then ``h = pi sqrt(2 / ln(1/eps))`` resolves the Gaussian itself). Nodes run
    over ``|z| <= sqrt(2 ln(1/eps)) + 1``. Weights ``h * gaussian(z)`` sum to 1
    within ~1e-16.
    """
    q_max = float(q_max)
    if not math.isfinite(q_max) or q_max < 0:
        raise ValueError(f"q_max must be finite and >= 0, got {q_max!r}")
    log_inv = math.log(1.0 / eps)
    # the error bound is best for tau = sqrt(2 ln(1/eps)) (the Gaussian's own resolution)
    tau = math.sqrt(2.0 * log_inv)
    if q_max > 0:
        tau = min(tau, safety * math.pi / (2.0 * math.sqrt(q_max)))
    h = _TWO_PI * tau / (log_inv + 0.5 * tau * tau)
    half_width = math.sqrt(2.0 * log_inv) + 1.0
    m = int(math.ceil(half_width / h))
    z = np.arange(-m, m + 1, dtype=np.float64) * h
    w = np.exp(-0.5 * z * z) * (h / math.sqrt(_TWO_PI))
    return z, w


def _tanh_pairs(q1, q2, c, z, w):
    """``E[tanh u tanh v]`` and ``E[sech^2 u sech^2 v]`` for flat arrays of pairs (2-D rule)."""
    rho, _ = _correlation(q1, q2, c)
    a = np.sqrt(q1)
    b = np.sqrt(q2) * rho  # v = b z1 + s z2
    s = np.sqrt(q2) * np.sqrt(1.0 - rho * rho)
    n_nodes = z.size
    sh = np.empty(q1.shape, dtype=np.float64)
    sd = np.empty(q1.shape, dtype=np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // (n_nodes * n_nodes))
    for start in range(0, q1.size, chunk):
        sl = slice(start, start + chunk)
        tu = np.tanh(a[sl, None] * z[None, :])  # (P, K): the z1 factor
        du = (1.0 - tu * tu) * w
        tu *= w
        v = b[sl, None, None] * z[None, :, None] + s[sl, None, None] * z[None, None, :]
        np.tanh(v, out=v)  # (P, K, K)
        sh[sl] = np.einsum("pk,pk->p", tu, v @ w)
        np.multiply(v, v, out=v)
        np.subtract(1.0, v, out=v)
        sd[sl] = np.einsum("pk,pk->p", du, v @ w)
    return sh, sd


def _tanh(q1, q2, c):
    q1, q2, c = np.broadcast_arrays(
        np.asarray(q1, np.float64), np.asarray(q2, np.float64), np.asarray(c, np.float64)
    )
    shape = c.shape
    q1, q2, c = q1.ravel(), q2.ravel(), c.ravel()
    q_max = float(max(q1.max(initial=0.0), q2.max(initial=0.0)))
    z, w = tanh_quadrature_grid(q_max)
    sh, sd = _tanh_pairs(q1, q2, c, z, w)
    return sh.reshape(shape), sd.reshape(shape)


def _tanh_diagonal(q):
    z, w = tanh_quadrature_grid(float(q.max(initial=0.0)))
    t = np.tanh(np.sqrt(q)[:, None] * z[None, :])
    t2 = t * t
    return t2 @ w, ((1.0 - t2) ** 2) @ w


_EXPECTATIONS = {"relu": _relu, "erf": _erf, "identity": _identity, "tanh": _tanh, "square": _square}


def gaussian_expectations(activation: str, q1, q2, c):
    r"""``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for ``(u, v) ~ N(0, [[q1, c], [c, q2]])``.

    Elementwise over broadcastable float64 arrays (formulas in the module docstring).
    """
    if activation not in _EXPECTATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    q1, q2, c = (np.asarray(v, dtype=np.float64) for v in (q1, q2, c))
    return _EXPECTATIONS[activation](q1, q2, c)


def _diagonal_expectations(activation: str, q):
    """``(E[phi(u)^2], E[phi'(u)^2])`` for ``u ~ N(0, q)`` (the ``rho = 1`` forms)."""
    if activation == "relu":
        return 0.5 * q, np.where(q > 0, 0.5, 0.0)
    if activation == "erf":
        return (2.0 / math.pi) * np.arcsin(2.0 * q / (1.0 + 2.0 * q)), (4.0 / math.pi) / np.sqrt(
            1.0 + 4.0 * q
        )
    if activation == "identity":
        return q.copy(), np.ones_like(q)
    if activation == "square":
        return 3.0 * q * q, 4.0 * q
    return _tanh_diagonal(q)


def _layer_expectations(activation, q1, q2, c, symmetric):
    """Cross expectations (n1, n2) and the per-input ``E[phi(u)^2]`` of both sides."""
    if activation == "tanh" and symmetric:
        # compute the strict upper triangle only, mirror it, and fill the diagonal in 1-D
        n = q1.size
        iu, ju = np.triu_indices(n, 1)
        sh = np.empty((n, n))
        sd = np.empty((n, n))
        sh_u, sd_u = _tanh(q1[iu], q1[ju], c[iu, ju])
        sh[iu, ju] = sh_u
        sh[ju, iu] = sh_u
        sd[iu, ju] = sd_u
        sd[ju, iu] = sd_u
    else:
        sh, sd = _EXPECTATIONS[activation](q1[:, None], q2[None, :], c)
    h1, d1 = _diagonal_expectations(activation, q1)
    if symmetric:
        idx = np.arange(q1.size)
        sh[idx, idx] = h1
        sd[idx, idx] = d1
        return sh, sd, h1, h1
    h2, _ = _diagonal_expectations(activation, q2)
    return sh, sd, h1, h2


# ---------------------------------------------------------------------------- recursion
def _recursion(model, x1, x2, want_ntk: bool):
    _check_model(model)
    a, b, symmetric = input_pair(x1, x2)
    d = a.shape[1]
    g, qa, qb = gram(a, b, symmetric)
    sw2, sb2 = float(model.W_std) ** 2, float(model.b_std) ** 2
    standard = model.parameterization == "standard"
    depth, width = int(model.depth), int(model.width)

    # post-activation covariances of the previous layer (layer 0: the inputs, per unit)
    hat_c, hat_q1, hat_q2 = g / d, qa / d, qb / d
    dot_c = None
    theta = None
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in range(depth + 1):
            fan_in = d if layer == 0 else width
            c = sw2 * hat_c + sb2
            q1 = sw2 * hat_q1 + sb2
            q2 = q1 if symmetric else sw2 * hat_q2 + sb2
            if want_ntk:
                new_theta = (fan_in * hat_c + 1.0) if standard else c.copy()
                if theta is not None:
                    new_theta += sw2 * dot_c * theta
                theta = new_theta
            if layer == depth:
                break
            hat_c, dot_c, hat_q1, hat_q2 = _layer_expectations(
                model.activation, q1, q2, c, symmetric
            )
    for name, value in (("nngp", c), ("ntk", theta)):
        if value is not None and not np.isfinite(value).all():
            raise NumericalError(
                f"the infinite-width {name} of {model!r} has non-finite entries "
                f"(max |x| = {max(np.abs(a).max(), np.abs(b).max()):.3g}): "
                "the recursion overflowed; lower W_std/depth or rescale the inputs"
            )
    return c, theta


def nngp(model, x1, x2=None) -> np.ndarray:
    r"""Infinite-width NNGP kernel ``S^{L+1}(x1_i, x2_j)`` of ``model``'s output, shape (n1, n2).

    ``S^l = W_std^2 E[phi(u) phi(v)] + b_std^2`` over the previous layer's Gaussian, starting
    from ``S^1 = W_std^2 <x, y> / d + b_std^2`` (module docstring). The same in both
    parameterizations. ``x2=None`` gives the Gram matrix of ``x1`` (exactly symmetric).
    """
    return _recursion(model, x1, x2, want_ntk=False)[0]


def ntk(model, x1, x2=None) -> np.ndarray:
    r"""Infinite-width NTK ``T^{L+1}(x1_i, x2_j)`` of ``model``'s output, shape (n1, n2).

    NTK parameterization: ``T^l = S^l + W_std^2 Sd^{l-1} T^{l-1}``, ``T^1 = S^1``.
    Standard parameterization: ``T^l = n_{l-1} Sh^{l-1} + 1 + W_std^2 Sd^{l-1} T^{l-1}``,
    ``T^1 = <x, y> + 1``, with ``n_{l-1} = model.width`` for ``l >= 2`` (so it grows with width,
    as in neural-tangents). ``x2=None`` gives the Gram matrix of ``x1`` (exactly symmetric).
    """
    return _recursion(model, x1, x2, want_ntk=True)[1]


def nngp_and_ntk(model, x1, x2=None) -> tuple[np.ndarray, np.ndarray]:
    """Both kernels from one pass of the recursion: ``(nngp, ntk)``."""
    return _recursion(model, x1, x2, want_ntk=True)
