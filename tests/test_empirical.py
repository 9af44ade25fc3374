"""Empirical kernels: the structured FC path against autodiff, the generic path's methods against each
other, the seed averages against closed forms (by hand, and neural-tangents' when available)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from pytest_ntk.science import empirical, oracle
from pytest_ntk.science.errors import NumericalError
from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.numerics import x64

ACTS = ["relu", "erf", "tanh", "identity", "square"]
needs_oracle = pytest.mark.skipif(not oracle.available(), reason=oracle.reason())


def _inputs(n, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _params(model, in_dim, seed=1, dtype=jnp.float32):
    if dtype == jnp.float64:
        with x64():
            return model.init(jax.random.PRNGKey(seed), in_dim, jnp.float64)
    return model.init(jax.random.PRNGKey(seed), in_dim, dtype)


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def _brute_force_ntk(model, params, x1, x2):
    """J(x1) J(x2)^T with the whole Jacobian materialised over the flattened parameters (float64)."""
    with x64():
        flat, unravel = ravel_pytree(jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params))

        def f(theta, x):
            return model.apply(unravel(theta), jnp.asarray(x, jnp.float64))

        jac = jax.jit(jax.jacfwd(f))
        return np.asarray(jac(flat, x1) @ jac(flat, x2).T)


# ------------------------------------------------------------------ structured vs autodiff
def _check_against_generic(model, params, tol):
    """fc_empirical_ntk, with x2 given and x2=None, against the generic Jacobian contraction.

    x2 has as many rows as x1, so generic(x1, x2) and generic(x1, x1) share one compilation.
    """
    x1, x2 = _inputs(6), _inputs(6, seed=2)
    generic_12 = empirical.empirical_ntk(model.apply, params, x1, x2, method="jacobian")
    generic_11 = empirical.empirical_ntk(model.apply, params, x1, x1, method="jacobian")
    given = empirical.fc_empirical_ntk(model, params, x1, x2)
    sym = empirical.fc_empirical_ntk(model, params, x1)
    for kernel in (generic_12, generic_11, given, sym):
        assert kernel.dtype == np.float64 and kernel.shape == (6, 6)
    assert _rel(given, generic_12) < tol
    assert _rel(sym, generic_11) < tol
    np.testing.assert_array_equal(sym, sym.T)  # the mirrored symmetric path
    return given


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("activation", ACTS)
def test_structured_matches_generic_float64(activation, depth, parameterization):
    """fc_empirical_ntk == Jacobian contraction in float64, to round-off."""
    model = FullyConnected(depth, 12, activation, W_std=1.3, b_std=0.4, parameterization=parameterization)
    _check_against_generic(model, _params(model, 3, dtype=jnp.float64), 1e-12)


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("activation", ACTS)
def test_structured_matches_generic_float32(activation, depth):
    """In float32 (the default for float32 weights) the two paths agree to 1e-5.

    The parameterization alternates with depth, so both meet every activation.
    """
    parameterization = ("ntk", "standard")[depth % 2 ^ (activation in ("erf", "identity", "square"))]
    model = FullyConnected(depth, 12, activation, W_std=1.3, b_std=0.4, parameterization=parameterization)
    _check_against_generic(model, _params(model, 3), 1e-5)


def test_float32_is_within_1e5_of_the_exact_kernel():
    """The same float32 weights computed in float64 (dtype=) give the exact kernel of those weights."""
    model = FullyConnected(3, 64, "relu", W_std=1.3, b_std=0.4)
    p32 = _params(model, 3)
    x1, x2 = _inputs(6), _inputs(5, seed=2)
    exact = empirical.fc_empirical_ntk(model, p32, x1, x2, dtype=np.float64)
    assert _rel(empirical.fc_empirical_ntk(model, p32, x1, x2), exact) < 1e-5
    assert _rel(empirical.empirical_ntk(model.apply, p32, x1, x2), exact) < 1e-5


@pytest.mark.parametrize(
    "activation,depth,parameterization", [("relu", 2, "ntk"), ("erf", 3, "standard")]
)
def test_structured_matches_materialised_jacobian(activation, depth, parameterization):
    """Against J J^T of the full Jacobian over the flattened parameters (jacfwd, independent of vmap/jacrev)."""
    model = FullyConnected(depth, 9, activation, W_std=0.9, b_std=1.1, parameterization=parameterization)
    x1, x2 = _inputs(5), _inputs(3, seed=3)
    p = _params(model, 3, dtype=jnp.float64)
    assert _rel(empirical.fc_empirical_ntk(model, p, x1, x2), _brute_force_ntk(model, p, x1, x2)) < 1e-12


def test_depth0_is_the_linear_kernel_by_hand():
    """Depth 0, NTK parameterization: f = W_std/sqrt(d) x.W + b_std b, so Theta = W_std^2 <x,x'>/d + b_std^2."""
    model = FullyConnected(0, 1, "relu", W_std=1.7, b_std=0.3)
    x1, x2 = _inputs(5, d=4), _inputs(3, d=4, seed=5)
    p = _params(model, 4, dtype=jnp.float64)
    expected = 1.7**2 * (x1 @ x2.T) / 4 + 0.3**2
    np.testing.assert_allclose(empirical.fc_empirical_ntk(model, p, x1, x2), expected, rtol=1e-13)
    # the model's own methods route here; at depth 0 the NNGP is the same linear kernel
    np.testing.assert_allclose(model.empirical_ntk(p, x1, x2), expected, rtol=1e-13)
    np.testing.assert_allclose(model.empirical_nngp(p, x1, x2, batch_size=2), expected, rtol=1e-13)


