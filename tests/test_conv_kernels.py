"""Infinite-width kernels of ConvNet (CNN-GP and CNTK) against independent computations.

Oracles: neural-tangents' stax kernel_fn and apply_fn (skipped when it is absent); the
fully-connected recursion of pytest_ntk.science.kernels.analytic (a 1x1 image through 1x1
convolutions is a dense network); exact symmetries of the recursion; and, statistically, the
empirical kernels of wide finite networks averaged over seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from pytest_ntk.science import oracle
from pytest_ntk.science.conv import ConvNet, monte_carlo_kernels
from pytest_ntk.science.kernels import conv as conv_kernels
from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.numerics import x64

needs_nt = pytest.mark.skipif(not oracle.available(), reason=oracle.reason())


def _images(seed, n, h=8, w=7, c=3):
    return np.random.default_rng(seed).normal(size=(n, h, w, c))


# ------------------------------------------------------------------ neural-tangents oracle
def _nt_layers(net: ConvNet):
    stax = oracle.load().stax
    acts = {"relu": stax.Relu, "erf": stax.Erf, "identity": stax.Identity, "square": lambda: stax.Monomial(2)}
    layers = []
    for _ in range(net.depth):
        layers += [
            stax.Conv(net.channels, net.kernel_size, net.stride, net.padding, W_std=net.W_std,
                      b_std=net.b_std, parameterization=net.parameterization),
            acts[net.activation](),
        ]
    if net.readout == "global_avg":
        layers.append(stax.GlobalAvgPool())
    elif net.readout == "flatten":
        layers.append(stax.Flatten())
    else:
        layers += [stax.AvgPool(net.pool_window, net.pool_stride, net.pool_padding), stax.Flatten()]
    layers.append(stax.Dense(net.out_dim, W_std=net.W_std, b_std=net.b_std,
                             parameterization=net.parameterization))
    return stax.serial(*layers)


def _nt_kernels(net, x):
    """neural-tangents' Gram matrices of ``x`` (float64): ``(nngp, ntk)``."""
    kernel_fn = _nt_layers(net)[2]
    with x64():
        k = kernel_fn(x, None, ("nngp", "ntk"))
        return np.asarray(k.nngp, np.float64), np.asarray(k.ntk, np.float64)


def _rel_diff(mine, ref):
    return float(np.max(np.abs(mine - ref)) / np.max(np.abs(ref)))


def _assert_close(mine, ref, tol=1e-10):
    assert mine.shape == ref.shape
    assert mine.dtype == np.float64
    np.testing.assert_allclose(mine, ref, rtol=tol, atol=tol * np.abs(ref).max())


# (depth, kernel, stride, padding, activation, readout, pool window/stride/padding, parameterization)
NT_CASES = {
    "relu-SAME-s1-d1-global": (1, 3, 1, "SAME", "relu", "global_avg", None, "ntk"),
    "erf-SAME-s1-d2-global": (2, 3, 1, "SAME", "erf", "global_avg", None, "ntk"),
    "relu-VALID-s1-d3-global": (3, 3, 1, "VALID", "relu", "global_avg", None, "ntk"),
    "erf-VALID-s2-d1-global": (1, 3, 2, "VALID", "erf", "global_avg", None, "ntk"),
    "relu-SAME-s2-d3-global": (3, 3, 2, "SAME", "relu", "global_avg", None, "ntk"),
    "erf-SAME-s2-d2-global": (2, 3, 2, "SAME", "erf", "global_avg", None, "ntk"),
    "relu-SAME-s1-d2-flatten": (2, 3, 1, "SAME", "relu", "flatten", None, "ntk"),
    "erf-VALID-s1-d2-flatten": (2, 3, 1, "VALID", "erf", "flatten", None, "ntk"),
    "relu-SAME-s2-d3-flatten": (3, 3, 2, "SAME", "relu", "flatten", None, "ntk"),
    "erf-VALID-s2-d1-flatten": (1, 3, 2, "VALID", "erf", "flatten", None, "ntk"),
    "erf-SAME-s1-d1-avgpool2s2": (1, 3, 1, "SAME", "erf", "avg_pool", (2, 2, "VALID"), "ntk"),
    "relu-VALID-s1-d2-avgpool2s1": (2, 3, 1, "VALID", "relu", "avg_pool", (2, 1, "VALID"), "ntk"),
    "relu-SAME-s2-d2-avgpool3s2SAME": (2, 3, 2, "SAME", "relu", "avg_pool", (3, 2, "SAME"), "ntk"),
    "erf-SAME-s1-d3-avgpool2s2": (3, 3, 1, "SAME", "erf", "avg_pool", (2, 2, "VALID"), "ntk"),
    "relu-VALID-s2-d2-avgpool1": (2, 3, 2, "VALID", "relu", "avg_pool", (1, 1, "VALID"), "ntk"),
    "identity-SAME-k3x2-s2x1-d2-avgpool": (2, (3, 2), (2, 1), "SAME", "identity", "avg_pool",
                                           ((2, 1), (1, 2), "SAME"), "ntk"),
    "relu-SAME-d0-global": (0, 3, 1, "SAME", "relu", "global_avg", None, "ntk"),
    "square-SAME-s1-d2-global": (2, 3, 1, "SAME", "square", "global_avg", None, "ntk"),
    "standard-relu-SAME-s1-d2-global": (2, 3, 1, "SAME", "relu", "global_avg", None, "standard"),
    "standard-erf-VALID-s1-d2-flatten": (2, 3, 1, "VALID", "erf", "flatten", None, "standard"),
    "standard-relu-SAME-s2-d1-avgpool2s2": (1, 3, 2, "SAME", "relu", "avg_pool", (2, 2, "VALID"),
                                            "standard"),
}


