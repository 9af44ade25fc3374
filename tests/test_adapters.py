"""Models as users write them (pytest_ntk.science.adapters): Flax nnx and linen, Equinox, stax.

For each library an MLP written the library's way, with the architecture of a ``FullyConnected``
and its weights copied in, must give the FullyConnected's empirical NTK (to float32 round-off, on
the generic and the structured path) and its training (the reference program, same seeds, same
batches); with the library's own fresh draws its Monte Carlo NTK and NNGP must sit within five
standard errors of the analytic kernels. A CNN in nnx and in Equinox (the nnx one holding a ConvNet's weights)
must give the same kernel on the structured and the generic path. Each library's tests skip, with the
reason, where it cannot import.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pytest_ntk.science import adapters, oracle
from pytest_ntk.science.conv import ConvNet
from pytest_ntk.science.empirical import empirical_ntk, monte_carlo_kernels
from pytest_ntk.science.errors import OptionalDependencyMissing
from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.train import train

D, WIDTH, DEPTH = 3, 16, 2
#: float32 round-off of a kernel of this size, relative to its largest entry.
F32_TOL = 2e-5
LIBRARIES = ("nnx", "linen", "equinox", "stax")


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def _inputs():
    x1 = np.asarray(jax.random.normal(jax.random.PRNGKey(11), (8, D)), np.float32)
    x2 = np.asarray(jax.random.normal(jax.random.PRNGKey(12), (5, D)), np.float32)
    return x1, x2


def _need(lib: str):
    if lib in ("nnx", "linen"):
        return pytest.importorskip(f"flax.{lib}", reason="flax is not installed (pip install pytest-ntk[flax])")
    if lib == "equinox":
        return pytest.importorskip("equinox", reason="equinox is not installed (pip install pytest-ntk[equinox])")
    if not oracle.available():
        pytest.skip(oracle.reason())
    return oracle.load().stax


# ---------------------------------------------------------------------------- the MLPs, as users write them
# Each class is defined once (the libraries are imported only when a test asks for them).
@functools.cache
def _nnx_mlp_class():
    nnx = _need("nnx")

    class MLP(nnx.Module):
        def __init__(self, sizes, rngs, fc_init=False):
            kw = {}
            if fc_init:  # W ~ N(0, 1/fan_in), b ~ N(0, 1): FullyConnected's standard parameterization
                kw = {"kernel_init": nnx.initializers.variance_scaling(1.0, "fan_in", "normal"),
                      "bias_init": nnx.initializers.normal(1.0)}
            self.layers = [nnx.Linear(a, b, rngs=rngs, **kw) for a, b in itertools.pairwise(sizes)]

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = nnx.relu(layer(x))
            return self.layers[-1](x)

    return MLP


def _nnx_mlp(sizes, rngs, *, fc_init=False):
    return _nnx_mlp_class()(sizes, rngs, fc_init)


@functools.cache
def _linen_mlp_class():
    nn = _need("linen")

    class MLP(nn.Module):
        features: tuple
        fc_init: bool = False

        @nn.compact
        def __call__(self, x):
            kw = {}
            if self.fc_init:
                kw = {"kernel_init": nn.initializers.variance_scaling(1.0, "fan_in", "normal"),
                      "bias_init": nn.initializers.normal(1.0)}
            for f in self.features[:-1]:
                x = nn.relu(nn.Dense(f, **kw)(x))
            return nn.Dense(self.features[-1], **kw)(x)

    return MLP


def _linen_mlp(sizes, *, fc_init=False):
    return _linen_mlp_class()(tuple(sizes[1:]), fc_init)


@functools.cache
def _equinox_mlp_class():
    eqx = _need("equinox")

    class MLP(eqx.Module):
        layers: list

        def __init__(self, sizes, key):
            keys = jax.random.split(key, 2 * len(sizes))
            self.layers = []
            for i, (a, b) in enumerate(itertools.pairwise(sizes)):
                layer = eqx.nn.Linear(a, b, key=keys[2 * i])
                # W ~ N(0, 1/fan_in), b ~ N(0, 1): FullyConnected's standard parameterization
                w = jax.random.normal(keys[2 * i], (b, a)) / np.sqrt(a)
                self.layers.append(eqx.tree_at(lambda m: (m.weight, m.bias), layer,
                                               (w, jax.random.normal(keys[2 * i + 1], (b,)))))

        def __call__(self, x):  # one example, as Equinox layers take it
            for layer in self.layers[:-1]:
                x = jax.nn.relu(layer(x))
            return self.layers[-1](x)

    return MLP


def _equinox_mlp(sizes, key):
    return _equinox_mlp_class()(sizes, key)


def _stax_mlp(depth, width):
    stax = _need("stax")
    layers = []
    for _ in range(depth):
        layers += [stax.Dense(width, W_std=1.0, b_std=1.0), stax.Relu()]
    return stax.serial(*layers, stax.Dense(1, W_std=1.0, b_std=1.0))


def _fc(lib: str, depth=DEPTH, width=WIDTH) -> FullyConnected:
    """stax is the NTK parameterization (its Dense); the others are plain affine layers (standard)."""
    return FullyConnected(depth=depth, width=width, parameterization="ntk" if lib == "stax" else "standard")


def _copied(lib: str):
    """``(model, params, fc, fc_params)``: the library's MLP holding a FullyConnected's weights.

    ``params`` is what the engine takes with ``model`` (None: the model's own weights)."""
    fc = _fc(lib)
    fp = fc.init(jax.random.PRNGKey(0), D)
    sizes = fc.layer_sizes(D)
    if lib == "nnx":
        nnx = _need("nnx")
        model = _nnx_mlp(sizes, nnx.Rngs(0))
        for layer, p in zip(model.layers, fp):
            layer.kernel.value, layer.bias.value = p["W"], p["b"]
        return model, None, fc, fp
    if lib == "linen":
        model = _linen_mlp(sizes)
        variables = {"params": {f"Dense_{i}": {"kernel": p["W"], "bias": p["b"]} for i, p in enumerate(fp)}}
        return model, variables, fc, fp
    if lib == "equinox":
        eqx = _need("equinox")
        model = _equinox_mlp(sizes, jax.random.PRNGKey(0))
        for i, p in enumerate(fp):
            model = eqx.tree_at(lambda m, i=i: (m.layers[i].weight, m.layers[i].bias), model, (p["W"].T, p["b"]))
        return model, None, fc, fp
    triple = _stax_mlp(DEPTH, WIDTH)
    params = []
    for p in fp:  # neural-tangents' Dense keeps its bias as (1, fan_out)
        params += [(p["W"], p["b"][None]), ()]
    return triple, params[:-1], fc, fp


# ---------------------------------------------------------------------------- empirical NTK
@pytest.mark.parametrize("lib", LIBRARIES)
def test_empirical_ntk_equals_fully_connected(lib):
    model, params, fc, fp = _copied(lib)
    x1, x2 = _inputs()
    expected = fc.empirical_ntk(fp, x1, x2)
    adapter = adapters.as_model(model)
    own = params if params is not None else adapter.params
    direct = empirical_ntk(model, params, x1, x2, method="structured")  # the library's object itself
    generic = empirical_ntk(adapter, own, x1, x2, method="jacobian")
    for kernel in (direct, generic):
        assert kernel.shape == (8, 5)
        assert _rel(kernel, expected) < F32_TOL, lib
    assert _rel(direct, generic) < F32_TOL


def test_example_libraries_stax_pair():
    """jax.example_libraries.stax's (init_fn, apply_fn) pairs (no kernel_fn): plain affine layers."""
    stax = pytest.importorskip("jax.example_libraries.stax")

    pair = stax.serial(stax.Dense(WIDTH), stax.Relu, stax.Dense(1))
    fc = FullyConnected(depth=1, width=WIDTH, parameterization="standard")
    fp = fc.init(jax.random.PRNGKey(1), D)
    params = [(fp[0]["W"], fp[0]["b"]), (), (fp[1]["W"], fp[1]["b"])]
    x1, x2 = _inputs()
    for method in ("jacobian", "structured"):
        assert _rel(empirical_ntk(pair, params, x1, x2, method=method), fc.empirical_ntk(fp, x1, x2)) < F32_TOL
    drawn = adapters.from_stax(pair, (-1, D)).init(jax.random.PRNGKey(0))
    assert [np.shape(a) for a in jax.tree_util.tree_leaves(drawn)] == [(D, WIDTH), (WIDTH,), (WIDTH, 1), (1,)]


# ---------------------------------------------------------------------------- training
TRAIN = {"seeds": [3, 4], "steps": 6, "lr": 0.05, "batch_size": 4, "method": "reference"}


@functools.cache
def _fc_training(fc):
    """The FullyConnected's own training from its weights (shared by the libraries of one parameterization)."""
    x, _ = _inputs()
    return train(fc, x, np.sin(x[:, 0]).astype(np.float32), params=fc.init(jax.random.PRNGKey(0), D), **TRAIN)


@pytest.mark.parametrize("lib", LIBRARIES)
def test_train_matches_fully_connected(lib):
    model, params, fc, _ = _copied(lib)
    x, _ = _inputs()
    y = np.sin(x[:, 0]).astype(np.float32)
    expected = _fc_training(fc)
    got = train(model, x, y, params=params, **TRAIN)  # nnx, Equinox: None, the model's own weights
    assert got.method == "reference"
    np.testing.assert_allclose(got.f0_train, expected.f0_train, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.losses, expected.losses, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.f_train, expected.f_train, rtol=1e-5, atol=1e-6)
    assert float(np.max(np.abs(got.f_train - got.f0_train))) > 1e-3  # it did train
    # the trained parameters come back in the library's structure, stacked over the seeds
    adapter = adapters.as_model(model)
    first = jax.tree_util.tree_map(lambda a: a[0], got.params)
    np.testing.assert_allclose(np.asarray(adapter.apply(first, x)), got.f_train[0], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- Monte Carlo
MC_WIDTH, MC_SAMPLES = 256, 64
#: The test rule, fixed before running: every entry of the Monte Carlo mean within 5 of its standard
#: errors of the analytic kernel (plus float32 round-off). With one hidden layer the mean of the
#: empirical NTK and of f(x) f(x') is the infinite-width kernel at any width (no 1/width bias).
MC_Z = 5.0


def _fresh(lib: str):
    """The library's model with its own fresh draws (FullyConnected's distribution), as the engine takes it."""
    sizes = [D, MC_WIDTH, 1]
    if lib == "nnx":
        nnx = _need("nnx")
        return adapters.from_nnx(make=lambda key: _nnx_mlp(sizes, nnx.Rngs(key), fc_init=True))
    if lib == "linen":
        return _linen_mlp(sizes, fc_init=True)
    if lib == "equinox":
        return adapters.from_equinox(make=lambda key: _equinox_mlp(sizes, key))
    return _stax_mlp(1, MC_WIDTH)


@pytest.mark.parametrize("lib", LIBRARIES)
def test_monte_carlo_mean_is_close_to_the_analytic_kernels(lib):
    model = _fresh(lib)
    fc = _fc(lib, depth=1, width=MC_WIDTH)
    x, _ = _inputs()
    x = x[:4]
    mc = monte_carlo_kernels(model, jax.random.PRNGKey(5), x, n_samples=MC_SAMPLES)
    assert mc.n_samples == MC_SAMPLES and mc.ntk.shape == (4, 4)
    for kind, analytic in (("ntk", fc.ntk(x)), ("nngp", fc.nngp(x))):
        mean = mc.ntk if kind == "ntk" else mc.nngp
        allowed = MC_Z * mc.sem(kind) + 1e-5 * np.abs(analytic)
        assert np.all(np.abs(mean - analytic) <= allowed), (lib, kind, np.max(np.abs(mean - analytic) / allowed))
        assert np.all(mc.sem(kind) > 0)  # the draws differ


def test_monte_carlo_refuses_a_model_that_cannot_redraw():
    nnx = _need("nnx")
    model = _nnx_mlp([D, 8, 1], nnx.Rngs(0))
    x, _ = _inputs()
    with pytest.raises(ValueError, match="make="):
        monte_carlo_kernels(model, jax.random.PRNGKey(0), x, n_samples=2)


# ---------------------------------------------------------------------------- CNNs
# One 3x3 convolution (SAME padding), ReLU, global average pooling, a dense readout: ConvNet(depth=1)'s
# architecture in its standard parameterization.
CHANNELS = 4


@functools.cache
def _nnx_cnn_class():
    nnx = _need("nnx")

    class CNN(nnx.Module):
        def __init__(self, rngs, c_in=3):
            self.conv = nnx.Conv(c_in, CHANNELS, (3, 3), rngs=rngs)
            self.readout = nnx.Linear(CHANNELS, 1, rngs=rngs)

        def __call__(self, x):  # (n, H, W, C)
            return self.readout(jnp.mean(nnx.relu(self.conv(x)), axis=(1, 2)))

    return CNN


@functools.cache
def _equinox_cnn_class():
    eqx = _need("equinox")

    class CNN(eqx.Module):
        conv: eqx.nn.Conv2d
        readout: eqx.nn.Linear

        def __init__(self, key, c_in=3):
            k1, k2 = jax.random.split(key)
            self.conv = eqx.nn.Conv2d(c_in, CHANNELS, 3, padding=1, key=k1)
            self.readout = eqx.nn.Linear(CHANNELS, 1, key=k2)

        def __call__(self, x):  # one image (H, W, C); Equinox convolutions take (C, H, W)
            h = jax.nn.relu(self.conv(jnp.transpose(x, (2, 0, 1))))
            return self.readout(jnp.mean(h, axis=(1, 2)))

    return CNN


@pytest.mark.parametrize("lib", ("nnx", "equinox"))
def test_cnn_structured_equals_generic(lib):
    images = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (5, 6, 6, 3)), np.float32)
    more = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (3, 6, 6, 3)), np.float32)
    net = ConvNet(depth=1, channels=CHANNELS, parameterization="standard")
    if lib == "nnx":  # holding a ConvNet's weights: it must have the ConvNet's kernel too
        nnx = _need("nnx")
        model, params = _nnx_cnn_class()(nnx.Rngs(0)), None
        cp = net.init(jax.random.PRNGKey(0), (6, 6, 3))
        for layer, p in zip((model.conv, model.readout), cp):
            layer.kernel.value, layer.bias.value = p["W"], p["b"]
    else:
        model, params = _equinox_cnn_class()(jax.random.PRNGKey(0)), None
    generic = empirical_ntk(model, params, images, more, method="jacobian")
    structured = empirical_ntk(model, params, images, more, method="structured")
    assert generic.shape == (5, 3)
    assert _rel(structured, generic) < F32_TOL
    if lib == "nnx":
        assert _rel(structured, net.empirical_ntk(cp, images, more)) < F32_TOL
    drawn = adapters.as_model(model).init(jax.random.PRNGKey(0), (6, 6, 3))
    assert sum(np.size(a) for a in jax.tree_util.tree_leaves(drawn)) == 27 * CHANNELS + CHANNELS + CHANNELS + 1


