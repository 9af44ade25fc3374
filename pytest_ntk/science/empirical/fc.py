r"""The structured empirical NTK and NNGP of a :class:`~pytest_ntk.science.nets.FullyConnected` network.

The formula and its derivation are in the package docstring (:mod:`pytest_ntk.science.empirical`):
one forward pass, one backward pass of the signals ``delta^l`` and ``2 L + 1`` Gram matrices; the
Jacobian is never formed. The network is read through its public interface (``depth``,
``activation``, ``out_dim``, ``layer_sizes``, ``scales``), so this module does not import
:mod:`pytest_ntk.science.nets` (which imports it).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..activations import ACTIVATIONS
from ._common import (
    FC_BATCH_SIZE,
    _as_inputs,
    _blocks,
    _cast_tree,
    _check_batch_size,
    _check_outputs,
    _finite,
    _place,
    _precision,
    _resolve_dtype,
    _symmetrize,
)

__all__ = ["check_fc_model", "fc_empirical_nngp", "fc_empirical_ntk", "fc_ntk_flops"]


def check_fc_model(model) -> None:
    """ValueError unless ``model`` is a fully-connected network description (a ``FullyConnected``)."""
    needed = ("depth", "width", "activation", "out_dim", "layer_sizes", "scales", "init", "describe")
    missing = [a for a in needed if not hasattr(model, a)]
    if missing:
        raise ValueError(f"model must be a FullyConnected, got {type(model).__name__} (it has no {', '.join(missing)})")


def _check_fc(model, params, in_dim: int) -> None:
    check_fc_model(model)
    if not isinstance(params, (list, tuple)) or len(params) != model.depth + 1:
        got = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
        raise ValueError(
            f"params must be a list of depth + 1 = {model.depth + 1} layers "
            f"{{'W', 'b'}} (readout last), got {got}"
        )
    expected = model.layer_sizes(in_dim)
    for i, layer in enumerate(params):
        shape = tuple(np.shape(layer["W"]))
        if shape != (expected[i], expected[i + 1]):
            raise ValueError(
                f"params[{i}]['W'] has shape {shape}, expected {(expected[i], expected[i + 1])} "
                f"for {model.describe()} on inputs of dimension {in_dim}"
            )



# ============================================================================ structured path (FC)
def _fc_forward(model, params, x):
    """``hs = [h^0 .. h^L]`` and ``dphis = [phi'(z^1) .. phi'(z^L)]`` of the batch ``x``."""
    phi = ACTIVATIONS[model.activation]
    h = x
    hs, dphis = [x], []
    for layer in params[:-1]:
        w_scale, b_scale = model.scales(layer["W"].shape[0])
        z = w_scale * (h @ layer["W"]) + b_scale * layer["b"]
        # phi is elementwise, so a jvp with a tangent of ones gives phi(z) and phi'(z) together.
        h, dphi = jax.jvp(phi, (z,), (jnp.ones_like(z),))
        hs.append(h)
        dphis.append(dphi)
    return hs, dphis


def _fc_features(model, params, x):
    """Forward features ``[h^0 .. h^L]`` and backward signals ``[delta^1 .. delta^L]``.

    ``delta^l`` is stored transposed, shape ``(K, n_l, n)``: ``delta^l[a, :, i]`` is
    ``d f_a / d z^l`` at row ``i`` of ``x``. In this layout the back-propagation is ``W @ delta``
    and the signal Gram ``delta^T delta``, the matrix-product forms XLA's CPU backend runs fastest
    (``delta @ W.T`` with a transposed right operand ran about 1.5x slower).
    """
    hs, dphis = _fc_forward(model, params, x)
    deltas = []
    if model.depth > 0:
        W_out = params[-1]["W"]  # (n_L, K)
        w_scale, _ = model.scales(W_out.shape[0])
        delta = w_scale * W_out.T[:, :, None] * dphis[-1].T[None, :, :]  # delta^L: (K, n_L, n)
        deltas.append(delta)
        for l in range(model.depth - 1, 0, -1):  # delta^l from delta^{l+1}, l = L-1 .. 1
            W = params[l]["W"]  # (n_l, n_{l+1}): maps h^l -> z^{l+1}
            w_scale, _ = model.scales(W.shape[0])
            delta = w_scale * (W @ delta) * dphis[l - 1].T[None, :, :]
            deltas.append(delta)
        deltas.reverse()
    return hs, deltas


def _delta_gram(d1, d2, outputs: str):
    """``<delta_a(x), delta_b(x')>``: averaged over a = b (``"mean"``), or all (a, b) (``"full"``).

    ``d1``, ``d2`` are transposed signals, shapes ``(K, w, n1)`` and ``(K, w, n2)``.
    """
    K, w, n1 = d1.shape
    n2 = d2.shape[2]
    if outputs == "mean":
        if K == 1:
            return d1[0].T @ d2[0]
        return (d1.reshape(K * w, n1).T @ d2.reshape(K * w, n2)) / K
    return jnp.einsum("awi,bwj->ijab", d1, d2)


def _fc_ntk_from_features(model, outputs: str, feats1, feats2):
    """The NTK block of two feature sets (formula in the module docstring)."""
    hs1, ds1 = feats1
    hs2, ds2 = feats2
    K = model.out_dim
    theta = None
    for l in range(1, model.depth + 1):
        w_scale, b_scale = model.scales(hs1[l - 1].shape[1])
        H = w_scale**2 * (hs1[l - 1] @ hs2[l - 1].T) + b_scale**2
        D = _delta_gram(ds1[l - 1], ds2[l - 1], outputs)
        term = H * D if outputs == "mean" else H[:, :, None, None] * D
        theta = term if theta is None else theta + term
    # readout: delta^{L+1}_a = e_a
    w_scale, b_scale = model.scales(hs1[-1].shape[1])
    H = w_scale**2 * (hs1[-1] @ hs2[-1].T) + b_scale**2
    term = H if outputs == "mean" else H[:, :, None, None] * jnp.eye(K, dtype=H.dtype)
    return term if theta is None else theta + term


def _readout_variances(model, n_last: int) -> tuple[float, float]:
    """Prior variances of the readout's effective weight and bias: ``(W_std^2 / n_L, b_std^2)``."""
    return model.W_std**2 / n_last, model.b_std**2


def _fc_nngp_from_hidden(model, h1, h2):
    w_var, b_var = _readout_variances(model, h1.shape[1])
    return w_var * (h1 @ h2.T) + b_var


@partial(jax.jit, static_argnums=(0, 1))
def _fc_ntk_fused(model, outputs, params, x1, x2):
    feats1 = _fc_features(model, params, x1)
    feats2 = feats1 if x2 is None else _fc_features(model, params, x2)
    return _fc_ntk_from_features(model, outputs, feats1, feats2)


_fc_features_jit = jax.jit(_fc_features, static_argnums=(0,))
_fc_ntk_from_features_jit = jax.jit(_fc_ntk_from_features, static_argnums=(0, 1))


@partial(jax.jit, static_argnums=(0,))
def _fc_hidden(model, params, x):
    return _fc_forward(model, params, x)[0][-1]


@partial(jax.jit, static_argnums=(0,))
def _fc_nngp_fused(model, params, x1, x2):
    h1 = _fc_forward(model, params, x1)[0][-1]
    h2 = h1 if x2 is None else _fc_forward(model, params, x2)[0][-1]
    return _fc_nngp_from_hidden(model, h1, h2)


_fc_nngp_from_hidden_jit = jax.jit(_fc_nngp_from_hidden, static_argnums=(0,))

def _blocked_kernel(feature_fn, gram_fn, x1, x2, batch_size, dtype, extra_shape=()):
    """Assemble ``gram_fn(feature_fn(block_i), feature_fn(block_j))`` over row blocks.

    Features are computed once per block and kept (``(n1 + n2) x width x (2 depth + 1)`` numbers,
    a factor ``width`` less than the Jacobian); every block has the same padded shape, so each jitted
    function compiles once. With ``x2 is None`` only blocks ``j >= i`` are computed and mirrored.
    """
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    out = np.empty((n1, n2) + extra_shape, np.float64)
    blocks1 = [(s, e, feature_fn(b)) for s, e, b in _blocks(x1, batch_size, dtype)]
    blocks2 = blocks1 if x2 is None else [(s, e, feature_fn(b)) for s, e, b in _blocks(x2, batch_size, dtype)]
    for i, (s1, e1, f1) in enumerate(blocks1):
        for j, (s2, e2, f2) in enumerate(blocks2):
            if x2 is None and j < i:
                continue
            _place(out, gram_fn(f1, f2), s1, e1, s2, e2, x2 is None and j > i)
    return out


def fc_empirical_ntk(
    model,
    params,
    x1,
    x2=None,
    *,
    dtype=None,
    batch_size: int | None = None,
    outputs: str = "mean",
) -> np.ndarray:
    r"""Exact empirical NTK :math:`\Theta(x_1, x_2)` of ``model`` at ``params``, from per-layer Grams.

    .. math::  \Theta_{ab}(x, x') = \sum_{l=1}^{L+1}
               \big(\alpha_l^2\langle h^{l-1}(x), h^{l-1}(x')\rangle + \beta_l^2\big)\,
               \langle\delta^l_a(x), \delta^l_b(x')\rangle,

    with :math:`\delta^l_a = \partial f_a/\partial z^l` back-propagated in closed form
    (:math:`\delta^{L+1}_a = e_a`, :math:`\delta^{l}_a = \alpha_{l+1}(W^{l+1}\delta^{l+1}_a)\odot\phi'(z^l)`);
    the derivation is in the module docstring. This is the sum over every weight and bias of
    :math:`\partial f_a(x)/\partial\theta\cdot\partial f_b(x')/\partial\theta`, exactly, without the
    Jacobian.

    Args:
        model: the network description.
        params: its parameters (``model.init``'s layout).
        x1: inputs, shape ``(n1, d)``.
        x2: inputs, shape ``(n2, d)``; ``None`` means ``x1`` (the forward/backward pass runs once,
            only the upper block triangle is computed, and the result is exactly symmetric).
        dtype: ``float32`` or ``float64``; default: the parameters' dtype.
        batch_size: rows per block (default ``FC_BATCH_SIZE`` = 2048). When both inputs fit in one
            block the whole kernel is one fused jit-compiled call; otherwise features are computed
            per block (zero-padded to one shape, so one compilation) and Gram blocks assembled.
            Memory is ``O(n1 n2 + (n1 + n2) width depth + batch_size^2)``.
        outputs: ``"mean"`` (shape ``(n1, n2)``, the average of the ``out_dim`` diagonal output blocks)
            or ``"full"`` (shape ``(n1, n2, out_dim, out_dim)``).

    Returns:
        float64 numpy array.
    """
    x1 = _as_inputs(x1, "x1")
    x2 = None if x2 is None else _as_inputs(x2, "x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ValueError(f"x2 has {x2.shape[1]} columns but x1 has {x1.shape[1]}")
    _check_fc(model, params, x1.shape[1])
    outputs = _check_outputs(outputs)
    batch_size = FC_BATCH_SIZE if batch_size is None else _check_batch_size(batch_size)
    dtype = _resolve_dtype(dtype, params)
    K = model.out_dim
    extra = () if outputs == "mean" else (K, K)
    with _precision(dtype):
        p = _cast_tree(params, dtype)
        if x1.shape[0] <= batch_size and (x2 is None or x2.shape[0] <= batch_size):
            j2 = None if x2 is None else jnp.asarray(x2, dtype)
            out = np.asarray(_fc_ntk_fused(model, outputs, p, jnp.asarray(x1, dtype), j2), np.float64)
        else:
            out = _blocked_kernel(
                lambda xb: _fc_features_jit(model, p, xb),
                lambda f1, f2: _fc_ntk_from_features_jit(model, outputs, f1, f2),
                x1, x2, batch_size, dtype, extra,
            )
    if x2 is None:
        out = _symmetrize(out)
    return _finite(out, f"fc_empirical_ntk of {model.describe()}")


def fc_empirical_nngp(
    model,
    params,
    x1,
    x2=None,
    *,
    dtype=None,
    batch_size: int | None = None,
) -> np.ndarray:
    r"""Empirical NNGP: the covariance of the readout given the hidden weights.

    With the hidden weights fixed and the readout drawn from its prior (effective weight variance
    :math:`\sigma_w^2/n_L`, bias variance :math:`\sigma_b^2`, in either parameterization),
    each output :math:`f_a(x) = \tilde w_a\cdot h^L(x) + \tilde b_a` is a centred Gaussian process with

    .. math::  K(x, x') = \mathbb{E}_{\text{readout}}[f_a(x) f_a(x')]
               = \frac{\sigma_w^2}{n_L}\langle h^L(x), h^L(x')\rangle + \sigma_b^2

    (:math:`h^0 = x`, :math:`n_0 = d` for depth 0), independent across outputs; so the result has
    shape ``(n1, n2)`` for every ``out_dim``. Averaged over the hidden weights it tends to the
    analytic NNGP (:meth:`FullyConnected.nngp`) as the width grows. The readout's own values in
    ``params`` are not used. ``dtype`` and ``batch_size`` as in :func:`fc_empirical_ntk`.
    """
    x1 = _as_inputs(x1, "x1")
    x2 = None if x2 is None else _as_inputs(x2, "x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ValueError(f"x2 has {x2.shape[1]} columns but x1 has {x1.shape[1]}")
    _check_fc(model, params, x1.shape[1])
    batch_size = FC_BATCH_SIZE if batch_size is None else _check_batch_size(batch_size)
    dtype = _resolve_dtype(dtype, params)
    with _precision(dtype):
        p = _cast_tree(params, dtype)
        if x1.shape[0] <= batch_size and (x2 is None or x2.shape[0] <= batch_size):
            j2 = None if x2 is None else jnp.asarray(x2, dtype)
            out = np.asarray(_fc_nngp_fused(model, p, jnp.asarray(x1, dtype), j2), np.float64)
        else:
            out = _blocked_kernel(
                lambda xb: _fc_hidden(model, p, xb),
                lambda h1, h2: _fc_nngp_from_hidden_jit(model, h1, h2),
                x1, x2, batch_size, dtype,
            )
    if x2 is None:
        out = _symmetrize(out)
    return _finite(out, f"fc_empirical_nngp of {model.describe()}")


def fc_ntk_flops(model, in_dim: int, n1: int, n2: int | None = None, outputs: str = "mean") -> dict:
    """Floating-point operations of one :func:`fc_empirical_ntk` call (matrix products only, 2 per multiply-add).

    ``forward``: :math:`\\sum_l 2 n\\, n_{l-1} n_l` per input set; ``backward``: the products
    :math:`\\delta^{l+1} W^{l+1\\top}`, :math:`2 K n\\, n_{l+1} n_l` for ``l = 1 .. L-1`` per input set;
    ``grams``: :math:`2 n_1 n_2 n_{l-1}` for each of the ``L + 1`` feature Grams and
    :math:`2 n_1 n_2 K n_l` for each of the ``L`` signal Grams (``x2=None`` counts the full square,
    which is what runs). Elementwise work (activations, the Hadamard products) is O(n width) or
    O(n1 n2 L) and left out. ``outputs="full"`` costs the same products as ``"mean"`` here.
    """
    sizes = model.layer_sizes(in_dim)
    L, K = model.depth, model.out_dim
    passes = [n1] if n2 is None else [n1, n2]
    n2 = n1 if n2 is None else n2
    forward = sum(2 * n * sizes[l] * sizes[l + 1] for n in passes for l in range(L))
    forward += sum(2 * n * sizes[L] * K for n in passes)  # the readout (the output itself)
    backward = sum(2 * K * n * sizes[l + 1] * sizes[l] for n in passes for l in range(1, L))
    grams = sum(2 * n1 * n2 * sizes[l] for l in range(L + 1))
    grams += sum(2 * n1 * n2 * K * sizes[l] for l in range(1, L + 1))
    return {"forward": forward, "backward": backward, "grams": grams, "total": forward + backward + grams}