# ------------------------------------------------------------------ outputs, blocks, methods
def test_multi_output_full_and_mean():
    model = FullyConnected(2, 10, "tanh", W_std=1.2, b_std=0.5, out_dim=3)
    x1, x2 = _inputs(5), _inputs(4, seed=4)
    p = _params(model, 3, dtype=jnp.float64)
    full = empirical.fc_empirical_ntk(model, p, x1, x2, outputs="full")
    mean = empirical.fc_empirical_ntk(model, p, x1, x2)
    assert full.shape == (5, 4, 3, 3) and mean.shape == (5, 4)
    np.testing.assert_allclose(mean, np.einsum("ijaa->ij", full) / 3, rtol=1e-12)
    assert _rel(full, empirical.empirical_ntk(model.apply, p, x1, x2, method="jacobian", outputs="full")) < 1e-12
    assert _rel(full, empirical.empirical_ntk(model.apply, p, x1, x2, method="ntvp", outputs="full")) < 1e-12
    assert _rel(mean, empirical.empirical_ntk(model.apply, p, x1, x2, method="ntvp")) < 1e-12
    # symmetry of the full kernel: Theta_ab(x, x') = Theta_ba(x', x)
    sym = empirical.fc_empirical_ntk(model, p, x1, None, outputs="full")
    np.testing.assert_allclose(sym, np.transpose(sym, (1, 0, 3, 2)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("outputs", ["mean", "full"])
def test_blocked_equals_fused(outputs):
    """Blocks (padded to one shape, upper triangle mirrored when x2 is None) reproduce the one-call kernel."""
    model = FullyConnected(2, 8, "erf", out_dim=2)
    x1, x2 = _inputs(11), _inputs(7, seed=6)
    p = _params(model, 3, dtype=jnp.float64)
    for other in (None, x2):
        fused = empirical.fc_empirical_ntk(model, p, x1, other, outputs=outputs)
        np.testing.assert_allclose(
            empirical.fc_empirical_ntk(model, p, x1, other, outputs=outputs, batch_size=4), fused, rtol=1e-12
        )
        for method in ("jacobian", "ntvp"):
            blocked = empirical.empirical_ntk(model.apply, p, x1, other, method=method, batch_size=3, outputs=outputs)
            np.testing.assert_allclose(blocked, fused, rtol=1e-11, atol=1e-12)
        nngp = empirical.fc_empirical_nngp(model, p, x1, other)
        np.testing.assert_allclose(empirical.fc_empirical_nngp(model, p, x1, other, batch_size=4), nngp, rtol=1e-12)


def test_auto_rule_picks_by_parameter_count_times_batch():
    # P = 1000 float32 parameters, K = 1: a row's Jacobian is 4000 bytes; 2 rows of Jacobians per block pair
    assert empirical.generic._choose_method("auto", 1000, 1, 4, 128, 2 * 128 * 4000) == ("jacobian", 128, 128)
    method, rows, _ = empirical.generic._choose_method("auto", 1000, 1, 4, 128, 2 * 20 * 4000)
    assert (method, rows) == ("jacobian", 20)
    method, rows, chunk = empirical.generic._choose_method("auto", 1000, 1, 4, 128, 2 * 10 * 4000)
    assert (method, rows, chunk) == ("ntvp", 128, 20)
    # and the auto result is the kernel, whichever it picks
    model = FullyConnected(1, 6, "relu")
    p = _params(model, 3, dtype=jnp.float64)
    x = _inputs(5)
    exact = empirical.fc_empirical_ntk(model, p, x)
    tiny_budget = empirical.empirical_ntk(model.apply, p, x, memory_budget=8 * p[0]["W"].size)
    assert _rel(tiny_budget, exact) < 1e-12


def test_generic_accepts_any_pytree_model():
    """A model that is not a FullyConnected: f(x) = sum(tanh(x A) * c) + s, params as a dict."""
    rng = np.random.default_rng(7)
    with x64():
        params = {"A": jnp.asarray(rng.normal(size=(3, 5))), "c": jnp.asarray(rng.normal(size=5)), "s": jnp.asarray(0.3)}

    def apply_fn(p, x):
        return jnp.tanh(x @ p["A"]) @ p["c"] + p["s"]

    x1, x2 = _inputs(4), _inputs(3, seed=8)
    # by hand: df/dA_ij = x_i c_j sech^2(xA)_j, df/dc_j = tanh(xA)_j, df/ds = 1
    t1, t2 = np.tanh(x1 @ np.asarray(params["A"])), np.tanh(x2 @ np.asarray(params["A"]))
    c = np.asarray(params["c"])
    g1, g2 = (1 - t1**2) * c, (1 - t2**2) * c
    expected = (x1 @ x2.T) * (g1 @ g2.T) + t1 @ t2.T + 1.0
    for method in ("jacobian", "ntvp", "auto"):
        np.testing.assert_allclose(empirical.empirical_ntk(apply_fn, params, x1, x2, method=method), expected, rtol=1e-12)


# ------------------------------------------------------------------ NNGP
def test_nngp_is_the_readout_ntk_in_ntk_parameterization():
    """In the NTK parameterization the readout's own NTK contribution is W_std^2/n_L <h,h'> + b_std^2: the NNGP."""
    model = FullyConnected(2, 10, "relu", W_std=1.4, b_std=0.6)
    x1, x2 = _inputs(5), _inputs(4, seed=9)
    p = _params(model, 3, dtype=jnp.float64)
    hidden = p[:-1]

    def readout_only(readout, x):
        return model.apply(hidden + [readout], x)

    expected = empirical.empirical_ntk(readout_only, p[-1], x1, x2, method="jacobian")
    np.testing.assert_allclose(empirical.fc_empirical_nngp(model, p, x1, x2), expected, rtol=1e-12)


def test_nngp_is_the_covariance_over_readout_draws():
    """Fix the hidden weights, redraw the readout many times: the sample covariance of f approaches the NNGP.

    Standard parameterization (the test above covers the NTK one exactly): the readout is drawn by
    model.init with variance W_std^2 / n_L, which the NNGP must carry.
    """
    model = FullyConnected(1, 16, "erf", W_std=1.5, b_std=0.7, parameterization="standard", out_dim=2)
    x = _inputs(4)
    p = _params(model, 3, dtype=jnp.float64)
    draws = 20000
    with x64():
        keys = jax.random.split(jax.random.PRNGKey(11), draws)
        outs = jax.vmap(lambda k: model.apply(p[:-1] + [model.init(k, 3, jnp.float64)[-1]], x))(keys)
    outs = np.asarray(outs)  # (draws, n, 2)
    cov = np.einsum("sia,sja->ij", outs, outs) / (2 * draws)
    nngp = empirical.fc_empirical_nngp(model, p, x)
    # standard error of each covariance entry is about sqrt(K_ii K_jj / (2 draws)); allow 5 of them
    scale = np.sqrt(np.outer(np.diag(nngp), np.diag(nngp)) / (2 * draws))
    assert np.all(np.abs(cov - nngp) < 5 * scale)


# ------------------------------------------------------------------ oracle: neural-tangents' empirical NTK
def _stax(nt, model):
    stax = nt.stax
    act = {"relu": stax.Relu, "erf": stax.Erf, "identity": stax.Identity}[model.activation]
    dense = {"W_std": model.W_std, "b_std": model.b_std, "parameterization": model.parameterization}
    layers = []
    for _ in range(model.depth):
        layers += [stax.Dense(model.width, **dense), act()]
    layers.append(stax.Dense(model.out_dim, **dense))
    return stax.serial(*layers)


def _to_stax_params(model, params):
    out = []
    for i, layer in enumerate(params):
        out.append((layer["W"], layer["b"][None, :]))
        if i < model.depth:
            out.append(())
    return out


@needs_oracle
@pytest.mark.parametrize("activation,parameterization", [("relu", "ntk"), ("erf", "standard")])
def test_structured_matches_neural_tangents_empirical(activation, parameterization):
    nt = oracle.load()
    model = FullyConnected(2, 16, activation, W_std=1.2, b_std=0.3, parameterization=parameterization)
    _, apply_fn, _ = _stax(nt, model)
    x1, x2 = _inputs(5), _inputs(4, seed=12)
    p = _params(model, 3, dtype=jnp.float64)
    with x64():
        ntk_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0))
        theirs = np.asarray(ntk_fn(x1, x2, _to_stax_params(model, p)))
        same_fn = np.asarray(apply_fn(_to_stax_params(model, p), jnp.asarray(x1)))
        ours = np.asarray(model.apply(p, jnp.asarray(x1)))
    np.testing.assert_allclose(same_fn[:, 0], ours, rtol=1e-12)  # the mapped parameters: the same network
    assert _rel(empirical.fc_empirical_ntk(model, p, x1, x2), theirs.reshape(5, 4)) < 1e-12