# ---------------------------------------------------------------------------- the adapters themselves
def test_fresh_draws_follow_the_key_and_refuse_another_architecture():
    nnx = _need("nnx")
    adapter = adapters.from_nnx(make=lambda key: _nnx_mlp([D, 8, 1], nnx.Rngs(key)))
    a, b = (adapter.init(jax.random.PRNGKey(k), D) for k in (0, 1))
    assert not np.allclose(jax.tree_util.tree_leaves(a)[1], jax.tree_util.tree_leaves(b)[1])
    assert jax.tree_util.tree_leaves(adapter.init(jax.random.PRNGKey(0), D, jnp.float16))[0].dtype == jnp.float16
    assert adapter.n_params(D) == D * 8 + 8 + 8 + 1
    wrong = adapters.from_nnx(_nnx_mlp([D, 8, 1], nnx.Rngs(0)), make=lambda key: _nnx_mlp([D, 9, 1], nnx.Rngs(key)))
    with pytest.raises(ValueError, match="same architecture"):
        wrong.init(jax.random.PRNGKey(0), D)
    not_a_module = adapters.from_nnx(_nnx_mlp([D, 8, 1], nnx.Rngs(0)), make=lambda key: {"W": key})
    with pytest.raises(ValueError, match=r"from_nnx: make\(key\) must return an nnx.Module, got dict"):
        not_a_module.init(jax.random.PRNGKey(0), D)
    held = adapters.from_nnx(_nnx_mlp([D, 8, 1], nnx.Rngs(0)))
    assert not held.fresh_draws
    same = [held.init(jax.random.PRNGKey(k)) for k in (0, 1)]
    for u, v in zip(*(jax.tree_util.tree_leaves(s) for s in same)):
        np.testing.assert_array_equal(u, v)  # without make: the instance's weights, whatever the key
    merged = held.to_model(held.params)
    assert isinstance(merged, nnx.Module)


