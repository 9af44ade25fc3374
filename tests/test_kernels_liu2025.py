"""The nine Liu et al. (2025) kernels against a scalar re-derivation from the paper notes, and
the corrected kernels against the infinite-width networks they belong to."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_ntk.science import oracle
from pytest_ntk.science.errors import NumericalError
from pytest_ntk.science.kernels import analytic, liu2025
from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.numerics import x64

needs_nt = pytest.mark.skipif(not oracle.available(), reason=oracle.reason())

NAMES = liu2025.KERNEL_NAMES


# ------------------------------------------------------------------ scalar reference
def _angle_terms(kxy, kx, ky, published, same):
    """H, H' for one pair, written from /work/shared/paper-liu2025.md with math.acos."""
    if published:
        cos = kxy / (kx * ky)
        delta = 0.0 if abs(cos) > 1 else math.acos(cos)
    else:
        cos = 1.0 if same else min(1.0, max(-1.0, kxy / math.sqrt(kx * ky)))
        delta = math.acos(cos)
    h = math.sqrt(kx * ky) / (2 * math.pi) * (math.sin(delta) + (math.pi - delta) * cos)
    return h, (math.pi - delta) / (2 * math.pi)


def _scalar_kernels(x, y, published, same=False, d_in=15, c1=2.0, c2=2.0, cs=2.0):
    x, y = list(map(float, x)), list(map(float, y))
    dot = sum(a * b for a, b in zip(x, y))
    xx = sum(a * a for a in x)
    yy = sum(b * b for b in y)
    k0xy, k0x, k0y = 1 + dot / d_in, 1 + xx / d_in, 1 + yy / d_in
    H1, H1d = _angle_terms(k0xy, k0x, k0y, published, same)
    k1xy, k1x, k1y = 1 + c1 * H1, 1 + c1 * k0x / 2, 1 + c1 * k0y / 2
    H2, H2d = _angle_terms(k1xy, k1x, k1y, published, same)
    aH1, aH1d = _angle_terms(dot, xx, yy, published, same)
    aH2, aH2d = _angle_terms(cs * aH1, cs * xx / 2, cs * yy / 2, published, same)
    ntkj1 = k0xy * H1d + H1 + 1
    dist = math.sqrt(sum((a - b) ** 2 for a, b in zip(x, y)))
    return {
        "GP1": 1 + c1 * H1,
        "GP2": 1 + c2 * H2,
        "NTKA1": cs * dot * aH1d + cs * aH1,
        "NTKA2": cs**2 * dot * aH1d * aH2d + cs**2 * aH1 * aH2d + cs * aH2,
        "NTKJ1": ntkj1,
        "NTKJ2": ntkj1 * H2d + H2 + 1,
        "NTKB1": 1 + c1 * H1 + c1 * H1d + c1 * H1d * dot,
        "NTKB2": 1 + c2 * H2d + c1 * c2 * H2d * H1d + c1 * c2 * dot * H2d * H1d
        + c1 * c2 * H2d * H1 + c2 * H2,
        "LAPLACE": 2 * math.exp(-dist / 6),
    }


def _points():
    """Varied norms: some small enough that the published ratios leave [-1, 1]."""
    rng = np.random.default_rng(2025)
    x = rng.uniform(-5, 7, size=(5, 15))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x *= np.array([1.0, 0.5, 2.3, 0.8, 1.0])[:, None]
    x[4] = -x[1]  # an antipodal pair with norm 0.5: the published cos < -1 branch
    return x


@pytest.mark.parametrize("published", [True, False])
def test_gram_matches_scalar_reference(published):
    x = _points()
    K = liu2025.all_kernels(x, as_published=published)
    for i in range(len(x)):
        for j in range(len(x)):
            ref = _scalar_kernels(x[i], x[j], published, same=i == j)
            for name in NAMES:
                assert K[name][i, j] == pytest.approx(ref[name], rel=1e-12, abs=1e-12), (
                    name,
                    i,
                    j,
                )


