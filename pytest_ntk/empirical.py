r"""Empirical (finite-width) kernels: the NTK and NNGP of one draw of weights, and their seed averages.

The empirical NTK of a network :math:`f(\cdot;\theta)` with outputs :math:`f_a` is

.. math::  \Theta_{ab}(x, x') = \sum_p \frac{\partial f_a(x)}{\partial\theta_p}\,
                                      \frac{\partial f_b(x')}{\partial\theta_p}
           = [J(x) J(x')^\top]_{ab},

the Gram matrix of the parameter gradients. Two ways to compute it live here.

**Structured path for** :class:`~pytest_ntk.nets.FullyConnected` (:func:`fc_empirical_ntk`).
With :math:`h^0 = x`, forward multipliers :math:`(\alpha_l, \beta_l)` of layer ``l`` (``model._scales``:
:math:`\alpha_l = \sigma_w/\sqrt{n_{l-1}},\ \beta_l = \sigma_b` in the NTK parameterization, both 1 in the
standard one), and

.. math::  z^l = \alpha_l\, h^{l-1} W^l + \beta_l\, b^l,\qquad h^l = \phi(z^l)\ (l \le L),
           \qquad f = z^{L+1},

the gradient of output ``a`` with respect to a layer's parameters factorises through the
back-propagated signal :math:`\delta^l_a(x) = \partial f_a(x)/\partial z^l \in \mathbb{R}^{n_l}`:

.. math::  \frac{\partial f_a}{\partial W^l_{ij}} = \alpha_l\, h^{l-1}_i\, \delta^l_{a,j},\qquad
           \frac{\partial f_a}{\partial b^l_j} = \beta_l\, \delta^l_{a,j}.

Summing the products over ``i, j`` turns a sum over :math:`n_{l-1} n_l` weights into a product of
two inner products, one per factor:

.. math::  \Theta_{ab}(x, x') = \sum_{l=1}^{L+1}
           \big(\alpha_l^2\,\langle h^{l-1}(x), h^{l-1}(x')\rangle + \beta_l^2\big)\,
           \langle \delta^l_a(x), \delta^l_b(x')\rangle .

The signals follow in closed form, layer by layer, from the readout down:
:math:`\delta^{L+1}_a = e_a` (so :math:`\langle\delta^{L+1}_a, \delta^{L+1}_b\rangle = [a = b]`),
:math:`\delta^L_a = \alpha_{L+1} W^{L+1}_{:,a} \odot \phi'(z^L)` and
:math:`\delta^{l}_a = \alpha_{l+1}\,(W^{l+1}\delta^{l+1}_a) \odot \phi'(z^l)`. For a batch, every
inner product above is one matrix product of an ``(n, width)`` feature matrix with another: the
cost is one forward pass, one backward pass and ``2 L + 1`` Gram matrices, and the ``(n, #params)``
Jacobian is never formed (for width 1024 and depth 3 that is 2M parameters per row).

**Generic path** (:func:`empirical_ntk`) for any JAX model ``apply_fn(params, x)``: Jacobian
contraction (per-example Jacobians by ``vmap(jacrev)``, contracted leaf by leaf) or NTK-vector
products (the per-example gradients of the ``x2`` rows pushed through ``jvp`` on the ``x1`` rows,
so ``x1``'s Jacobian is never held), in blocks so that memory stays bounded.

**Output axes.** With ``K = out_dim > 1`` outputs, ``outputs="mean"`` (the default) returns
:math:`\frac1K\sum_a \Theta_{aa}(x, x')`, shape ``(n1, n2)``: the average of the per-output
diagonal blocks. At infinite width :math:`\Theta_{ab} = \delta_{ab}\,\Theta^\infty`, so this is the
quantity that compares with the scalar analytic kernel (:meth:`FullyConnected.ntk`), for any ``K``.
``outputs="full"`` returns all :math:`\Theta_{ab}(x, x')`, shape ``(n1, n2, K, K)``. For ``K = 1``
``"mean"`` is simply :math:`\Theta(x, x')`.

**Precision.** Computation runs in the parameters' dtype (float32 for :meth:`FullyConnected.init`'s
default) or in ``dtype=`` (``float64`` runs inside :func:`pytest_ntk.numerics.x64`, without touching
the global JAX configuration). Results always come back as float64 numpy arrays; a non-finite
result raises :class:`~pytest_ntk.errors.NumericalError`.

**Seed averages** (:func:`monte_carlo_kernels`): the mean and per-entry spread of the empirical
NNGP and NTK over ``n_samples`` independent initialisations, vmapped over seeds in chunks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .errors import NumericalError
from .nets import ACTIVATIONS, FullyConnected
from .numerics import x64

__all__ = [
    "METHODS",
    "OUTPUTS",
    "MonteCarloKernels",
    "empirical_ntk",
    "fc_empirical_nngp",
    "fc_empirical_ntk",
    "fc_ntk_flops",
    "monte_carlo_kernels",
]

OUTPUTS = ("mean", "full")
METHODS = ("auto", "jacobian", "ntvp")

#: Rows per block of the structured path. Inputs with at most this many rows (both x1 and x2) are
#: done in one fused, jit-compiled call; larger ones in blocks (see :func:`fc_empirical_ntk`).
FC_BATCH_SIZE = 2048
#: Rows per block of the generic path (before the memory rule of :func:`empirical_ntk` shrinks it).
GENERIC_BATCH_SIZE = 128
#: Bytes the generic path and the Monte Carlo chunks may spend on Jacobians / features at once.
MEMORY_BUDGET = 1 << 30
#: ``method="auto"`` uses Jacobian contraction while blocks of at least this many rows fit the budget.
MIN_JACOBIAN_ROWS = 16


# ============================================================================ validation helpers
def _as_inputs(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, d), got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} must have at least one row, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def _resolve_dtype(dtype, params) -> np.dtype:
    """``dtype`` if given, else the floating dtype of the parameters (float32 if they have none)."""
    if dtype is None:
        kinds = [
            np.dtype(leaf.dtype)
            for leaf in jax.tree_util.tree_leaves(params)
            if hasattr(leaf, "dtype") and np.issubdtype(np.dtype(leaf.dtype), np.floating)
        ]
        dtype = np.result_type(*kinds) if kinds else np.float32
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dtype


def _precision(dtype: np.dtype):
    """float64 needs JAX's 64-bit mode, enabled for the block only."""
    return x64() if dtype == np.float64 else contextlib.nullcontext()