def _net(case_id, channels=16, out_dim=1):
    depth, kernel, stride, padding, act, readout, pool, param = NT_CASES[case_id]
    rng = np.random.default_rng(sum(map(ord, case_id)))
    W_std, b_std = float(rng.uniform(0.8, 2.0)), float(rng.uniform(0.0, 1.0))
    pool_kw = {} if pool is None else {"pool_window": pool[0], "pool_stride": pool[1], "pool_padding": pool[2]}
    return ConvNet(depth, channels, kernel, stride, padding, act, W_std, b_std, readout,
                   parameterization=param, out_dim=out_dim, **pool_kw)


@needs_nt
@pytest.mark.parametrize("case_id", list(NT_CASES))
def test_matches_neural_tangents(case_id):
    """Gram and cross kernels equal stax's kernel_fn (float64) to 1e-10 relative.

    One neural-tangents call per case: the Gram matrix of ``x1`` stacked on ``x2``; our Gram of
    ``x1`` faces its first block and our cross kernel ``(x1, x2)`` its off-diagonal block.
    """
    net = _net(case_id)
    x1, x2 = _images(1, 4), _images(2, 3)
    ref_nngp, ref_ntk = _nt_kernels(net, np.concatenate([x1, x2]))
    n1 = x1.shape[0]
    nngp, ntk = net.nngp_and_ntk(x1)
    _assert_close(nngp, ref_nngp[:n1, :n1])
    off = ~np.eye(n1, dtype=bool)
    _assert_close(ntk[off], ref_ntk[:n1, :n1][off])
    # The diagonal of a relu Gram NTK: we use rho = 1 exactly for an input with itself (as
    # kernels.analytic does); neural-tangents forms rho from separately rounded variances, and
    # relu's Sd = (pi - arccos rho) / (2 pi) turns a rounding delta ~ 1e-16 in rho into
    # sqrt(2 delta) / (2 pi) ~ 3e-9 per layer (seen: 1e-9 and 7.5e-9 with the flatten readout,
    # whose entries all sit on the spatial diagonal; ours agrees with the exact rho = 1 recursion
    # to 1e-14, test_relu_flatten_gram_diagonal_is_the_rho_one_recursion). Other activations have
    # no such square root.
    _assert_close(np.diag(ntk), np.diag(ref_ntk[:n1, :n1]), tol=3e-8 if net.activation == "relu" else 1e-10)
    cross_nngp, cross_ntk = net.nngp_and_ntk(x1, x2)
    _assert_close(cross_nngp, ref_nngp[:n1, n1:])
    _assert_close(cross_ntk, ref_ntk[:n1, n1:])
    _assert_close(net.nngp(x1, x2), ref_nngp[:n1, n1:])
    _assert_close(net.ntk(x1, x2), ref_ntk[:n1, n1:])