@pytest.mark.parametrize("published", [True, False])
def test_cross_kernel_matches_scalar_reference(published):
    x, y = _points()[:3], np.random.default_rng(7).normal(size=(2, 15))
    for name in NAMES:
        k = liu2025.kernel(name, x, y, as_published=published)
        assert k.shape == (3, 2) and k.dtype == np.float64
        for i in range(3):
            for j in range(2):
                ref = _scalar_kernels(x[i], y[j], published)[name]
                assert k[i, j] == pytest.approx(ref, rel=1e-12, abs=1e-12), (name, i, j)


def test_published_branch_for_ratios_outside_unit_interval_is_exercised():
    """|x|^2 = 1/4: the published NTKA angle ratio is 4 on the diagonal and -4 for (x, -x)."""
    x = _points()
    ratio_diag = (x[1] @ x[1]) / (x[1] @ x[1]) ** 2
    ratio_anti = (x[1] @ x[4]) / ((x[1] @ x[1]) * (x[4] @ x[4]))
    assert ratio_diag > 1 and ratio_anti < -1
    # delta = 0 and the raw ratio in H: aH1 = |x|^2/(2 pi) * pi * ratio = +-1/2
    k = liu2025.kernel("NTKA1", x, as_published=True)
    assert k[1, 1] == pytest.approx(2 * 0.25 * 0.5 + 2 * 0.5, rel=1e-13)
    assert k[1, 4] == pytest.approx(2 * -0.25 * 0.5 + 2 * -0.5, rel=1e-13)