def _check_batch_size(batch_size, name: str = "batch_size") -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{name} must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _check_outputs(outputs) -> str:
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
    return outputs


def _finite(result: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(result)):
        bad = int(np.size(result) - np.count_nonzero(np.isfinite(result)))
        raise NumericalError(f"{what}: {bad} of {np.size(result)} entries are non-finite")
    return result


def _symmetrize(kernel: np.ndarray) -> np.ndarray:
    """``(K + K^T) / 2`` over the input axes (and the output axes of a full kernel).

    With ``x2=None`` the kernel is symmetric in exact arithmetic; a matrix product ``h h^T`` need not
    be to the last bit, and solvers downstream (Cholesky, eigh) want it exactly symmetric.
    """
    perm = (1, 0, 3, 2) if kernel.ndim == 4 else (1, 0)
    return 0.5 * (kernel + np.transpose(kernel, perm))


def _check_fc(model, params, in_dim: int) -> None:
    if not isinstance(model, FullyConnected):
        raise ValueError(f"model must be a FullyConnected, got {type(model).__name__}")  # noqa: TRY004 (house rule)
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


def _cast_tree(tree, dtype):
    """Floating leaves to ``dtype`` (as JAX arrays); other leaves unchanged."""

    def cast(leaf):
        arr = jnp.asarray(leaf)
        return arr.astype(dtype) if jnp.issubdtype(arr.dtype, jnp.floating) else arr

    return jax.tree_util.tree_map(cast, tree)