@needs_nt
@pytest.mark.parametrize(
    "case_id", ["erf-VALID-s1-d2-flatten", "identity-SAME-k3x2-s2x1-d2-avgpool", "standard-relu-SAME-s1-d2-global"]
)
def test_finite_network_matches_neural_tangents_apply(case_id):
    """The same weights give the same outputs as stax's apply_fn: padding, strides, scalings, pooling."""
    net = _net(case_id, channels=5, out_dim=2)
    x = _images(3, 3)
    with x64():
        params = net.init(jax.random.PRNGKey(7), x.shape, jnp.float64)
        nt_params = []
        for layer in params[:-1]:
            nt_params += [(layer["W"], layer["b"].reshape(1, 1, 1, -1)), ()]
        nt_params += [()] * (2 if net.readout == "avg_pool" else 1)
        nt_params.append((params[-1]["W"], params[-1]["b"]))
        ref = np.asarray(_nt_layers(net)[1](nt_params, jnp.asarray(x)))
        mine = np.asarray(net.apply(params, jnp.asarray(x)))
    np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------- exact, oracle-free checks
def _fc_params(params):
    """ConvNet parameters of 1x1 convolutions as FullyConnected parameters."""
    out = [{"W": p["W"][0, 0], "b": p["b"]} for p in params[:-1]]
    return out + [params[-1]]


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("activation", ["relu", "erf", "tanh", "identity", "square"])
@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_one_pixel_images_are_a_fully_connected_network(depth, activation, parameterization):
    """On 1x1 images, 1x1 SAME convolutions are dense layers and every readout is the identity map.

    So the CNN-GP and CNTK equal FullyConnected's NNGP and NTK of the same depth (width =
    channels), for every readout, and the finite networks compute the same function.
    """
    rng = np.random.default_rng(depth + 10 * len(activation))
    W_std, b_std = float(rng.uniform(0.7, 1.8)), float(rng.uniform(0.0, 1.2))
    x = rng.normal(size=(6, 1, 1, 5))
    x2 = rng.normal(size=(3, 1, 1, 5))
    fc = FullyConnected(depth, 9, activation, W_std, b_std, parameterization)
    fc_nngp, fc_ntk = fc.nngp(x[:, 0, 0]), fc.ntk(x[:, 0, 0])
    fc_cross = fc.ntk(x[:, 0, 0], x2[:, 0, 0])
    # tanh: the 2-D quadrature is not symmetric in its two variances to the last bit (its error
    # is below 1e-11); the CNN evaluates both orders of a pair where FullyConnected evaluates one
    tol = 1e-10 if activation == "tanh" else 1e-13
    for readout, pool in [("global_avg", {}), ("flatten", {}), ("avg_pool", {"pool_window": 1})]:
        net = ConvNet(depth, 9, 1, 1, "SAME", activation, W_std, b_std, readout,
                      parameterization=parameterization, **pool)
        nngp, ntk = net.nngp_and_ntk(x)
        np.testing.assert_allclose(nngp, fc_nngp, rtol=tol, atol=tol / 10)
        np.testing.assert_allclose(ntk, fc_ntk, rtol=tol, atol=tol / 10)
        np.testing.assert_allclose(net.ntk(x, x2), fc_cross, rtol=tol, atol=tol / 10)
    params = net.init(jax.random.PRNGKey(depth), x.shape)
    np.testing.assert_allclose(
        np.asarray(net.apply(params, jnp.asarray(x, jnp.float32))),
        np.asarray(fc.apply(_fc_params(params), jnp.asarray(x[:, 0, 0], jnp.float32))),
        rtol=1e-5, atol=1e-5,
    )


SELF_CASES = ["relu-SAME-s2-d3-global", "erf-VALID-s1-d2-flatten", "relu-SAME-s2-d2-avgpool3s2SAME",
              "erf-SAME-s1-d3-avgpool2s2", "standard-relu-SAME-s1-d2-global"]