# ------------------------------------------------------------------ Monte Carlo
def _arccos_relu_depth1(x1, x2, W_std, b_std):
    """Closed-form NNGP and NTK of depth-1 ReLU networks in the NTK parameterization (arc-cosine kernel).

    K0 = W^2 <x,x'>/d + b^2; with cos t = K0(x,x')/sqrt(K0(x,x)K0(x',x')),
    NNGP = W^2 sqrt(K0 K0')/(2 pi) (sin t + (pi - t) cos t) + b^2, and
    NTK  = NNGP + W^2 K0(x,x') (pi - t)/(2 pi).
    """
    d = x1.shape[1]
    k12 = W_std**2 * (x1 @ x2.T) / d + b_std**2
    k11 = W_std**2 * np.sum(x1**2, 1) / d + b_std**2
    k22 = W_std**2 * np.sum(x2**2, 1) / d + b_std**2
    norm = np.sqrt(np.outer(k11, k22))
    t = np.arccos(np.clip(k12 / norm, -1, 1))
    nngp = W_std**2 * norm / (2 * np.pi) * (np.sin(t) + (np.pi - t) * np.cos(t)) + b_std**2
    ntk = nngp + W_std**2 * k12 * (np.pi - t) / (2 * np.pi)
    return nngp, ntk