# ============================================================================ structured path (FC)
def _fc_forward(model: FullyConnected, params, x):
    """``hs = [h^0 .. h^L]`` and ``dphis = [phi'(z^1) .. phi'(z^L)]`` of the batch ``x``."""
    phi = ACTIVATIONS[model.activation]
    h = x
    hs, dphis = [x], []
    for layer in params[:-1]:
        w_scale, b_scale = model._scales(layer["W"].shape[0])
        z = w_scale * (h @ layer["W"]) + b_scale * layer["b"]
        # phi is elementwise, so a jvp with a tangent of ones gives phi(z) and phi'(z) together.
        h, dphi = jax.jvp(phi, (z,), (jnp.ones_like(z),))
        hs.append(h)
        dphis.append(dphi)
    return hs, dphis


def _fc_features(model: FullyConnected, params, x):
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
        w_scale, _ = model._scales(W_out.shape[0])
        delta = w_scale * W_out.T[:, :, None] * dphis[-1].T[None, :, :]  # delta^L: (K, n_L, n)
        deltas.append(delta)
        for l in range(model.depth - 1, 0, -1):  # delta^l from delta^{l+1}, l = L-1 .. 1
            W = params[l]["W"]  # (n_l, n_{l+1}): maps h^l -> z^{l+1}
            w_scale, _ = model._scales(W.shape[0])
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


def _fc_ntk_from_features(model: FullyConnected, outputs: str, feats1, feats2):
    """The NTK block of two feature sets (formula in the module docstring)."""
    hs1, ds1 = feats1
    hs2, ds2 = feats2
    K = model.out_dim
    theta = None
    for l in range(1, model.depth + 1):
        w_scale, b_scale = model._scales(hs1[l - 1].shape[1])
        H = w_scale**2 * (hs1[l - 1] @ hs2[l - 1].T) + b_scale**2
        D = _delta_gram(ds1[l - 1], ds2[l - 1], outputs)
        term = H * D if outputs == "mean" else H[:, :, None, None] * D
        theta = term if theta is None else theta + term
    # readout: delta^{L+1}_a = e_a
    w_scale, b_scale = model._scales(hs1[-1].shape[1])
    H = w_scale**2 * (hs1[-1] @ hs2[-1].T) + b_scale**2
    term = H if outputs == "mean" else H[:, :, None, None] * jnp.eye(K, dtype=H.dtype)
    return term if theta is None else theta + term


def _readout_variances(model: FullyConnected, n_last: int) -> tuple[float, float]:
    """Prior variances of the readout's effective weight and bias: ``(W_std^2 / n_L, b_std^2)``."""
    return model.W_std**2 / n_last, model.b_std**2


def _fc_nngp_from_hidden(model: FullyConnected, h1, h2):
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


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    if x.shape[0] == rows:
        return x
    return np.concatenate([x, np.zeros((rows - x.shape[0],) + x.shape[1:], x.dtype)], axis=0)


def _blocks(x: np.ndarray, batch_size: int, dtype) -> list[tuple[int, int, Any]]:
    """``(start, stop, padded_block)`` triples; every block has ``batch_size`` rows (zero padded)."""
    out = []
    for start in range(0, x.shape[0], batch_size):
        stop = min(start + batch_size, x.shape[0])
        out.append((start, stop, jnp.asarray(_pad_rows(x[start:stop], batch_size), dtype)))
    return out


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
    model: FullyConnected,
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
    model: FullyConnected,
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


def fc_ntk_flops(model: FullyConnected, in_dim: int, n1: int, n2: int | None = None, outputs: str = "mean") -> dict:
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