@pytest.mark.parametrize("case_id", SELF_CASES)
def test_gram_is_exactly_symmetric_and_psd(case_id):
    net = _net(case_id)
    x = _images(4, 10)
    for k in net.nngp_and_ntk(x):
        assert k.dtype == np.float64 and k.shape == (10, 10)
        np.testing.assert_array_equal(k, k.T)
        eig = np.linalg.eigvalsh(k)
        assert eig.min() >= -1e-12 * eig.max(), (case_id, eig.min(), eig.max())


@pytest.mark.parametrize("case_id", SELF_CASES)
def test_cross_kernel_agrees_with_the_gram_and_its_transpose(case_id):
    net = _net(case_id)
    x1, x2 = _images(5, 4), _images(6, 3)
    gram_nngp, gram_ntk = net.nngp_and_ntk(np.concatenate([x1, x2]))
    cross_nngp, cross_ntk = net.nngp_and_ntk(x1, x2)
    np.testing.assert_allclose(cross_nngp, gram_nngp[:4, 4:], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(cross_ntk, gram_ntk[:4, 4:], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(net.ntk(x2, x1), cross_ntk.T, rtol=1e-13, atol=1e-14)
    # the diagonal of the cross kernel of x with itself: rho computed, not set to 1
    np.testing.assert_allclose(np.diag(net.nngp(x1, x1.copy())), np.diag(gram_nngp)[:4], rtol=1e-12)


@pytest.mark.parametrize("case_id", SELF_CASES)
def test_blocks_of_pairs_do_not_change_the_result(case_id):
    """A block of one pair at a time (``block_bytes=1``) gives the one-block result."""
    net = _net(case_id)
    x1, x2 = _images(7, 5), _images(8, 3)
    for a, b in [(x1, None), (x1, x2)]:
        one = net.nngp_and_ntk(a, b, block_bytes=1 << 30)
        small = net.nngp_and_ntk(a, b, block_bytes=1)
        for u, v in zip(one, small):
            np.testing.assert_allclose(u, v, rtol=1e-13, atol=0)


@pytest.mark.parametrize("case_id", ["relu-SAME-s1-d2-flatten", "erf-VALID-s1-d2-flatten",
                                     "relu-SAME-s2-d3-flatten", "standard-erf-VALID-s1-d2-flatten"])
def test_flatten_needs_only_the_spatial_diagonal(case_id):
    """The diagonal-only path (the default for flatten) equals the full (HW)^2 recursion."""
    net = _net(case_id)
    x1, x2 = _images(9, 4), _images(10, 3)
    for a, b in [(x1, None), (x1, x2)]:
        diag = net.nngp_and_ntk(a, b)
        full = net.nngp_and_ntk(a, b, full_spatial=True)
        for u, v in zip(diag, full):
            np.testing.assert_allclose(u, v, rtol=1e-13, atol=0)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_relu_flatten_gram_diagonal_is_the_rho_one_recursion(depth):
    """For an image with itself every flatten entry sits at rho = 1, where relu's dual activations
    are E[relu(u)^2] = q / 2 and E[relu'(u)^2] = 1 / 2: the NTK diagonal is a linear recursion of
    box filters (scipy.ndimage.correlate, zero padding: SAME with stride 1). This is the exact
    value neural-tangents misses by ~1e-9 (see test_matches_neural_tangents)."""
    from scipy import ndimage

    net = ConvNet(depth, 8, 3, 1, "SAME", "relu", 1.4, 0.6, "flatten")
    x = _images(17, 4)
    sw2, sb2 = net.W_std**2, net.b_std**2
    box = np.full((3, 3), 1 / 9)
    expected = []
    for image in x:
        k_hat, t_hat = (image * image).sum(-1) / image.shape[-1], np.zeros(image.shape[:2])
        for _ in range(depth):
            s = sw2 * ndimage.correlate(k_hat, box, mode="constant", cval=0.0) + sb2
            t = s + sw2 * ndimage.correlate(t_hat, box, mode="constant", cval=0.0)
            k_hat, t_hat = s / 2, t / 2
        expected.append(sw2 * k_hat.mean() + sb2 + sw2 * t_hat.mean())
    np.testing.assert_allclose(np.diag(net.ntk(x)), expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(np.diag(net.ntk(x, full_spatial=True)), expected, rtol=1e-14, atol=0)


def _canvas(seed, n, offsets, size=14, patch=3, c=2):
    """Images that are zero but for a random ``patch x patch`` object at ``offsets[i]``."""
    rng = np.random.default_rng(seed)
    objects = rng.normal(size=(n, patch, patch, c))
    x = np.zeros((n, size, size, c))
    for i, (r, q) in enumerate(offsets):
        x[i, r:r + patch, q:q + patch] = objects[i]
    return x


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_translating_objects_away_from_the_border(activation):
    """What holds exactly: with stride 1 and SAME padding, every entry of a layer's spatial
    covariance is a function of the two receptive-field patches. For objects on a zero canvas
    that stay >= 2R pixels from the border (R = depth (k - 1) / 2 the receptive-field radius), a
    translation only permutes the patch types, so global pooling is invariant under translating
    each image independently, and the flatten readout under translating both images alike.
    Circular shifts are no such symmetry (zero padding breaks it): an object moved near the
    border changes the kernel.
    """
    depth, k, size, patch = 2, 3, 14, 3
    R = depth * (k - 1) // 2  # 2: an object's rows and columns must lie in [2R, size - 1 - 2R]
    base = [(4, 4), (4, 5), (5, 4)]
    moved = [(5, 6), (7, 4), (4, 7)]  # each image translated by its own offset
    same_shift = [(r + 2, q + 1) for r, q in base]  # all images translated alike
    assert all(2 * R <= v and v + patch - 1 <= size - 1 - 2 * R
               for pos in base + moved + same_shift for v in pos)
    x_base, x_moved = _canvas(0, 3, base), _canvas(0, 3, moved)
    pooled = ConvNet(depth, 8, k, 1, "SAME", activation, 1.4, 0.3, "global_avg")
    for a, b in [(pooled.nngp(x_base), pooled.nngp(x_moved)), (pooled.ntk(x_base), pooled.ntk(x_moved))]:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    flat = ConvNet(depth, 8, k, 1, "SAME", activation, 1.4, 0.3, "flatten")
    x_shift = _canvas(0, 3, same_shift)
    np.testing.assert_allclose(flat.ntk(x_base), flat.ntk(x_shift), rtol=1e-12, atol=0)
    # near the border the symmetry is gone
    x_edge = _canvas(0, 3, [(0, 0), (4, 5), (5, 4)])
    assert abs(pooled.ntk(x_edge)[0, 0] / pooled.ntk(x_base)[0, 0] - 1) > 1e-6


@pytest.mark.parametrize("readout", ["global_avg", "flatten"])
def test_mirror_images_have_the_same_kernel(readout):
    """Stride 1, odd square kernel, SAME padding: pads are symmetric, the filter prior is invariant
    under flips and transposition, so flipping or transposing both images leaves the kernel."""
    net = ConvNet(2, 8, 3, 1, "SAME", "relu", 1.3, 0.5, readout)
    x1, x2 = _images(11, 4, 7, 7), _images(12, 3, 7, 7)
    ref = net.ntk(x1, x2)
    for f in (lambda x: x[:, ::-1], lambda x: x[:, :, ::-1], lambda x: x.transpose(0, 2, 1, 3)):
        np.testing.assert_allclose(net.ntk(f(x1), f(x2)), ref, rtol=1e-12, atol=0)


def test_out_dim_gives_the_per_output_kernel_and_apply_shapes():
    x = _images(13, 3)
    one = _net("erf-SAME-s1-d1-avgpool2s2")
    many = _net("erf-SAME-s1-d1-avgpool2s2", out_dim=4)
    np.testing.assert_array_equal(one.ntk(x), many.ntk(x))
    params = many.init(jax.random.PRNGKey(0), x.shape)
    assert many.apply(params, jnp.asarray(x, jnp.float32)).shape == (3, 4)
    assert one.apply(one.init(jax.random.PRNGKey(0), x.shape), jnp.asarray(x, jnp.float32)).shape == (3,)
    assert sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)) == many.n_params(x.shape[1:])


@pytest.mark.parametrize("case_id", ["relu-SAME-s2-d3-global", "relu-SAME-s2-d2-avgpool3s2SAME"])
def test_apply_is_jittable_and_shapes_follow_the_geometry(case_id):
    net = _net(case_id, channels=4)
    x = jnp.asarray(_images(14, 2), jnp.float32)
    params = net.init(jax.random.PRNGKey(1), x.shape)
    np.testing.assert_allclose(jax.jit(net.apply)(params, x), net.apply(params, x), rtol=1e-6, atol=1e-6)
    geo = net.geometry(x.shape)
    assert params[-1]["W"].shape == (geo.fan_ins[-1], 1)
    for layer, (h, w, c) in enumerate(geo.shapes[1:]):
        assert params[layer]["W"].shape[3] == c == 4


def test_same_or_valid_pads_are_jax_pads():
    for size in range(1, 12):
        for k in range(1, 6):
            for stride in range(1, 4):
                for padding in ("SAME", "VALID"):
                    if padding == "VALID" and size < k:
                        continue
                    out, lo, hi = conv_kernels.same_or_valid_pads(size, k, stride, padding)
                    assert [(lo, hi)] == jax.lax.padtype_to_pads((size,), (k,), (stride,), padding)
                    shape = jax.eval_shape(
                        lambda x, k=k, stride=stride, padding=padding: jax.lax.reduce_window(
                            x, 0.0, jax.lax.add, (k,), (stride,), padding),
                        jax.ShapeDtypeStruct((size,), jnp.float32),
                    ).shape
                    assert shape == (out,)


def test_sixty_four_images_stay_in_bounded_memory():
    """n = 64 images of 8x8x3 (16.7M numbers per full spatial tensor) run in blocks."""
    import tracemalloc

    net = ConvNet(3, 8, 3, 1, "SAME", "relu", 1.4, 0.2, "global_avg")
    x = _images(15, 64, 8, 8, 3)
    tracemalloc.start()
    ntk = net.ntk(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ntk.shape == (64, 64)
    assert peak < 400 * 2**20, f"peak numpy memory {peak / 2**20:.0f} MiB"


# ------------------------------------------------------------------------------- errors
def test_bad_arguments_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="unknown padding 'CIRCULAR'"):
        ConvNet(1, 4, padding="CIRCULAR")
    with pytest.raises(ValueError, match="unknown pool_padding 'FULL'"):
        ConvNet(1, 4, readout="avg_pool", pool_window=2, pool_padding="FULL")
    with pytest.raises(ValueError, match="unknown readout 'max'"):
        ConvNet(1, 4, readout="max")
    with pytest.raises(ValueError, match="needs pool_window"):
        ConvNet(1, 4, readout="avg_pool")
    with pytest.raises(ValueError, match="pool_window/pool_stride apply to readout 'avg_pool' only"):
        ConvNet(1, 4, readout="flatten", pool_window=2)
    with pytest.raises(ValueError, match=r"kernel_size must be a positive int or a pair .* got \(3, 3, 3\)"):
        ConvNet(1, 4, kernel_size=(3, 3, 3))
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        ConvNet(1, 4, stride=0)
    with pytest.raises(ValueError, match="depth must be an integer >= 0, got -1"):
        ConvNet(-1, 4)
    with pytest.raises(ValueError, match="channels must be an integer >= 1, got 0"):
        ConvNet(1, 0)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        ConvNet(1, 4, activation="gelu")
    with pytest.raises(ValueError, match="W_std must be finite and >= 0, got -1.0"):
        ConvNet(1, 4, W_std=-1.0)

    net = ConvNet(2, 4, 5, 1, "VALID")
    with pytest.raises(ValueError, match=r"kernel_size \(5, 5\) is larger than the 4x4 input of convolution 2"):
        net.ntk(_images(0, 2, 8, 8))
    with pytest.raises(ValueError, match=r"pool_window \(9, 9\) is larger than the 8x8 output"):
        ConvNet(1, 4, readout="avg_pool", pool_window=9).nngp(_images(0, 2, 8, 8))
    ok = ConvNet(1, 4)
    with pytest.raises(ValueError, match=r"x1 must be 4-D with shape \(n, H, W, C\) \(NHWC\), got shape \(3, 8\)"):
        ok.ntk(np.ones((3, 8)))
    with pytest.raises(ValueError, match="x2 of shape .* has other channels than x1"):
        ok.ntk(_images(0, 2, 6, 6, 3), _images(0, 2, 6, 6, 2))
    with pytest.raises(ValueError, match="x2 of shape .* has other spatial size than x1"):
        ok.nngp(_images(0, 2, 6, 6, 3), _images(0, 2, 6, 5, 3))
    with pytest.raises(ValueError, match="x1 has non-finite entries"):
        ok.nngp(np.full((1, 2, 2, 1), np.nan))
    with pytest.raises(ValueError, match="full_spatial=False is exact only for the 'flatten' readout"):
        ok.ntk(_images(0, 2, 6, 6), full_spatial=False)
    with pytest.raises(ValueError, match="block_bytes must be a positive integer, got 0"):
        ok.ntk(_images(0, 2, 6, 6), block_bytes=0)
    params = ok.init(jax.random.PRNGKey(0), (6, 6, 3))
    with pytest.raises(ValueError, match="x has 2 channels but the parameters expect 3"):
        ok.apply(params, jnp.ones((2, 6, 6, 2)))
    with pytest.raises(ValueError, match=r"x must be 4-D \(n, H, W, C\)"):
        ok.apply(params, jnp.ones((6, 6, 3)))
    with pytest.raises(ValueError, match=r"in_shape must be \(H, W, C\) or \(n, H, W, C\)"):
        ok.init(jax.random.PRNGKey(0), (6, 6))


# -------------------------------------------------------------------- finite width, seeds
def test_wide_network_kernels_approach_the_closed_form():
    """Seed means of the empirical NNGP and NTK of a 256-channel network face the closed form.

    Depth 2 (so the NTK passes through a convolution of ``T * Sd``), 3x3 SAME, relu, global
    pooling, six 6x6x3 images, 16 seeds. Per seed, two linear statistics of each kernel -- the mean
    of its diagonal and the mean of its off-diagonal entries -- are i.i.d. over seeds; each is
    tested by Student's t with 15 degrees of freedom at a Bonferroni-corrected family level of
    1e-3 (4 tests, so a two-sided 1.25e-4 each: |t| <= 4.77). Then every entry at the same family
    level over the 42 distinct entries of the two kernels (|t| <= 6.01). The finite-width bias is
    O(1/channels), about a quarter of the standard error here (it shrinks like
    sqrt(seeds / channels)), so the t-tests stay close to their nominal level. The tolerances
    follow from the level and the measured standard errors, fixed before any run.
    """
    channels, n_seeds, alpha = 256, 16, 1e-3
    net = ConvNet(2, channels, 3, 1, "SAME", "relu", 1.5, 0.2, "global_avg")
    x = np.random.default_rng(16).normal(size=(6, 6, 6, 3))
    mc = monte_carlo_kernels(net, jax.random.PRNGKey(2024), x, n_samples=n_seeds, keep_samples=True)
    nngp, ntk = net.nngp_and_ntk(x)
    n = x.shape[0]
    off = ~np.eye(n, dtype=bool)
    t_crit = stats.t.ppf(1 - alpha / (2 * 4), n_seeds - 1)
    for name, samples, exact in [("nngp", mc.nngp_samples, nngp), ("ntk", mc.ntk_samples, ntk)]:
        for stat_name, stat in [("diagonal mean", lambda k: np.trace(k, axis1=-2, axis2=-1) / n),
                                ("off-diagonal mean", lambda k: k[..., off].mean(axis=-1))]:
            values, target = stat(samples), stat(exact)
            se = values.std(ddof=1) / np.sqrt(n_seeds)
            t = (values.mean() - target) / se
            assert abs(t) <= t_crit, f"{name} {stat_name}: seed mean {values.mean():.5g} +- {se:.2g}, closed form {target:.5g} (t = {t:.2f})"
    iu = np.triu_indices(n)
    t_crit_entries = stats.t.ppf(1 - alpha / (2 * 2 * len(iu[0])), n_seeds - 1)
    for name, mean, exact in [("nngp", mc.nngp, nngp), ("ntk", mc.ntk, ntk)]:
        t = ((mean - exact) / mc.sem(name))[iu]
        assert np.abs(t).max() <= t_crit_entries, (name, np.abs(t).max(), t_crit_entries)
    # the spread is a finite-width effect: a few percent at 256 channels
    assert mc.relative_spread("ntk") < 0.5
