r"""The generic empirical NTK of any JAX model: Jacobian contraction or NTK-vector products, in blocks.

``Theta(x1, x2) = J(x1) J(x2)^T`` summed over every parameter leaf (see :func:`empirical_ntk`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import as_apply
from ._common import (
    GENERIC_BATCH_SIZE,
    MEMORY_BUDGET,
    METHODS,
    MIN_JACOBIAN_ROWS,
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
from .structured import structured_ntk

__all__ = ["empirical_ntk"]


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
    * ``"structured"``: :func:`~pytest_ntk.science.empirical.structured_ntk` -- Gram products of layer
      inputs and back-propagated signals for the products found in the traced program, the exact
      Jacobian for the rest (``batch_size`` is its most rows per block).

    ``dtype``, ``outputs`` and the float64 result as in :func:`fc_empirical_ntk`.

    A Flax (nnx, linen), Equinox or stax model (or an :class:`~pytest_ntk.science.adapters.Adapter`)
    may stand in ``apply_fn``'s place; ``params=None`` then means its own weights
    (:func:`~pytest_ntk.science.adapters.as_apply`).
    """
    apply_fn, params = as_apply(apply_fn, params)
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable, got {apply_fn!r}")  # noqa: TRY004 (house rule)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "structured":
        return structured_ntk(
            apply_fn, params, x1, x2, dtype=dtype, batch_size=batch_size, outputs=outputs, memory_budget=memory_budget
        )
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