# ============================================================================ generic path
def _single_example(apply_fn):
    """``x -> apply_fn(params, x[None])`` flattened to the vector of the example's K outputs."""

    def single(params, x):
        return jnp.reshape(apply_fn(params, x[None]), (-1,))

    return single


def _per_example_jacobian(apply_fn, params, xb):
    """Pytree like ``params`` with leaves ``(b, K, *leaf.shape)``: the gradient of each output of each row."""
    return jax.vmap(jax.jacrev(_single_example(apply_fn)), in_axes=(None, 0))(params, xb)


def _contract_leaves(j1, j2, outputs: str, K: int):
    """:math:`\\sum_{leaves} J_1 J_2^\\top` with the output axes averaged (``mean``) or kept (``full``)."""
    theta = None
    for a, b in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)):
        n1, n2 = a.shape[0], b.shape[0]
        if outputs == "mean":
            term = a.reshape(n1, -1) @ b.reshape(n2, -1).T
        else:
            term = a.reshape(n1 * K, -1) @ b.reshape(n2 * K, -1).T
            term = term.reshape(n1, K, n2, K).transpose(0, 2, 1, 3)
        theta = term if theta is None else theta + term
    return theta / K if outputs == "mean" else theta


@partial(jax.jit, static_argnums=(0, 1, 2))
def _jacobian_block(apply_fn, outputs, K, params, x1b, x2b):
    """One fused call: both blocks' Jacobians and their contraction (``x2b=None``: ``x1b``'s only)."""
    j1 = _per_example_jacobian(apply_fn, params, x1b)
    j2 = j1 if x2b is None else _per_example_jacobian(apply_fn, params, x2b)
    return _contract_leaves(j1, j2, outputs, K)


_per_example_jacobian_jit = jax.jit(_per_example_jacobian, static_argnums=(0,))


def _ntvp_columns(apply_fn, outputs, K, params, x1b, grads):
    """``Theta(x1b, x2_j)`` as ``J(x1b) g`` for each per-example gradient ``g`` (leaves ``(b2, K, ...)``)."""

    def column(tangent):  # J(x1b) @ tangent: (b1, K)
        out = jax.jvp(lambda p: apply_fn(p, x1b), (params,), (tangent,))[1]
        return jnp.reshape(out, (x1b.shape[0], K))

    cols = jax.vmap(jax.vmap(column))(grads)  # cols[j, b, i, a] = Theta_ab(x1_i, x2_j)
    if outputs == "mean":
        return jnp.einsum("jaia->ij", cols) / K
    return jnp.transpose(cols, (2, 0, 3, 1))


@partial(jax.jit, static_argnums=(0, 1, 2))
def _ntvp_block(apply_fn, outputs, K, params, x1b, x2b):
    """One fused call: ``x2b``'s per-example gradients pushed through ``jvp`` on ``x1b``."""
    return _ntvp_columns(apply_fn, outputs, K, params, x1b, _per_example_jacobian(apply_fn, params, x2b))


_ntvp_columns_jit = jax.jit(_ntvp_columns, static_argnums=(0, 1, 2))