# ------------------------------------------------------------------ structure
@pytest.mark.parametrize("published", [True, False])
def test_symmetry_blocks_and_threads(published):
    """n > one 64-row block: the Gram is exactly symmetric and agrees with the cross path."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-5, 7, size=(150, 15))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    K = liu2025.all_kernels(x, as_published=published)
    C = liu2025.all_kernels(x[:100], x[60:], as_published=published)
    for name in NAMES:
        np.testing.assert_array_equal(K[name], K[name].T)
        # shared points (the Gram's diagonal): arccos at a cosine k ulps from 1 turns the BLAS dot
        # product's rounding into sqrt(2 k eps) ~ 3e-8 (CPU dependent); everywhere else the two
        # paths agree to rounding
        np.testing.assert_allclose(C[name], K[name][:100, 60:], rtol=0, atol=5e-7)
        off = ~np.eye(150, dtype=bool)[:100, 60:]
        np.testing.assert_allclose(C[name][off], K[name][:100, 60:][off], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(
            liu2025.kernel(name, x, as_published=published), K[name]
        )


def test_laplace_by_hand():
    x = _points()
    k = liu2025.kernel("LAPLACE", x)
    for i in range(5):
        assert k[i, i] == 2.0
        for j in range(5):
            ref = 2 * math.exp(-math.dist(x[i], x[j]) / 6)
            assert k[i, j] == pytest.approx(ref, rel=1e-14)
    # LAPLACE has no angle: both forms agree
    np.testing.assert_array_equal(k, liu2025.kernel("LAPLACE", x, as_published=False))


def test_unit_sphere_published_facts():
    """For unit-norm inputs the published cos d0 is (15/16) times the correct one."""
    rng = np.random.default_rng(4)
    x = rng.uniform(-5, 7, size=(20, 15))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    d0 = math.acos(15 / 16)
    h1 = (16 / 15) / (2 * math.pi) * (math.sin(d0) + (math.pi - d0) * 15 / 16)
    gp1 = liu2025.kernel("GP1", x)
    np.testing.assert_allclose(np.diag(gp1), 1 + 2 * h1, rtol=1e-13)
    np.testing.assert_allclose(
        np.diag(liu2025.kernel("GP1", x, as_published=False)), 1 + 2 * (16 / 15) / 2, rtol=1e-14
    )
    # off the diagonal: H1' = (pi - d0)/(2 pi) with cos d0 = (15/16) rho0
    rho0 = (1 + (x @ x.T) / 15) / (16 / 15)
    h1d_pub = (math.pi - np.arccos(15 / 16 * rho0)) / (2 * math.pi)
    h1d_cor = (math.pi - np.arccos(np.clip(rho0, -1, 1))) / (2 * math.pi)
    ntkb1_minus_gp1 = liu2025.kernel("NTKB1", x) - gp1  # = 2 H1' (1 + <x, y>)
    np.testing.assert_allclose(ntkb1_minus_gp1, 2 * h1d_pub * (1 + x @ x.T), rtol=1e-12)
    assert not np.allclose(h1d_pub, h1d_cor, rtol=1e-3)
    # NTKA: a0(x) = a1(x) = 1, so the two forms coincide (arccos near 1 amplifies rounding)
    for name in ("NTKA1", "NTKA2"):
        np.testing.assert_allclose(
            liu2025.kernel(name, x),
            liu2025.kernel(name, x, as_published=False),
            rtol=0,
            atol=5e-7,  # sqrt(2 k eps) at the diagonal, k the ulps |x|^2 sits from 1 (CPU dependent)
        )


def test_kernels_over_trials_and_subsets():
    rng = np.random.default_rng(5)
    xs = rng.normal(size=(3, 12, 15))
    got = list(liu2025.kernels_over_trials(xs, names=("GP2", "NTKB1")))
    assert len(got) == 3
    for x, kernels in zip(xs, got):
        assert set(kernels) == {"GP2", "NTKB1"}
        for name, k in kernels.items():
            np.testing.assert_array_equal(k, liu2025.kernel(name, x))


# ------------------------------------------------------------------ errors
def test_bad_arguments():
    x = _points()
    with pytest.raises(ValueError, match="unknown kernel name"):
        liu2025.kernel("NTKC1", x)
    with pytest.raises(ValueError, match="unknown kernel name"):
        liu2025.all_kernels(x, names=("GP1", "gp2"))
    with pytest.raises(ValueError, match="same feature dimension"):
        liu2025.kernel("GP1", x, x[:, :3])
    with pytest.raises(ValueError, match="x1 must be 2-D"):
        liu2025.kernel("GP1", x[0])
    with pytest.raises(ValueError, match="x2 has non-finite"):
        liu2025.kernel("GP1", x, np.full((1, 15), np.nan))


@pytest.mark.parametrize("published", [True, False])
def test_ntka_of_a_zero_input_raises(published):
    x = _points()
    x[2] = 0.0
    with pytest.raises(NumericalError, match="NTKA1"):
        liu2025.kernel("NTKA1", x, as_published=published)
    # the kernels with biases are defined there
    assert np.isfinite(liu2025.kernel("NTKB2", x, as_published=published)).all()


# ------------------------------------------------------------------ infinite-width networks
def _sphere(seed, n, d):
    x = np.random.default_rng(seed).uniform(-5, 7, size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("d", [15, 4])
@pytest.mark.parametrize("name", [n for n in NAMES if liu2025.LIMITS[n].exact])
def test_corrected_kernels_are_network_limits(name, d):
    x = _sphere(6, 30, d) * np.random.default_rng(7).uniform(0.5, 2.0, size=(30, 1))
    y = _sphere(8, 7, d)
    for a, b in [(x, None), (x, y)]:
        corrected = liu2025.kernel(name, a, b, as_published=False, d_in=d)
        np.testing.assert_allclose(liu2025.limit_kernel(name, a, b), corrected, rtol=1e-12)
    # and the published form is not (on the sphere, d = 15), except NTKA (a0(x) = a1(x) = 1)
    if d == 15 and not name.startswith("NTKA"):
        s = _sphere(9, 30, 15)
        gap = np.abs(liu2025.kernel(name, s) - liu2025.limit_kernel(name, s)).max()
        assert gap > 1e-2


def test_correspondences_stated_with_analytic_directly():
    """The table of the module docstring, written out with FullyConnected and analytic."""
    d = 15
    x = _sphere(10, 25, d)
    r2 = math.sqrt(2)

    def corrected(name):
        return liu2025.kernel(name, x, as_published=False)

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-12)

    close(corrected("GP1"), analytic.nngp(FullyConnected(1, 1, "relu", r2, 1.0), x / r2))
    close(corrected("GP2"), analytic.nngp(FullyConnected(2, 1, "relu", r2, 1.0), x / r2))
    nn1 = FullyConnected(1, 10_000, "relu", 1.0, 1.0)  # the trained NN1
    close(corrected("NTKJ1"), analytic.ntk(nn1, x))
    # NN1's NNGP is 1 + H1, not GP1 = 1 + 2 H1
    close(analytic.nngp(nn1, x), (corrected("GP1") + 1) / 2)
    s = math.sqrt(d / 2)
    close(corrected("NTKA1"), analytic.ntk(FullyConnected(1, 1, "relu", r2, 0.0), x * s))
    close(corrected("NTKA2"), analytic.ntk(FullyConnected(2, 1, "relu", r2, 0.0), x * s))
    # NTKB1 = FC NTK + the first layer's weight term trained at d times the rate
    k0 = 1 + x @ x.T / d
    _, h1d = analytic.gaussian_expectations("relu", np.diag(k0)[:, None], np.diag(k0), k0)
    np.fill_diagonal(h1d, 0.5)
    close(
        corrected("NTKB1"),
        analytic.ntk(FullyConnected(1, 1, "relu", r2, 1.0), x / r2)
        + 2 * h1d * (1 - 1 / d) * (x @ x.T),
    )


def test_ntkj2_is_a_hybrid_not_nn2():
    """Corrected NTKJ2 = NTKJ1 * Sd + Sh + 1 over GP1's covariance; NN2's NTK differs."""
    x = _sphere(11, 25, 15)
    gp1 = liu2025.kernel("GP1", x, as_published=False)
    q = np.diag(gp1)
    sh, sd = analytic.gaussian_expectations("relu", q[:, None], q[None, :], gp1)
    np.fill_diagonal(sh, q / 2)
    np.fill_diagonal(sd, 0.5)
    ntkj1 = liu2025.kernel("NTKJ1", x, as_published=False)
    ntkj2 = liu2025.kernel("NTKJ2", x, as_published=False)
    np.testing.assert_allclose(ntkj2, ntkj1 * sd + sh + 1, rtol=1e-12)
    nn2 = analytic.ntk(FullyConnected(2, 10_000, "relu", 1.0, 1.0), x)
    assert np.abs(ntkj2 - nn2).max() > 0.1
    with pytest.raises(ValueError, match="not the kernel of an infinite-width network"):
        liu2025.limit_kernel("NTKJ2", x)
    with pytest.raises(ValueError, match="not a network kernel"):
        liu2025.limit_kernel("LAPLACE", x)


@needs_nt
@pytest.mark.parametrize("name,depth", [("NTKB1", 1), ("NTKB2", 2)])
def test_ntkb_is_the_ntk_of_a_standard_first_layer_network(name, depth):
    """neural-tangents as an independent oracle of the NTKB correspondence."""
    stax = oracle.load().stax
    layers = [stax.Dense(512, W_std=1.0, b_std=1.0, parameterization="standard"), stax.Relu()]
    for _ in range(depth - 1):
        layers += [stax.Dense(512, W_std=math.sqrt(2), b_std=1.0), stax.Relu()]
    layers.append(stax.Dense(1, W_std=math.sqrt(2), b_std=1.0))
    x, y = _sphere(12, 9, 15), _sphere(13, 4, 15)
    with x64():
        k = stax.serial(*layers)[2](x, y, "ntk")
    ref = np.asarray(k, dtype=np.float64)
    np.testing.assert_allclose(liu2025.kernel(name, x, y, as_published=False), ref, rtol=1e-10)
    np.testing.assert_allclose(liu2025.limit_kernel(name, x, y), ref, rtol=1e-10)