def test_monte_carlo_approaches_arccos_kernel_as_width_grows():
    x1, x2 = _inputs(6, seed=13), _inputs(5, seed=14)
    nngp_inf, ntk_inf = _arccos_relu_depth1(x1, x2, 1.4, 0.5)
    errs, spreads = {}, {}
    for width in (64, 256, 1024):
        model = FullyConnected(1, width, "relu", W_std=1.4, b_std=0.5)
        mc = empirical.monte_carlo_kernels(model, jax.random.PRNGKey(width), x1, x2, n_samples=256)
        errs[width] = (_rel(mc.nngp, nngp_inf), _rel(mc.ntk, ntk_inf))
        spreads[width] = mc.relative_spread("ntk")
    for kind in (0, 1):
        assert errs[1024][kind] < errs[64][kind] / 2, errs
        assert errs[1024][kind] < 0.01, errs
    # per-seed spread ~ 1/sqrt(width): a factor 4 from 64 to 1024
    assert 2.5 < spreads[64] / spreads[1024] < 6.5, spreads


@needs_oracle
def test_monte_carlo_approaches_neural_tangents_closed_form():
    """Depth 2, erf, standard parameterization (the by-hand test above covers depth-1 ReLU, NTK)."""
    nt = oracle.load()
    x1 = _inputs(6, seed=15)
    errs = {}
    for width in (64, 1024):
        model = FullyConnected(2, width, "erf", W_std=1.3, b_std=0.2, parameterization="standard")
        _, _, kernel_fn = _stax(nt, model)
        with x64():
            k = kernel_fn(jnp.asarray(x1), None, ("nngp", "ntk"))
            nngp_inf, ntk_inf = np.asarray(k.nngp), np.asarray(k.ntk)
        mc = empirical.monte_carlo_kernels(model, jax.random.PRNGKey(100 + width), x1, n_samples=32)
        errs[width] = (_rel(mc.nngp, nngp_inf), _rel(mc.ntk, ntk_inf))
    for kind in (0, 1):
        assert errs[1024][kind] < errs[64][kind] / 2, errs
        assert errs[1024][kind] < 0.02, errs