def test_equinox_make_is_checked_like_nnx():
    _need("equinox")
    model = _equinox_mlp([D, 8, 1], jax.random.PRNGKey(0))
    not_a_module = adapters.from_equinox(model, make=lambda key: [key])
    with pytest.raises(ValueError, match=r"from_equinox: make\(key\) must return an equinox.Module, got list"):
        not_a_module.init(jax.random.PRNGKey(0), D)
    wrong = adapters.from_equinox(model, make=lambda key: _equinox_mlp([D, 9, 1], key))
    with pytest.raises(ValueError, match="from_equinox: .*same architecture"):
        wrong.init(jax.random.PRNGKey(0), D)


def test_make_must_build_the_wrapped_classes():
    """A make(key) whose model has the same parameter shapes but another class somewhere (another
    forward pass) is refused: the adapter would apply the wrapped model's code to its weights. For
    nnx every node of the graph is compared (the parameter tree alone accepted these before); for
    Equinox the classes are part of the tree structure, and non-array field values are not compared."""
    nnx = _need("nnx")
    eqx = _need("equinox")
    mlp = _nnx_mlp_class()

    class TanhMLP(mlp):
        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = jnp.tanh(layer(x))
            return self.layers[-1](x)

    other = adapters.from_nnx(_nnx_mlp([D, 8, 1], nnx.Rngs(0)), make=lambda key: TanhMLP([D, 8, 1], nnx.Rngs(key)))
    with pytest.raises(ValueError, match=r"from_nnx: make\(key\) must build the same architecture .*the model is "
                                         r".*TanhMLP where the wrapped model has .*MLP"):
        other.init(jax.random.PRNGKey(0), D)

    class Scaled(nnx.Linear):
        def __call__(self, x):
            return 2.0 * super().__call__(x)

    def nested(key):
        model = _nnx_mlp([D, 8, 1], nnx.Rngs(key))
        model.layers[1] = Scaled(8, 1, rngs=nnx.Rngs(key))
        return model

    inner = adapters.from_nnx(_nnx_mlp([D, 8, 1], nnx.Rngs(0)), make=nested)
    with pytest.raises(ValueError, match=r"its submodule at layers/1 is .*Scaled where the wrapped model has .*Linear"):
        inner.init(jax.random.PRNGKey(0), D)

    def local_class(key):  # a class object defined anew on each call
        class Net(nnx.Module):
            def __init__(self, rngs):
                self.layer = nnx.Linear(D, 1, rngs=rngs)

            def __call__(self, x):
                return self.layer(x)

        return Net(nnx.Rngs(key))

    with pytest.raises(ValueError, match="different class object with the same name.*define it once, outside make"):
        adapters.from_nnx(make=local_class).init(jax.random.PRNGKey(1), D)

    class Doubled(eqx.Module):
        inner: eqx.Module

        def __call__(self, x):
            return 2.0 * self.inner(x)

    model = _equinox_mlp([D, 8, 1], jax.random.PRNGKey(0))
    wrapped = adapters.from_equinox(Doubled(model), make=lambda key: _equinox_mlp([D, 8, 1], key))
    with pytest.raises(ValueError, match=r"from_equinox: .*the model is .*MLP where the wrapped model has .*Doubled"):
        wrapped.init(jax.random.PRNGKey(0), D)
    # the documented limit: a non-array field (here the activation) is taken from the wrapped model
    relu = eqx.nn.MLP(D, 1, 8, 1, activation=jax.nn.relu, key=jax.random.PRNGKey(0))
    tanh = adapters.from_equinox(relu, make=lambda key: eqx.nn.MLP(D, 1, 8, 1, activation=jnp.tanh, key=key))
    assert len(jax.tree_util.tree_leaves(tanh.init(jax.random.PRNGKey(1), D))) == 4


