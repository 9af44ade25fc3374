"""The structured empirical NTK of any JAX model (structured_ntk) against the generic Jacobian contraction.

A zoo of small models, each traced and split leaf by leaf into Gram products, per-example gradients
and Jacobian fallbacks: the sum must equal ``J(x1) J(x2)^T`` of the generic path to round-off
(float64: 1e-12 relative Frobenius; float32: 1e-5). Then the plan report, the fallbacks, the blocked
path and the errors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from pytest_ntk.science import empirical
from pytest_ntk.science.empirical import structured as st
from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.numerics import x64

F64_TOL, F32_TOL = 1e-12, 1e-5


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def _dense(key, fan_in, fan_out, dtype):
    k1, k2 = jax.random.split(key)
    return {
        "W": jax.random.normal(k1, (fan_in, fan_out), dtype) / np.sqrt(fan_in),
        "b": 0.1 * jax.random.normal(k2, (fan_out,), dtype),
    }


# ============================================================================ the zoo
def mlp_init(key, dtype):
    ks = jax.random.split(key, 3)
    return [_dense(ks[0], 5, 8, dtype), _dense(ks[1], 8, 8, dtype), _dense(ks[2], 8, 2, dtype)]


def mlp_apply(p, x):
    """Hand-written MLP: einsum products, biases through ``b[None]``, tanh, two outputs."""
    h = x
    for i, layer in enumerate(p):
        h = jnp.einsum("nd,de->ne", h, layer["W"]) + layer["b"][None]
        if i < len(p) - 1:
            h = jnp.tanh(h)
    return h


def cnn_init(key, dtype, c=4):
    ks = jax.random.split(key, 5)
    def conv(k_kernel, k_bias, c_in, scale):
        return {
            "k": jax.random.normal(k_kernel, (3, 3, c_in, c), dtype) / scale,
            "b": 0.1 * jax.random.normal(k_bias, (c,), dtype),
        }

    return {"c1": conv(ks[0], ks[1], 3, 5), "c2": conv(ks[2], ks[3], c, 6), "out": _dense(ks[4], c, 3, dtype)}


def cnn_apply(p, x):
    """NHWC convolutions (SAME; stride 2 VALID), biases, relu, average pooling, dense readout, 3 outputs."""
    dn = ("NHWC", "HWIO", "NHWC")
    h = jax.nn.relu(lax.conv_general_dilated(x, p["c1"]["k"], (1, 1), "SAME", dimension_numbers=dn) + p["c1"]["b"])
    h = jax.nn.relu(lax.conv_general_dilated(h, p["c2"]["k"], (2, 2), "VALID", dimension_numbers=dn) + p["c2"]["b"])
    h = lax.reduce_window(h, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
    return h.mean(axis=(1, 2)) @ p["out"]["W"] + p["out"]["b"]


def odd_conv_init(key, dtype):
    return {"k": jax.random.normal(key, (5, 3, 2, 3), dtype) / 4}


def odd_conv_apply(p, x):
    """NCHW/OIHW, asymmetric strides and padding, input and kernel dilation."""
    h = lax.conv_general_dilated(
        jnp.transpose(x, (0, 3, 1, 2)), p["k"], (2, 1), ((1, 2), (0, 1)), lhs_dilation=(1, 2), rhs_dilation=(2, 1),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
    )
    return jnp.tanh(h).sum(axis=(1, 2, 3))


def res_init(key, dtype):
    ks = jax.random.split(key, 3)
    return {"inp": _dense(ks[0], 5, 6, dtype), "blk": _dense(ks[1], 6, 6, dtype), "out": _dense(ks[2], 6, 1, dtype)}


def res_apply(p, x):
    """A residual block ``h + gelu(h W + b)`` between two dense layers, scalar output."""
    h = x @ p["inp"]["W"] + p["inp"]["b"]
    h = h + jax.nn.gelu(h @ p["blk"]["W"] + p["blk"]["b"])
    return (h @ p["out"]["W"] + p["out"]["b"])[:, 0]


def attn_init(key, dtype, d=4):
    ks = jax.random.split(key, 7)
    proj = [jax.random.normal(k, (d, d), dtype) / np.sqrt(d) for k in ks[:3]]
    return {
        "q": proj[0], "k": proj[1], "v": proj[2], "o": _dense(ks[3], d, d, dtype),
        "ln": {
            "scale": 1 + 0.1 * jax.random.normal(ks[4], (d,), dtype),
            "offset": 0.1 * jax.random.normal(ks[5], (d,), dtype),
        },
        "head": _dense(ks[6], d, 2, dtype),
    }


def attn_apply(p, x):
    """Single-head self-attention with a residual, layer norm (scale and offset leaves), mean-pooled readout."""
    q, k, v = x @ p["q"], x @ p["k"], x @ p["v"]
    a = jax.nn.softmax(jnp.einsum("ntd,nsd->nts", q, k) / np.sqrt(x.shape[-1]), axis=-1)
    h = x + jnp.einsum("nts,nsd->ntd", a, v) @ p["o"]["W"] + p["o"]["b"]
    mu = h.mean(-1, keepdims=True)
    var = ((h - mu) ** 2).mean(-1, keepdims=True)
    h = (h - mu) / jnp.sqrt(var + 1e-5) * p["ln"]["scale"] + p["ln"]["offset"]
    return h.mean(1) @ p["head"]["W"] + p["head"]["b"]


def odd_init(key, dtype):
    ks = jax.random.split(key, 4)
    return {
        "heads": jax.random.normal(ks[0], (2, 4, 3), dtype) / 2,
        "tied": jax.random.normal(ks[1], (3, 3), dtype) / 2,
        "emb": jax.random.normal(ks[2], (5, 4), dtype),
        "gain": 1 + 0.1 * jax.random.normal(ks[3], (), dtype),
        "unused": jnp.ones((2,), dtype),
    }


def odd_apply(p, x):
    """What falls back: a tied weight (two uses), a gather, a power; and a leaf that is never used."""
    h = jnp.tanh(jnp.einsum("ntd,hde->nhte", x, p["heads"])) @ p["tied"]
    h = jnp.sin(h @ p["tied"].T)
    e = p["emb"][jnp.array([0, 3])].sum()
    return h.sum(axis=(1, 2, 3)) * p["gain"] ** 2 + e


def grouped_init(key, dtype):
    return {"W": jax.random.normal(key, (2, 4, 3), dtype) / 2}


def grouped_apply(p, x):
    """A product with batch axes shared by input and weight (per-group weights)."""
    return jnp.tanh(jnp.einsum("ngtd,gde->ngte", x, p["W"])).sum(axis=(1, 2, 3))


_FC = FullyConnected(2, 8, "relu", out_dim=1, W_std=1.3, b_std=0.4)

ZOO = {  # name: (apply_fn, init(key, dtype), row shape)
    "fc": (_FC.apply, lambda key, dtype: _FC.init(key, 5, dtype), (5,)),
    "mlp": (mlp_apply, mlp_init, (5,)),
    "cnn": (cnn_apply, cnn_init, (8, 8, 3)),
    "odd_conv": (odd_conv_apply, odd_conv_init, (7, 6, 3)),
    "residual": (res_apply, res_init, (5,)),
    "attention": (attn_apply, attn_init, (3, 4)),
    "fallbacks": (odd_apply, odd_init, (3, 4)),
    "grouped": (grouped_apply, grouped_init, (2, 3, 4)),
}


def _case(name, dtype=jnp.float64, n1=5, n2=3):
    apply_fn, init, row = ZOO[name]
    if dtype == jnp.float64:
        with x64():
            params = init(jax.random.PRNGKey(0), jnp.float64)
    else:
        params = init(jax.random.PRNGKey(0), dtype)
    rng = np.random.default_rng(1)
    return apply_fn, params, rng.normal(size=(n1,) + row), rng.normal(size=(n2,) + row)


# ============================================================================ exactness
# (model, outputs, strategy): every model once, both output modes and both strategies where they differ
EXACT_CASES = [
    ("fc", "mean", "auto"),
    ("mlp", "full", "auto"),
    ("mlp", "mean", "gradient"),
    ("cnn", "mean", "auto"),
    ("cnn", "full", "gram"),
    ("odd_conv", "mean", "gram"),
    ("odd_conv", "mean", "gradient"),
    ("residual", "mean", "auto"),
    ("attention", "full", "auto"),
    ("attention", "mean", "gram"),
    ("fallbacks", "mean", "auto"),
    ("grouped", "mean", "gram"),
]


@pytest.mark.parametrize(("name", "outputs", "strategy"), EXACT_CASES, ids=["-".join(c) for c in EXACT_CASES])
def test_structured_equals_jacobian_contraction_float64(name, outputs, strategy):
    apply_fn, params, x1, x2 = _case(name)
    expected = empirical.empirical_ntk(apply_fn, params, x1, x2, method="jacobian", outputs=outputs)
    got = st.structured_ntk(apply_fn, params, x1, x2, outputs=outputs, strategy=strategy)
    assert got.dtype == np.float64 and got.shape == expected.shape
    assert _rel(got, expected) < F64_TOL, f"{name}: relative difference {_rel(got, expected):.2e}"


@pytest.mark.parametrize("name", ["mlp", "attention"])
def test_symmetric_and_blocked_paths_equal_the_fused_one(name):
    """x2=None (upper blocks mirrored) in blocks of 2 rows, with and without kept features."""
    apply_fn, params, x1, _ = _case(name)
    expected = empirical.empirical_ntk(apply_fn, params, x1, x1, method="jacobian", outputs="full")
    fused = st.structured_ntk(apply_fn, params, x1, outputs="full")
    blocked = st.structured_ntk(apply_fn, params, x1, outputs="full", batch_size=2)
    recomputed = st.structured_ntk(apply_fn, params, x1, outputs="full", batch_size=2, memory_budget=1)
    for kernel in (fused, blocked, recomputed):
        assert _rel(kernel, expected) < F64_TOL
        np.testing.assert_array_equal(kernel, np.transpose(kernel, (1, 0, 3, 2)))


@pytest.mark.parametrize(
    ("x2_given", "outputs", "batch_size", "chunks"),
    [(False, "mean", 64, [2, 2, 2, 2]), (True, "mean", 64, [2, 2, 2, 2, 2, 2, 2]),
     (False, "full", 64, [2, 2, 2, 2]), (False, "mean", 4, [2, 2, 2, 2])],
    ids=["symmetric", "x2-given", "full-outputs", "two-blocks"],
)
def test_features_computed_a_few_rows_at_a_time(x2_given, outputs, batch_size, chunks, monkeypatch):
    """A transient share that holds two rows' transient work in a budget that holds blocks of
    several rows: features computed two rows at a time and written into one buffer, equal to the
    Jacobian contraction. 7 rows (5 for x2): one block of 8 in chunks of 2, the chunk past the last
    real row skipped; with batch_size=4, two balanced blocks of 4. The feature calls are counted."""
    from pytest_ntk.science.empirical import _engine

    monkeypatch.setattr(_engine, "TRANSIENT_SHARE", 1 / 1024)
    calls = []
    chunked = _engine._Engine.features_in_chunks

    def spy(self, leaves, xb, micro, valid=None):
        inner = self.features

        def counted(lv, x):
            if not isinstance(x, jax.core.Tracer):  # not eval_shape's trace
                calls.append(x.shape[0])
            return inner(lv, x)

        self.features = counted
        try:
            return chunked(self, leaves, xb, micro, valid)
        finally:
            self.features = inner

    monkeypatch.setattr(_engine._Engine, "features_in_chunks", spy)
    apply_fn, params, x1, x2 = _case("cnn", n1=7, n2=5)
    x2 = x2 if x2_given else None
    dtype = np.dtype(np.float64)
    with x64():  # the analysis structured_ntk makes (strategies included)
        key = st._key(apply_fn, params, x1.shape[1:], dtype)
        n2 = x1.shape[0] if x2 is None else x2.shape[0]
        _, strategies = st._plan(st._analysed(*key), x1.shape[0], n2, x2 is None, outputs, "auto")
        an = st._engine(*key, outputs, strategies).an
        stored, transient = _engine._row_bytes(an, dtype.itemsize)
        assert transient > stored  # convolutions: patches and activations at every position
        budget = 2 * transient * 1024
        rows, micro = _engine._rows(an, dtype.itemsize, outputs, batch_size, budget)
    assert micro == 2 and rows >= 4 and rows % micro == 0
    expected = empirical.empirical_ntk(apply_fn, params, x1, x2, method="jacobian", outputs=outputs)
    got = st.structured_ntk(apply_fn, params, x1, x2, outputs=outputs, memory_budget=budget,
                            batch_size=batch_size)
    assert _rel(got, expected) < F64_TOL
    assert calls == chunks


def test_memory_rule_bounds_the_transient_work():
    """rows is a multiple of micro, micro rows' transient work fits the transient share, and the
    whole fits the budget (down to one row)."""
    from pytest_ntk.science.empirical import _engine

    apply_fn, params, x1, _ = _case("cnn")
    dtype = np.dtype(np.float64)
    with x64():
        an = st._analysed(*st._key(apply_fn, params, x1.shape[1:], dtype))
    stored, transient = _engine._row_bytes(an, dtype.itemsize)
    pair = _engine._pair_bytes(an, dtype.itemsize, "mean")
    for budget in (1, transient, 8 * transient, 40 * transient, 1 << 30):
        rows, micro = _engine._rows(an, dtype.itemsize, "mean", 256, budget)
        assert 1 <= micro <= rows <= 256 and rows % micro == 0
        if micro > 1:
            assert micro * transient <= budget * _engine.TRANSIENT_SHARE
        if rows > 1:
            assert 2 * rows * stored + micro * transient + rows * rows * pair <= budget


def test_blocked_with_x2_given():
    apply_fn, params, x1, x2 = _case("cnn", n1=5, n2=4)
    expected = empirical.empirical_ntk(apply_fn, params, x1, x2, method="jacobian")
    assert _rel(st.structured_ntk(apply_fn, params, x1, x2, batch_size=2), expected) < F64_TOL


@pytest.mark.parametrize("name", ["fc", "cnn"])
def test_float32_is_within_1e5_of_the_float64_kernel(name):
    apply_fn, params32, x1, x2 = _case(name, dtype=jnp.float32)
    exact = empirical.empirical_ntk(apply_fn, params32, x1, x2, method="jacobian", dtype=np.float64)
    got = st.structured_ntk(apply_fn, params32, x1, x2)
    assert _rel(got, exact) < F32_TOL


def test_fully_connected_matches_its_closed_form_path():
    apply_fn, params, x1, x2 = _case("fc")
    assert _rel(st.structured_ntk(apply_fn, params, x1, x2), empirical.fc_empirical_ntk(_FC, params, x1, x2)) < F64_TOL


def test_empirical_ntk_method_structured_routes_here():
    apply_fn, params, x1, x2 = _case("residual")
    via_generic = empirical.empirical_ntk(apply_fn, params, x1, x2, method="structured")
    np.testing.assert_array_equal(via_generic, st.structured_ntk(apply_fn, params, x1, x2, batch_size=128))
    assert "structured" in empirical.METHODS


# ============================================================================ the plan
def test_plan_recognises_products_and_folds_biases():
    apply_fn, params, x1, x2 = _case("cnn")
    _, plan = st.structured_ntk(apply_fn, params, x1, x2, return_plan=True)
    kinds = {leaf.path: (leaf.kind, leaf.strategy) for leaf in plan.leaves}
    assert kinds["['c1']['k']"] == ("conv", "gradient")  # 64 positions: S^2 pairs cost more than the gradient
    assert kinds["['c1']['b']"] == ("bias", "folded")
    assert kinds["['out']['W']"] == ("dense", "gram")  # one position: two small Grams
    assert kinds["['out']['b']"] == ("bias", "folded")
    assert plan.fallback == () and plan.fallback_fraction() == 0.0
    assert (plan.n1, plan.n2, plan.out_dim, plan.outputs) == (5, 3, 3, "mean")


def test_plan_layer_norm_and_attention_are_recognised():
    apply_fn, params, x1, _ = _case("attention")
    plan = st.structured_plan(apply_fn, params, x1)
    kinds = {leaf.path: leaf.kind for leaf in plan.leaves}
    assert kinds["['q']"] == kinds["['k']"] == kinds["['v']"] == kinds["['o']['W']"] == "dense"
    assert kinds["['ln']['scale']"] == kinds["['ln']['offset']"] == "linear"
    assert kinds["['o']['b']"] == "linear"  # added after the residual sum: not the product's own signal
    assert all(leaf.recognised for leaf in plan.leaves)


def test_plan_reports_fallbacks_with_reasons():
    apply_fn, params, x1, _ = _case("fallbacks")
    plan = st.structured_plan(apply_fn, params, x1)
    by_path = {leaf.path: leaf for leaf in plan.leaves}
    assert by_path["['tied']"].kind == "fallback" and "2 places" in by_path["['tied']"].reason
    assert by_path["['emb']"].kind == "fallback" and "gather" in by_path["['emb']"].reason
    assert by_path["['gain']"].kind == "fallback" and "integer_pow" in by_path["['gain']"].reason
    assert by_path["['unused']"].kind == "unused" and by_path["['unused']"].flops == 0
    assert by_path["['heads']"].kind == "dense"
    assert 0 < plan.fallback_fraction() < 1
    text = str(plan)
    assert "['tied']" in text and "fallback" in text and "used in 2 places" in text


def test_fully_connected_plan_is_all_grams():
    apply_fn, params, x1, _ = _case("fc")
    plan = st.structured_plan(apply_fn, params, x1)
    assert [leaf.strategy for leaf in plan.leaves] == ["gram", "folded"] * 3


def test_a_model_with_only_fallbacks():
    def embed_apply(p, x):
        return jnp.sin(p["emb"][jnp.arange(3)] @ x.T).sum(0) + p["s"] * p["s"]

    with x64():
        params = {"emb": jax.random.normal(jax.random.PRNGKey(0), (4, 2), jnp.float64), "s": jnp.float64(0.5)}
    x1 = np.random.default_rng(0).normal(size=(4, 2))
    got, plan = st.structured_ntk(embed_apply, params, x1, return_plan=True)
    assert all(leaf.kind == "fallback" for leaf in plan.leaves)
    assert _rel(got, empirical.empirical_ntk(embed_apply, params, x1, method="jacobian")) < F64_TOL


# ============================================================================ errors
def test_bad_arguments_raise_value_error_naming_them():
    apply_fn, params, x1, _ = _case("fc")
    with pytest.raises(ValueError, match="apply_fn must be callable"):
        st.structured_ntk("not a function", params, x1)
    with pytest.raises(ValueError, match="x1 must be a batch"):
        st.structured_ntk(apply_fn, params, np.float64(1.0))
    with pytest.raises(ValueError, match=r"x2 must have the row shape of x1 \(5,\), got shape \(2, 4\)"):
        st.structured_ntk(apply_fn, params, x1, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="x1 must be numeric"):
        st.structured_ntk(apply_fn, params, np.array([["a"] * 5]))
    with pytest.raises(ValueError, match="outputs must be one of"):
        st.structured_ntk(apply_fn, params, x1, outputs="trace")
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got"):
        st.structured_ntk(apply_fn, params, x1, dtype=np.int32)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        st.structured_ntk(apply_fn, params, x1, batch_size=0)
    with pytest.raises(ValueError, match="memory_budget must be a positive integer, got -1"):
        st.structured_ntk(apply_fn, params, x1, memory_budget=-1)
    with pytest.raises(ValueError, match="strategy must be one of .*, got 'fast'"):
        st.structured_ntk(apply_fn, params, x1, strategy="fast")
    with pytest.raises(ValueError, match="return_plan must be True or False, got 'yes'"):
        st.structured_ntk(apply_fn, params, x1, return_plan="yes")
    with pytest.raises(ValueError, match="strategy must be one of"):
        st.structured_plan(apply_fn, params, x1, strategy="fast")


def test_unhashable_apply_fn_and_bad_output_shape():
    class Unhashable:
        __hash__ = None

        def __call__(self, p, x):
            return x.sum(-1)

    with pytest.raises(ValueError, match="apply_fn must be hashable"):
        st.structured_ntk(Unhashable(), {"w": jnp.ones(2)}, np.ones((2, 2)))

    def cube(p, x):
        return jnp.einsum("nd,d->n", x, p["w"])[:, None, None] * jnp.ones((1, 2, 2))

    with pytest.raises(ValueError, match=r"apply_fn must return shape \(n,\) or \(n, K\), got \(1, 2, 2\)"):
        st.structured_ntk(cube, {"w": jnp.ones(2)}, np.ones((2, 2)))
