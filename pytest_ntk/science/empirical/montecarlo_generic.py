r"""Seed averages of the empirical NTK and NNGP of any model in the engine's protocol.

:func:`generic_monte_carlo_kernels` is the Monte Carlo path for models other than ``FullyConnected``.

:func:`~pytest_ntk.science.empirical.monte_carlo_kernels` sends the models of
:mod:`pytest_ntk.science.adapters` (Flax, Equinox, stax) here. Per sample ``s`` with parameters
:math:`\theta_s` = ``model.init(keys[s], in_dim, dtype)``:

* NTK: :math:`\Theta_s(x, x') = J_s(x) J_s(x')^\top` by Jacobian contraction (the generic path of
  :func:`~pytest_ntk.science.empirical.empirical_ntk`, all rows in one block), ``outputs`` as there;
* NNGP: the outer product of the outputs, :math:`K_s(x, x') = \frac1K \sum_a f_a(x;\theta_s) f_a(x';\theta_s)`.
  Its mean over draws estimates :math:`\mathbb{E}_\theta[f(x) f(x')]`, which is the NNGP kernel
  when the outputs have mean zero at initialisation (as at infinite width). A generic model has no
  readout to separate, so this is a noisier estimator than the fully-connected path's, which
  averages the readout's feature Gram exactly over the readout weights.

Seeds are vmapped in chunks; means and standard deviations are accumulated in float64 as in
:func:`~pytest_ntk.science.empirical.monte_carlo_kernels`, and sample ``s`` uses
``jax.random.split(key, n_samples)[s]`` whatever the chunking.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._common import (
    MEMORY_BUDGET,
    _check_batch_size,
    _check_outputs,
    _precision,
    _resolve_dtype,
)
from .generic import _contract_leaves, _per_example_jacobian
from .montecarlo import MonteCarloKernels, _seed_statistics

__all__ = ["generic_monte_carlo_kernels"]


def _inputs(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim < 2 or arr.shape[0] < 1:
        raise ValueError(f"{name} must be a batch (n, ...) with at least one row, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite real array, got dtype {arr.dtype}")
    return arr


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _chunk(model, in_dim, dtype_name, outputs, K, keys, x1, x2):
    dtype = jnp.dtype(dtype_name)

    def one(key):
        params = model.init(key, in_dim, dtype)
        j1 = _per_example_jacobian(model.apply, params, x1)
        j2 = j1 if x2 is None else _per_example_jacobian(model.apply, params, x2)
        ntk = _contract_leaves(j1, j2, outputs, K)
        f1 = jnp.reshape(model.apply(params, x1), (x1.shape[0], K))
        f2 = f1 if x2 is None else jnp.reshape(model.apply(params, x2), (x2.shape[0], K))
        return f1 @ f2.T / K, ntk

    return jax.vmap(one)(keys)


def generic_monte_carlo_kernels(
    model,
    key,
    x1,
    x2=None,
    *,
    n_samples: int,
    in_dim=None,
    batch: int | None = None,
    dtype=np.float32,
    outputs: str = "mean",
    keep_samples: bool = False,
) -> MonteCarloKernels:
    """Seed means and spreads of the empirical NTK and of the output NNGP of ``model`` (module doc).

    ``model`` has ``init(key, in_dim, dtype)`` and ``apply(params, x)`` and draws new weights for
    each key (an adapter of an nnx or Equinox instance needs ``make=``). ``x1``, ``x2``: batches
    ``(n, ...)``; ``in_dim`` defaults to ``x1.shape[1]`` for 2-D inputs and to the row shape
    ``x1.shape[1:]`` otherwise. Other arguments as :func:`~pytest_ntk.science.empirical.monte_carlo_kernels`;
    ``batch`` defaults to as many seeds as fit ``MEMORY_BUDGET`` with both Jacobians held.
    """
    if not getattr(model, "fresh_draws", True):
        raise ValueError(
            f"monte_carlo_kernels needs a new draw of the weights per sample, but {model!r} holds one set of "
            "weights and no way to draw another: build the adapter with make=(key -> model)"
        )
    n_samples = _check_batch_size(n_samples, "n_samples")
    x1 = _inputs(x1, "x1")
    x2 = None if x2 is None else _inputs(x2, "x2")
    if x2 is not None and x2.shape[1:] != x1.shape[1:]:
        raise ValueError(f"x2 must have the row shape of x1 {x1.shape[1:]}, got shape {x2.shape}")
    row = tuple(x1.shape[1:])
    if in_dim is not None:
        given = (in_dim,) if isinstance(in_dim, (int, np.integer)) else tuple(np.atleast_1d(in_dim).tolist())
        if given != row:
            raise ValueError(f"in_dim={in_dim!r} does not match x1's rows of shape {row}")
    in_dim = row[0] if len(row) == 1 else row  # an int for vectors, as FullyConnected takes it
    outputs = _check_outputs(outputs)
    dtype = _resolve_dtype(dtype, None)
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]

    keys = jax.random.split(key, n_samples)
    with _precision(dtype):
        j1 = jnp.asarray(x1, dtype)
        j2 = None if x2 is None else jnp.asarray(x2, dtype)
        params = jax.eval_shape(lambda k: model.init(k, in_dim, dtype), keys[0])
        out_shape = jax.eval_shape(model.apply, params, jax.ShapeDtypeStruct((1,) + row, dtype)).shape
        if len(out_shape) not in (1, 2):
            raise ValueError(f"model.apply must return shape (n,) or (n, K), got {out_shape} for one row")
        K = 1 if len(out_shape) == 1 else int(out_shape[1])
        n_params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))
        per_seed = dtype.itemsize * (n_params * (1 + K * (n1 + n2)) + 2 * n1 * n2 * K * K)
        if batch is None:
            batch = max(1, min(n_samples, MEMORY_BUDGET // max(1, per_seed)))
        else:
            batch = min(_check_batch_size(batch, "batch"), n_samples)
        return _seed_statistics(
            lambda chunk: _chunk(model, in_dim, dtype.name, outputs, K, chunk, j1, j2),
            keys, batch, symmetric=x2 is None, what=repr(model), keep_samples=keep_samples,
        )