def test_describe_is_json_ready_and_tells_models_apart():
    from pytest_ntk.science.cache import canonical_json

    nnx = _need("nnx")
    a = adapters.from_nnx(_nnx_mlp([D, 8, 1], nnx.Rngs(0))).describe()
    b = adapters.from_nnx(_nnx_mlp([D, 8, 1], nnx.Rngs(1))).describe()
    a_again = adapters.from_nnx(_nnx_mlp([D, 8, 1], nnx.Rngs(0))).describe()
    assert canonical_json(a) == canonical_json(a_again)
    assert a["weights"] != b["weights"] and a["library"] == "flax.nnx"
    stax = pytest.importorskip("jax.example_libraries.stax")

    narrow = adapters.from_stax(stax.serial(stax.Dense(8), stax.Relu, stax.Dense(1))).describe()
    wide = adapters.from_stax(stax.serial(stax.Dense(9), stax.Relu, stax.Dense(1))).describe()
    narrow_again = adapters.from_stax(stax.serial(stax.Dense(8), stax.Relu, stax.Dense(1))).describe()
    assert canonical_json(narrow) == canonical_json(narrow_again)
    assert canonical_json(narrow) != canonical_json(wide)


def test_protocol_models_and_functions_pass_through():
    fc = FullyConnected(depth=1, width=4)
    assert adapters.as_model(fc) is fc
    fn = fc.apply
    assert adapters.as_model(fn, strict=False) is fn
    assert adapters.as_apply(fn, "p") == (fn, "p")


