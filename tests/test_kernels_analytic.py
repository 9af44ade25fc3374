"""Infinite-width kernels of FullyConnected against independent computations.

Oracles: neural-tangents' stax kernel_fn (skipped when it is absent), scipy's adaptive
quadrature of the Gaussian expectations, and closed forms worked by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from pytest_ntk.science import oracle
from pytest_ntk.science.errors import NumericalError
from pytest_ntk.science.kernels import analytic
from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.numerics import x64

needs_nt = pytest.mark.skipif(not oracle.available(), reason=oracle.reason())


def _inputs(seed, n, d):
    return np.random.default_rng(seed).normal(size=(n, d))


# ------------------------------------------------------------------ neural-tangents oracle
def _nt_kernels(model, x1, x2):
    nt = oracle.load()
    stax = nt.stax
    acts = {"relu": stax.Relu, "erf": stax.Erf, "identity": stax.Identity,
            "square": lambda: stax.Monomial(2)}
    layers = []
    for _ in range(model.depth):
        layers += [
            stax.Dense(
                model.width,
                W_std=model.W_std,
                b_std=model.b_std,
                parameterization=model.parameterization,
            ),
            acts[model.activation](),
        ]
    layers.append(
        stax.Dense(1, W_std=model.W_std, b_std=model.b_std, parameterization=model.parameterization)
    )
    kernel_fn = stax.serial(*layers)[2]
    with x64():
        k = kernel_fn(x1, x2, ("nngp", "ntk"))
        return np.asarray(k.nngp, dtype=np.float64), np.asarray(k.ntk, dtype=np.float64)


def _assert_close(mine, ref, tol=1e-10):
    assert mine.shape == ref.shape
    assert mine.dtype == np.float64
    np.testing.assert_allclose(mine, ref, rtol=tol, atol=tol * np.abs(ref).max())


@needs_nt
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("activation", ["relu", "erf", "identity", "square"])
@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4])
def test_matches_neural_tangents(activation, depth, parameterization):
    rng = np.random.default_rng(1000 * depth + len(activation) + len(parameterization))
    W_std, b_std = rng.uniform(0.5, 2.0), rng.uniform(0.0, 1.5)
    model = FullyConnected(depth, 64, activation, W_std, b_std, parameterization)
    x1, x2 = _inputs(1, 9, 6), _inputs(2, 5, 6)
    for a, b in [(x1, None), (x1, x2)]:
        ref_nngp, ref_ntk = _nt_kernels(model, a, b)
        mine_nngp, mine_ntk = analytic.nngp_and_ntk(model, a, b)
        _assert_close(mine_nngp, ref_nngp)
        _assert_close(mine_ntk, ref_ntk)
        _assert_close(analytic.nngp(model, a, b), ref_nngp)
        _assert_close(analytic.ntk(model, a, b), ref_ntk)


@needs_nt
def test_tanh_matches_neural_tangents_numerical_layer():
    """nt's ElementwiseNumerical (Gauss-Hermite, autodiff derivative) as a second tanh oracle."""
    import warnings

    import jax.numpy as jnp

    stax = oracle.load().stax
    model = FullyConnected(2, 10, "tanh", 1.3, 0.4)
    # Gauss-Hermite with deg=150 is accurate to ~1e-9 only while the pre-activation variances
    # stay near 1 (tanh's poles at +-i pi/2 limit it); small inputs keep them there.
    x = 0.5 * _inputs(3, 5, 3)
    with x64(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nt warns that the layer is numerical
        layers = []
        for _ in range(2):
            layers += [
                stax.Dense(10, W_std=1.3, b_std=0.4),
                stax.ElementwiseNumerical(jnp.tanh, deg=150),
            ]
        layers.append(stax.Dense(1, W_std=1.3, b_std=0.4))
        k = stax.serial(*layers)[2](x, None, ("nngp", "ntk"))
    nngp, ntk = analytic.nngp_and_ntk(model, x)
    np.testing.assert_allclose(nngp, np.asarray(k.nngp), rtol=0, atol=1e-7)
    np.testing.assert_allclose(ntk, np.asarray(k.ntk), rtol=0, atol=1e-7)


# ------------------------------------------------------------------ adaptive quadrature
def _phi(activation):
    return {
        "relu": (lambda u: max(u, 0.0), lambda u: 1.0 if u > 0 else 0.0),
        "erf": (math.erf, lambda u: 2.0 / math.sqrt(math.pi) * math.exp(-u * u)),
        "tanh": (math.tanh, lambda u: 1.0 / math.cosh(u) ** 2),
        "identity": (lambda u: u, lambda u: 1.0),
        "square": (lambda u: u * u, lambda u: 2.0 * u),
    }[activation]


def _expect2(f, q1, q2, c):
    """E[f(u) f(v)] over N(0, [[q1, c], [c, q2]]) by scipy.integrate.dblquad on the density."""
    det = q1 * q2 - c * c
    i11, i12, i22 = q2 / det, -c / det, q1 / det
    norm = 1.0 / (2.0 * math.pi * math.sqrt(det))

    def integrand(v, u):
        return f(u) * f(v) * math.exp(-0.5 * (i11 * u * u + 2 * i12 * u * v + i22 * v * v)) * norm

    a, b = 12 * math.sqrt(q1), 12 * math.sqrt(q2)
    kw = {"epsabs": 1e-13, "epsrel": 1e-12}
    # split at 0 so the kinks of relu/step are on the boundaries
    return sum(
        integrate.dblquad(integrand, u0, u1, v0, v1, **kw)[0]
        for (u0, u1) in ((-a, 0.0), (0.0, a))
        for (v0, v1) in ((-b, 0.0), (0.0, b))
    )


def _expect1(f, q):
    """E[f(u)^2] over N(0, q) by scipy.integrate.quad."""
    s = math.sqrt(q)
    g = lambda z: f(s * z) ** 2 * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    return integrate.quad(g, -12, 0, epsabs=1e-14)[0] + integrate.quad(g, 0, 12, epsabs=1e-14)[0]


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh", "square"])
@pytest.mark.parametrize("q1,q2,c", [(1.3, 0.8, 0.5), (3.0, 2.0, -2.2), (0.2, 4.0, 0.05)])
def test_gaussian_expectations_match_adaptive_quadrature(activation, q1, q2, c):
    f, df = _phi(activation)
    sh, sd = analytic.gaussian_expectations(activation, q1, q2, c)
    assert sh == pytest.approx(_expect2(f, q1, q2, c), abs=1e-9)
    assert sd == pytest.approx(_expect2(df, q1, q2, c), abs=1e-9)


def _kernels_by_quadrature(activation, x, W_std, b_std, depth):
    """The NNGP/NTK recursion with every expectation from scipy's adaptive quadrature."""
    f, df = _phi(activation)
    n, d = x.shape
    sw2, sb2 = W_std**2, b_std**2
    cov = sw2 * (x @ x.T) / d + sb2
    theta = cov.copy()
    for _ in range(depth):
        sh = np.empty((n, n))
        sd = np.empty((n, n))
        for i in range(n):
            sh[i, i] = _expect1(f, cov[i, i])
            sd[i, i] = _expect1(df, cov[i, i])
            for j in range(i + 1, n):
                sh[i, j] = sh[j, i] = _expect2(f, cov[i, i], cov[j, j], cov[i, j])
                sd[i, j] = sd[j, i] = _expect2(df, cov[i, i], cov[j, j], cov[i, j])
        cov = sw2 * sh + sb2
        theta = cov + sw2 * sd * theta
    return cov, theta


def test_tanh_network_matches_adaptive_quadrature():
    x = _inputs(4, 3, 4)
    model = FullyConnected(2, 10, "tanh", 1.4, 0.3)
    ref_nngp, ref_ntk = _kernels_by_quadrature("tanh", x, 1.4, 0.3, 2)
    nngp, ntk = analytic.nngp_and_ntk(model, x)
    np.testing.assert_allclose(nngp, ref_nngp, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ntk, ref_ntk, rtol=0, atol=1e-9)
    # the cross path (x2 given) agrees with the Gram path off the diagonal and (to the
    # accuracy of arccos at a rounded 1) on it
    cross = analytic.ntk(model, x, x.copy())
    np.testing.assert_allclose(cross, ntk, rtol=0, atol=1e-9)


def test_relu_network_matches_adaptive_quadrature():
    """Without neural-tangents, the closed forms still face an independent computation."""
    x = _inputs(5, 3, 4)
    model = FullyConnected(2, 10, "relu", 1.2, 0.5)
    ref_nngp, ref_ntk = _kernels_by_quadrature("relu", x, 1.2, 0.5, 2)
    nngp, ntk = analytic.nngp_and_ntk(model, x)
    np.testing.assert_allclose(nngp, ref_nngp, rtol=1e-9, atol=0)
    np.testing.assert_allclose(ntk, ref_ntk, rtol=1e-9, atol=0)


@pytest.mark.parametrize("q", [0.05, 0.7, 2.0, 9.0, 40.0])
@pytest.mark.parametrize("rho", [-1.0, -0.4, 0.3, 0.97, 1.0])
def test_tanh_quadrature_converges(q, rho):
    """The default trapezoidal grid agrees with much finer grids; errors shrink as eps does."""
    c = rho * q

    def expect(eps, safety):
        z, w = analytic.tanh_quadrature_grid(q, eps=eps, safety=safety)
        return analytic._tanh_pairs(
            np.array([q]), np.array([q]), np.array([c]), z, w
        )

    ref = np.concatenate(expect(1e-16, 0.3))
    default = np.array(analytic.gaussian_expectations("tanh", q, q, c))
    err = {eps: np.abs(np.concatenate(expect(eps, 0.75)) - ref).max() for eps in (1e-3, 1e-6)}
    err[analytic.TANH_QUADRATURE_EPS] = np.abs(default - ref).max()
    print(q, rho, err)
    assert err[analytic.TANH_QUADRATURE_EPS] < 1e-10
    # convergence: each tighter target is at least 100x better, until rounding (1e-14) is hit
    assert err[1e-6] < max(1e-2 * err[1e-3], 1e-14)
    assert err[analytic.TANH_QUADRATURE_EPS] < max(1e-2 * err[1e-6], 1e-14)
    # the grid grows with the scale sqrt(q): more nodes for larger q
    assert analytic.tanh_quadrature_grid(4 * q)[0].size > analytic.tanh_quadrature_grid(q)[0].size


# ------------------------------------------------------------------ closed forms by hand
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_depth_zero_is_the_affine_kernel(parameterization):
    x1, x2 = _inputs(6, 4, 3), _inputs(7, 2, 3)
    model = FullyConnected(0, 8, "relu", 1.7, 0.6, parameterization)
    dot = x1 @ x2.T
    expected_nngp = 1.7**2 * dot / 3 + 0.6**2
    expected_ntk = expected_nngp if parameterization == "ntk" else dot + 1.0
    np.testing.assert_allclose(analytic.nngp(model, x1, x2), expected_nngp, rtol=1e-14)
    np.testing.assert_allclose(analytic.ntk(model, x1, x2), expected_ntk, rtol=1e-14)


def test_one_hidden_relu_layer_by_hand():
    x, y = [0.3, -1.2, 0.5], [1.1, 0.4, -0.7]
    W, b, d = 1.3, 0.2, 3
    dot = sum(p * q for p, q in zip(x, y))
    qx = W**2 * sum(p * p for p in x) / d + b**2
    qy = W**2 * sum(p * p for p in y) / d + b**2
    c = W**2 * dot / d + b**2
    theta = math.acos(c / math.sqrt(qx * qy))
    relu = (
        math.sqrt(qx * qy)
        / (2 * math.pi)
        * (math.sin(theta) + (math.pi - theta) * math.cos(theta))
    )
    step = (math.pi - theta) / (2 * math.pi)
    nngp = W**2 * relu + b**2
    ntk_param = nngp + W**2 * step * c
    width = 50
    standard = width * relu + 1 + W**2 * step * (dot + 1)
    xa, ya = np.array([x]), np.array([y])
    model = FullyConnected(1, width, "relu", W, b)
    assert analytic.nngp(model, xa, ya)[0, 0] == pytest.approx(nngp, rel=1e-14)
    assert analytic.ntk(model, xa, ya)[0, 0] == pytest.approx(ntk_param, rel=1e-14)
    std = FullyConnected(1, width, "relu", W, b, "standard")
    assert analytic.ntk(std, xa, ya)[0, 0] == pytest.approx(standard, rel=1e-14)


def test_one_hidden_erf_layer_by_hand():
    x, y = [0.3, -1.2], [1.1, 0.4]
    W, b, d = 0.9, 0.5, 2
    qx = W**2 * sum(p * p for p in x) / d + b**2
    qy = W**2 * sum(p * p for p in y) / d + b**2
    c = W**2 * sum(p * q for p, q in zip(x, y)) / d + b**2
    e = 2 / math.pi * math.asin(2 * c / math.sqrt((1 + 2 * qx) * (1 + 2 * qy)))
    de = 4 / math.pi / math.sqrt((1 + 2 * qx) * (1 + 2 * qy) - 4 * c * c)
    model = FullyConnected(1, 5, "erf", W, b)
    nngp, ntk = analytic.nngp_and_ntk(model, np.array([x]), np.array([y]))
    assert nngp[0, 0] == pytest.approx(W**2 * e + b**2, rel=1e-14)
    assert ntk[0, 0] == pytest.approx(W**2 * e + b**2 + W**2 * de * c, rel=1e-14)


def test_identity_network_is_a_linear_kernel():
    """With phi = id every layer is affine: S^{l+1} = w2 S^l + b2, T^{l+1} = S^{l+1} + w2 T^l."""
    x = _inputs(8, 5, 4)
    W, b, depth = 1.1, 0.7, 3
    s = W**2 * (x @ x.T) / 4 + b**2
    t = s.copy()
    for _ in range(depth):
        s = W**2 * s + b**2
        t = s + W**2 * t
    nngp, ntk = analytic.nngp_and_ntk(FullyConnected(depth, 3, "identity", W, b), x)
    np.testing.assert_allclose(nngp, s, rtol=1e-13)
    np.testing.assert_allclose(ntk, t, rtol=1e-13)


def test_standard_ntk_grows_linearly_with_width():
    """T(width) = width * E[relu(u) relu(v)] + (width-free terms) for one hidden layer."""
    x = _inputs(9, 4, 3)
    W, b = 1.0, 0.5

    def t(width):
        return analytic.ntk(FullyConnected(1, width, "relu", W, b, "standard"), x)

    cov = W**2 * (x @ x.T) / 3 + b**2
    q = np.diag(cov)
    sh, _ = analytic.gaussian_expectations("relu", q[:, None], q[None, :], cov)
    np.testing.assert_allclose(t(300) - t(100), 200 * sh, rtol=1e-12)
    # and the NNGP does not depend on the parameterization
    np.testing.assert_allclose(
        analytic.nngp(FullyConnected(1, 100, "relu", W, b, "standard"), x),
        analytic.nngp(FullyConnected(1, 100, "relu", W, b, "ntk"), x),
        rtol=1e-15,
    )


# ------------------------------------------------------------------ structure
@pytest.mark.parametrize("activation", ["relu", "erf", "tanh", "identity", "square"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_gram_is_symmetric_and_psd(activation, parameterization):
    x = _inputs(10, 25, 5)
    model = FullyConnected(2, 30, activation, 1.5, 0.4, parameterization)
    for k in analytic.nngp_and_ntk(model, x):
        assert k.shape == (25, 25) and k.dtype == np.float64
        np.testing.assert_array_equal(k, k.T)
        assert np.linalg.eigvalsh(k).min() > -1e-10 * np.abs(k).max()


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
def test_cross_kernel_is_a_block_of_the_gram(activation):
    x1, x2 = _inputs(11, 6, 3), _inputs(12, 4, 3)
    model = FullyConnected(3, 7, activation, 1.2, 0.3)
    full_nngp, full_ntk = analytic.nngp_and_ntk(model, np.vstack([x1, x2]))
    nngp, ntk = analytic.nngp_and_ntk(model, x1, x2)
    assert ntk.shape == (6, 4)
    np.testing.assert_allclose(nngp, full_nngp[:6, 6:], rtol=1e-12)
    np.testing.assert_allclose(ntk, full_ntk[:6, 6:], rtol=1e-12)
    np.testing.assert_allclose(analytic.ntk(model, x2, x1), ntk.T, rtol=1e-12)


def test_per_output_kernel_and_model_methods():
    x = _inputs(13, 5, 2)
    one = FullyConnected(2, 9, "erf", 1.1, 0.2)
    many = FullyConnected(2, 9, "erf", 1.1, 0.2, out_dim=4)
    np.testing.assert_array_equal(analytic.ntk(one, x), analytic.ntk(many, x))
    np.testing.assert_array_equal(one.ntk(x), analytic.ntk(one, x))
    np.testing.assert_array_equal(one.nngp(x), analytic.nngp(one, x))


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "x1,x2,match",
    [
        (np.ones(3), None, "x1 must be 2-D"),
        (np.ones((2, 3)), np.ones((2, 4)), "same feature dimension"),
        (np.array([[1.0, np.nan]]), None, "x1 has non-finite"),
        (np.ones((2, 2)), np.array([[np.inf, 0.0]]), "x2 has non-finite"),
        (np.ones((2, 2)) * 1j, None, "x1 must be real"),
        ([["a", "b"]], None, "x1 must be a 2-D array of real numbers"),
        (np.ones((2, 0)), None, "at least one feature"),
    ],
)
def test_bad_inputs_raise_value_error(x1, x2, match):
    with pytest.raises(ValueError, match=match):
        analytic.ntk(FullyConnected(1, 3), x1, x2)


def test_bad_model_raises_value_error():
    with pytest.raises(ValueError, match="FullyConnected"):
        analytic.nngp("relu", np.ones((2, 2)))
    with pytest.raises(ValueError, match="activation"):
        analytic.gaussian_expectations("gelu", 1.0, 1.0, 0.5)


def test_overflow_raises_numerical_error():
    model = FullyConnected(4, 3, "identity", 1e90, 0.0)
    with pytest.raises(NumericalError, match="non-finite"):
        analytic.ntk(model, np.ones((2, 2)))