def test_monte_carlo_samples_are_the_seeded_empirical_kernels():
    """Sample s is exactly the empirical kernel of model.init(split(key, S)[s]); chunking changes nothing."""
    model = FullyConnected(1, 8, "tanh", W_std=1.1, b_std=0.2, out_dim=2)
    x1, x2 = _inputs(4), _inputs(3, seed=16)
    key = jax.random.PRNGKey(3)
    mc = empirical.monte_carlo_kernels(model, key, x1, x2, n_samples=5, dtype=np.float64, keep_samples=True)
    chunked = empirical.monte_carlo_kernels(model, key, x1, x2, n_samples=5, dtype=np.float64, batch=2)
    keys = jax.random.split(key, 5)
    with x64():
        for s in range(5):
            p = model.init(keys[s], 3, jnp.float64)
            np.testing.assert_allclose(mc.ntk_samples[s], empirical.fc_empirical_ntk(model, p, x1, x2), rtol=1e-12)
            np.testing.assert_allclose(mc.nngp_samples[s], empirical.fc_empirical_nngp(model, p, x1, x2), rtol=1e-12)
    np.testing.assert_allclose(mc.ntk, mc.ntk_samples.mean(0), rtol=1e-12)
    np.testing.assert_allclose(mc.ntk_std, mc.ntk_samples.std(0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(mc.nngp_std, mc.nngp_samples.std(0, ddof=1), rtol=1e-10)
    for a, b in ((mc.ntk, chunked.ntk), (mc.nngp, chunked.nngp), (mc.ntk_std, chunked.ntk_std)):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    nngp, ntk = mc
    assert ntk is mc.ntk and nngp is mc.nngp and chunked.ntk_samples is None
    np.testing.assert_allclose(mc.sem(), mc.ntk_std / np.sqrt(5))


# ------------------------------------------------------------------ errors
def test_bad_arguments_raise_value_error_naming_them():
    model = FullyConnected(1, 4)
    p = _params(model, 3)
    x = _inputs(3)
    with pytest.raises(ValueError, match="x1"):
        empirical.fc_empirical_ntk(model, p, x[0])
    with pytest.raises(ValueError, match="x2"):
        empirical.fc_empirical_ntk(model, p, x, _inputs(2, d=4))
    with pytest.raises(ValueError, match="dtype"):
        empirical.fc_empirical_ntk(model, p, x, dtype=np.int32)
    with pytest.raises(ValueError, match="batch_size"):
        empirical.fc_empirical_ntk(model, p, x, batch_size=0)
    with pytest.raises(ValueError, match="outputs"):
        empirical.fc_empirical_ntk(model, p, x, outputs="trace")
    with pytest.raises(ValueError, match=r"params\[0\]\['W'\]"):
        empirical.fc_empirical_ntk(model, p, _inputs(3, d=5))
    with pytest.raises(ValueError, match="params"):
        empirical.fc_empirical_ntk(FullyConnected(2, 4), p, x)
    with pytest.raises(ValueError, match="method"):
        empirical.empirical_ntk(model.apply, p, x, method="fast")
    with pytest.raises(ValueError, match="n_samples"):
        empirical.monte_carlo_kernels(model, jax.random.PRNGKey(0), x, n_samples=0)
    with pytest.raises(ValueError, match="in_dim"):
        empirical.monte_carlo_kernels(model, jax.random.PRNGKey(0), x, n_samples=2, in_dim=4)
    with pytest.raises(ValueError, match="x1"):
        empirical.fc_empirical_nngp(model, p, np.full((2, 3), np.nan))


def test_non_finite_kernel_raises():
    model = FullyConnected(1, 4)
    p = _params(model, 3)
    p[0]["W"] = p[0]["W"].at[0, 0].set(jnp.inf)
    with pytest.raises(NumericalError, match="non-finite"):
        empirical.fc_empirical_ntk(model, p, _inputs(3))
    with pytest.raises(NumericalError, match="non-finite"):
        empirical.empirical_ntk(model.apply, p, _inputs(3))


def test_flop_count_by_hand():
    model = FullyConnected(2, 5)
    c = empirical.fc_ntk_flops(model, 3, 4)
    # forward 2n(3*5 + 5*5 + 5*1); backward 2n(5*5); grams 2n^2(3+5+5) + 2n^2(5+5)
    assert c["forward"] == 2 * 4 * (15 + 25 + 5)
    assert c["backward"] == 2 * 4 * 25
    assert c["grams"] == 2 * 16 * 13 + 2 * 16 * 10
    assert c["total"] == c["forward"] + c["backward"] + c["grams"]