@pytest.mark.parametrize("bad", [42, "mlp", object(), (1, 2, 3), [lambda: 0, lambda: 0]])
def test_unsupported_objects_raise_naming_their_type(bad):
    with pytest.raises(ValueError, match=type(bad).__qualname__):
        adapters.as_model(bad)


def test_wrong_library_objects_raise_naming_their_type():
    stax = pytest.importorskip("jax.example_libraries.stax")

    fc = FullyConnected(depth=1, width=4)
    for build in (adapters.from_stax,):
        with pytest.raises(ValueError, match="FullyConnected"):
            build(fc)
    for build in (adapters.from_nnx, adapters.from_linen, adapters.from_equinox):
        try:
            build(stax.Dense(3))
        except OptionalDependencyMissing:
            continue
        except ValueError as exc:
            assert "tuple" in str(exc), exc
        else:
            pytest.fail(f"{build.__name__} accepted a stax layer")
    x, _ = _inputs()
    with pytest.raises(ValueError, match="holds no weights"):
        empirical_ntk(stax.serial(stax.Dense(3), stax.Dense(1)), None, x)
    with pytest.raises(ValueError, match="must be callable"):  # unchanged for what is no model
        empirical_ntk(42, None, x)
    with pytest.raises(ValueError, match="FullyConnected"):  # unchanged for what is no model
        monte_carlo_kernels(object(), jax.random.PRNGKey(0), x, n_samples=2)