def _count_params(params) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def _choose_method(method: str, n_params: int, K: int, itemsize: int, batch_size: int, memory_budget: int):
    """The rule of :func:`empirical_ntk` for ``method="auto"``: ``(method, batch rows, x2 chunk rows)``."""
    row_bytes = n_params * K * itemsize  # one row's Jacobian
    fit_rows = max(1, memory_budget // (2 * row_bytes))  # rows of x1 and x2 Jacobians that fit
    chunk = max(1, min(batch_size, memory_budget // row_bytes))  # x2 gradient rows held by ntvp
    if method == "auto":
        if min(batch_size, fit_rows) >= min(batch_size, MIN_JACOBIAN_ROWS):
            return "jacobian", min(batch_size, fit_rows), chunk
        return "ntvp", batch_size, chunk
    if method == "jacobian":
        return "jacobian", batch_size, chunk
    return "ntvp", batch_size, chunk


def empirical_ntk(
    apply_fn: Callable,
    params,
    x1,
    x2=None,
    *,
    method: str = "auto",
    batch_size: int = GENERIC_BATCH_SIZE,
    dtype=None,
    outputs: str = "mean",
    memory_budget: int = MEMORY_BUDGET,
) -> np.ndarray:
    r"""Empirical NTK :math:`\Theta(x_1, x_2) = J(x_1) J(x_2)^\top` of any JAX model, in blocks.

    ``apply_fn(params, x)`` maps a batch ``x`` (leading axis = rows) to outputs of shape ``(n,)`` or
    ``(n, K)``; it must treat rows independently (it is evaluated on single rows). It must be
    hashable (functions and bound methods are): it is a static argument of the compiled blocks, so
    pass the same function object across calls to reuse the compilations (a fresh ``lambda`` per
    call compiles anew).

    Methods (``P`` = number of parameters, ``K`` outputs, ``b`` rows per block):

    * ``"jacobian"``: per-example Jacobians ``vmap(jacrev)`` of an ``x1`` block and an ``x2`` block
      (``2 b K P`` numbers), contracted leaf by leaf: ``2 b^2 K P`` flops per block pair, as matrix
      products. Each block's Jacobian is recomputed once per partner block (``O(b P)`` against the
      ``O(b^2 P)`` contraction).
    * ``"ntvp"``: NTK-vector products. For each row ``j`` of an ``x2`` chunk and each output ``b``,
      the gradient :math:`g = \nabla_\theta f_b(x_2^{(j)})` (a vjp) is pushed forward through
      ``jvp`` of ``apply_fn(., x1_block)``, giving the column :math:`J(x_1) g`. ``x1``'s Jacobian is
      never formed; ``x2``'s gradients are held ``chunk`` rows at a time. It costs a forward-mode
      pass over the ``x1`` block per column, which is why it is the fallback, not the default.
    * ``"auto"``: with ``r = floor(memory_budget / (2 K P itemsize))`` the rows whose Jacobians fit
      the budget, use ``"jacobian"`` with blocks of ``min(batch_size, r)`` rows when that is at least
      ``min(batch_size, 16)``; otherwise ``"ntvp"`` (``x2`` chunks of
      ``max(1, memory_budget // (K P itemsize))`` rows, ``x1`` blocks of ``batch_size``).

    ``dtype``, ``outputs`` and the float64 result as in :func:`fc_empirical_ntk`.
    """
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable, got {apply_fn!r}")  # noqa: TRY004 (house rule)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    batch_size = _check_batch_size(batch_size)
    memory_budget = _check_batch_size(memory_budget, "memory_budget")
    outputs = _check_outputs(outputs)
    x1 = np.asarray(x1)
    if x1.ndim < 1 or x1.shape[0] < 1:
        raise ValueError(f"x1 must be a batch with at least one row, got shape {x1.shape}")
    if x2 is not None:
        x2 = np.asarray(x2)
        if x2.ndim != x1.ndim or x2.shape[1:] != x1.shape[1:] or x2.shape[0] < 1:
            raise ValueError(f"x2 must have the row shape of x1 {x1.shape[1:]}, got shape {x2.shape}")
    dtype = _resolve_dtype(dtype, params)
    with _precision(dtype):
        p = _cast_tree(params, dtype)
        out_shape = jax.eval_shape(apply_fn, p, jax.ShapeDtypeStruct((1,) + x1.shape[1:], dtype)).shape
        if len(out_shape) == 1:
            K = 1
        elif len(out_shape) == 2:
            K = int(out_shape[1])
        else:
            raise ValueError(f"apply_fn must return shape (n,) or (n, K), got {out_shape} for one row")
        n_params = _count_params(p)
        chosen, rows, chunk = _choose_method(method, n_params, K, dtype.itemsize, batch_size, memory_budget)
        extra = () if outputs == "mean" else (K, K)
        if chosen == "jacobian":
            out = _jacobian_blocks(apply_fn, outputs, K, p, x1, x2, rows, dtype, extra)
        else:
            out = _ntvp_blocks(apply_fn, outputs, K, p, x1, x2, rows, chunk, dtype, extra)
    if x2 is None:
        out = _symmetrize(out)
    return _finite(out, f"empirical_ntk ({chosen})")


def _place(out, block, s1, e1, s2, e2, mirror: bool):
    block = np.asarray(block, np.float64)[: e1 - s1, : e2 - s2]
    out[s1:e1, s2:e2] = block
    if mirror:
        out[s2:e2, s1:e1] = np.transpose(block, (1, 0, 3, 2) if block.ndim == 4 else (1, 0))


def _jacobian_blocks(apply_fn, outputs, K, p, x1, x2, rows, dtype, extra_shape):
    """Jacobian contraction over row blocks (padded to one shape, so each function compiles once).

    Each block pair is one fused call that computes both blocks' Jacobians and contracts them, so
    at most two blocks' Jacobians are held. Recomputing a block's Jacobian per partner block costs
    ``O(b P)`` against the ``O(b^2 P)`` contraction, and it measured faster than computing each
    Jacobian once in its own call: fused, XLA lays the Jacobian out for the contraction instead of
    transposing ``b x P`` numbers in and out of the default layout. With ``x2 is None`` only blocks
    ``j >= i`` are computed (diagonal blocks from one Jacobian), then mirrored.
    """
    sym = x2 is None
    xs2 = x1 if sym else x2
    n1, n2 = x1.shape[0], xs2.shape[0]
    out = np.empty((n1, n2) + extra_shape, np.float64)
    blocks1 = _blocks(x1, min(rows, n1), dtype)
    blocks2 = blocks1 if sym else _blocks(xs2, min(rows, n2), dtype)
    for i, (s1, e1, xa) in enumerate(blocks1):
        for j, (s2, e2, xb) in enumerate(blocks2):
            if sym and j < i:
                continue
            block = _jacobian_block(apply_fn, outputs, K, p, xa, None if (sym and i == j) else xb)
            _place(out, block, s1, e1, s2, e2, sym and j > i)
    return out


def _ntvp_blocks(apply_fn, outputs, K, p, x1, x2, rows, chunk, dtype, extra_shape):
    """NTK-vector products: per ``x2`` chunk, its gradients once, then ``jvp`` over the ``x1`` blocks."""
    xs2 = x1 if x2 is None else x2
    n1, n2 = x1.shape[0], xs2.shape[0]
    if n1 <= rows and n2 <= chunk:
        return np.asarray(
            _ntvp_block(apply_fn, outputs, K, p, jnp.asarray(x1, dtype), jnp.asarray(xs2, dtype)), np.float64
        )
    out = np.empty((n1, n2) + extra_shape, np.float64)
    blocks1 = _blocks(x1, min(rows, n1), dtype)
    for s2, e2, xb in _blocks(xs2, min(chunk, n2), dtype):
        grads = _per_example_jacobian_jit(apply_fn, p, xb)
        for s1, e1, xa in blocks1:
            _place(out, _ntvp_columns_jit(apply_fn, outputs, K, p, xa, grads), s1, e1, s2, e2, False)
        del grads
    return out


# ============================================================================ Monte Carlo
@dataclass(frozen=True)
class MonteCarloKernels:
    r"""Seed statistics of the empirical NNGP and NTK over ``n_samples`` independent initialisations.

    ``nngp``/``ntk``: the entrywise means :math:`\bar K = \frac1S\sum_s K_s`; ``nngp_std``/``ntk_std``:
    the entrywise sample standard deviations (``ddof=1``; zeros when ``n_samples == 1``), so the
    standard error of a mean entry is ``std / sqrt(n_samples)`` (:meth:`sem`). ``*_samples`` hold
    the stack ``(n_samples, n1, n2[, K, K])`` when asked for (``keep_samples=True``), else ``None``.
    Unpacks as ``nngp, ntk = monte_carlo_kernels(...)``.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    nngp_std: np.ndarray
    ntk_std: np.ndarray
    n_samples: int
    nngp_samples: np.ndarray | None = None
    ntk_samples: np.ndarray | None = None

    def __iter__(self):
        yield self.nngp
        yield self.ntk

    def sem(self, kind: str = "ntk") -> np.ndarray:
        """Entrywise standard error of the mean of ``kind`` (``"ntk"`` or ``"nngp"``)."""
        return self._std(kind) / math.sqrt(self.n_samples)

    def relative_spread(self, kind: str = "ntk") -> float:
        r"""Seed-to-seed spread relative to the mean: :math:`\|\mathrm{std}\|_F / \|\bar K\|_F`.

        For the empirical NTK and NNGP of a width-``n`` network it shrinks like :math:`1/\sqrt{n}`.
        """
        mean = self.ntk if kind == "ntk" else self.nngp
        return float(np.linalg.norm(self._std(kind)) / np.linalg.norm(mean))

    def _std(self, kind: str) -> np.ndarray:
        if kind not in ("ntk", "nngp"):
            raise ValueError(f"kind must be 'ntk' or 'nngp', got {kind!r}")
        return self.ntk_std if kind == "ntk" else self.nngp_std


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _mc_chunk(model, in_dim, dtype_name, outputs, keys, x1, x2):
    dtype = jnp.dtype(dtype_name)

    def one(key):
        params = model.init(key, in_dim, dtype)
        feats1 = _fc_features(model, params, x1)
        feats2 = feats1 if x2 is None else _fc_features(model, params, x2)
        ntk = _fc_ntk_from_features(model, outputs, feats1, feats2)
        nngp = _fc_nngp_from_hidden(model, feats1[0][-1], feats2[0][-1])
        return nngp, ntk

    return jax.vmap(one)(keys)


def _seed_bytes(model: FullyConnected, in_dim: int, n1: int, n2: int, itemsize: int) -> int:
    """Rough bytes one seed needs inside :func:`_mc_chunk`: parameters, features, two kernels."""
    width_total = in_dim + model.depth * model.width * (1 + model.out_dim) + model.out_dim
    feats = (n1 + n2) * width_total
    kernels = 2 * n1 * n2 * model.out_dim**2
    return itemsize * (model.n_params(in_dim) + 2 * feats + kernels)


def monte_carlo_kernels(
    model: FullyConnected,
    key,
    x1,
    x2=None,
    *,
    n_samples: int,
    in_dim: int | None = None,
    batch: int | None = None,
    dtype=np.float32,
    outputs: str = "mean",
    keep_samples: bool = False,
) -> MonteCarloKernels:
    r"""Seed averages of the empirical NNGP and NTK of ``model`` (:func:`fc_empirical_nngp`, :func:`fc_empirical_ntk`).

    Sample ``s`` uses the parameters ``model.init(jax.random.split(key, n_samples)[s], in_dim, dtype)``,
    whatever the chunking, so results do not depend on ``batch``. Seeds are vmapped ``batch`` at a
    time (default: as many as fit ``MEMORY_BUDGET`` by a rough count of parameters, features and
    kernels per seed); means and standard deviations are accumulated in float64 (pairwise update,
    Chan et al.). As the width grows the means tend to the analytic :meth:`FullyConnected.nngp` and
    :meth:`FullyConnected.ntk` and the spread shrinks like :math:`1/\sqrt{\text{width}}`.

    Args:
        model: the network description.
        key: a JAX PRNG key.
        x1, x2: inputs ``(n1, d)``, ``(n2, d)`` (``x2=None``: ``x1``).
        n_samples: number of independent initialisations (>= 1).
        in_dim: input dimension (default ``x1.shape[1]``; must equal it).
        batch: seeds per vmapped chunk.
        dtype: ``float32`` (default) or ``float64`` for the per-seed computation.
        outputs: as in :func:`fc_empirical_ntk` (applies to the NTK).
        keep_samples: also return the per-seed stacks.
    """
    if not isinstance(model, FullyConnected):
        raise ValueError(f"model must be a FullyConnected, got {type(model).__name__}")  # noqa: TRY004 (house rule)
    n_samples = _check_batch_size(n_samples, "n_samples")
    x1 = _as_inputs(x1, "x1")
    x2 = None if x2 is None else _as_inputs(x2, "x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ValueError(f"x2 has {x2.shape[1]} columns but x1 has {x1.shape[1]}")
    if in_dim is None:
        in_dim = x1.shape[1]
    elif in_dim != x1.shape[1]:
        raise ValueError(f"in_dim={in_dim!r} does not match x1's {x1.shape[1]} columns")
    outputs = _check_outputs(outputs)
    dtype = _resolve_dtype(dtype, None)
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    if batch is None:
        batch = max(1, min(n_samples, MEMORY_BUDGET // _seed_bytes(model, in_dim, n1, n2, dtype.itemsize)))
    else:
        batch = min(_check_batch_size(batch, "batch"), n_samples)

    keys = jax.random.split(key, n_samples)
    stats = {"nngp": None, "ntk": None}  # (count, mean, M2)
    stacks: dict[str, list] = {"nngp": [], "ntk": []}
    with _precision(dtype):
        j1 = jnp.asarray(x1, dtype)
        j2 = None if x2 is None else jnp.asarray(x2, dtype)
        for start in range(0, n_samples, batch):
            chunk = keys[start : start + batch]
            if chunk.shape[0] < batch:  # pad to one shape (one compilation); padded seeds dropped
                chunk = jnp.concatenate([chunk, jnp.broadcast_to(chunk[:1], (batch - chunk.shape[0],) + chunk.shape[1:])])
            count = min(batch, n_samples - start)
            nngp, ntk = _mc_chunk(model, int(in_dim), dtype.name, outputs, chunk, j1, j2)
            for name, values in (("nngp", nngp), ("ntk", ntk)):
                values = np.asarray(values, np.float64)[:count]
                if x2 is None:  # per seed, as fc_empirical_ntk / fc_empirical_nngp return it
                    values = 0.5 * (values + np.transpose(values, (0, 2, 1, 4, 3)[: values.ndim]))
                _finite(values, f"monte_carlo_kernels ({name}) of {model.describe()}")
                if keep_samples:
                    stacks[name].append(values)
                stats[name] = _merge(stats[name], values)
    (_, nngp_mean, nngp_m2), (_, ntk_mean, ntk_m2) = stats["nngp"], stats["ntk"]
    ddof = max(n_samples - 1, 1)
    return MonteCarloKernels(
        nngp=nngp_mean,
        ntk=ntk_mean,
        nngp_std=np.sqrt(nngp_m2 / ddof),
        ntk_std=np.sqrt(ntk_m2 / ddof),
        n_samples=n_samples,
        nngp_samples=np.concatenate(stacks["nngp"]) if keep_samples else None,
        ntk_samples=np.concatenate(stacks["ntk"]) if keep_samples else None,
    )


def _merge(state, values: np.ndarray):
    """Combine running ``(count, mean, M2)`` with a chunk of samples (Chan, Golub & LeVeque's update)."""
    n_b = values.shape[0]
    mean_b = values.mean(axis=0)
    m2_b = ((values - mean_b) ** 2).sum(axis=0)
    if state is None:
        return n_b, mean_b, m2_b
    n_a, mean_a, m2_a = state
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta**2 * (n_a * n_b / n)