def test_linen_extra_collections_are_refused():
    nn = _need("linen")

    class WithStats(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(1)(nn.BatchNorm(use_running_average=True)(x))

    with pytest.raises(ValueError, match="batch_stats"):
        adapters.from_linen(WithStats()).init(jax.random.PRNGKey(0), D)
    x, _ = _inputs()
    adapter = adapters.from_linen(_linen_mlp([D, 4, 1]), x)  # the example fixes the row shape
    variables = adapter.init(jax.random.PRNGKey(0))
    assert set(variables) == {"params"} and adapter.apply(variables, x).shape == (8,)
    two = adapters.from_linen(_linen_mlp([D, 4, 2]))  # K = 2 outputs keep their axis
    assert two.apply(two.init(jax.random.PRNGKey(0), D), x).shape == (8, 2)
    with pytest.raises(ValueError, match="in_dim is needed"):
        adapters.from_linen(_linen_mlp([D, 4, 1])).init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="batch"):
        adapters.from_linen(_linen_mlp([D, 4, 1]), x[0, 0])


def test_the_model_libraries_are_imported_lazily():
    """No module of the package imports flax or equinox at module level (adapters import them when
    an adapter is built); tests/test_layering.py checks that loading the plugin loads neither."""
    import ast
    from pathlib import Path

    offenders = []
    for path in sorted((Path(adapters.__file__).parents[1]).rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("flax", "equinox")]
    assert offenders == []
