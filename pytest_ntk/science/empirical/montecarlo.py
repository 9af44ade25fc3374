r"""Seed averages of the empirical NNGP and NTK of a fully-connected network (:func:`monte_carlo_kernels`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import Adapter, as_model
from ._common import MEMORY_BUDGET, _as_inputs, _check_batch_size, _check_outputs, _finite, _precision, _resolve_dtype
from .fc import _fc_features, _fc_nngp_from_hidden, _fc_ntk_from_features, check_fc_model

__all__ = ["MonteCarloKernels", "monte_carlo_kernels"]


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


def _seed_bytes(model, in_dim: int, n1: int, n2: int, itemsize: int) -> int:
    """Rough bytes one seed needs inside :func:`_mc_chunk`: parameters, features, two kernels."""
    width_total = in_dim + model.depth * model.width * (1 + model.out_dim) + model.out_dim
    feats = (n1 + n2) * width_total
    kernels = 2 * n1 * n2 * model.out_dim**2
    return itemsize * (model.n_params(in_dim) + 2 * feats + kernels)


def monte_carlo_kernels(
    model,
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

    A Flax (nnx, linen), Equinox or stax model (or an :class:`~pytest_ntk.science.adapters.Adapter`
    that draws fresh weights) takes the generic path, :func:`~.montecarlo_generic.generic_monte_carlo_kernels`.
    """
    model = as_model(model, strict=False)
    if isinstance(model, Adapter):
        # montecarlo_generic imports this module, so it is imported here, not at the top
        from .montecarlo_generic import generic_monte_carlo_kernels

        return generic_monte_carlo_kernels(model, key, x1, x2, n_samples=n_samples, in_dim=in_dim, batch=batch,
                                           dtype=dtype, outputs=outputs, keep_samples=keep_samples)
    check_fc_model(model)
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
    with _precision(dtype):
        j1 = jnp.asarray(x1, dtype)
        j2 = None if x2 is None else jnp.asarray(x2, dtype)
        return _seed_statistics(
            lambda chunk: _mc_chunk(model, int(in_dim), dtype.name, outputs, chunk, j1, j2),
            keys, batch, symmetric=x2 is None, what=model.describe(), keep_samples=keep_samples,
        )


def _seed_statistics(chunk_fn, keys, batch: int, *, symmetric: bool, what: str, keep_samples: bool) -> MonteCarloKernels:
    """The :class:`MonteCarloKernels` of the per-seed kernels ``chunk_fn`` returns, ``batch`` seeds at a time.

    ``chunk_fn(chunk)`` maps ``batch`` keys to the stacks ``(nngp, ntk)``, each ``(batch, n1, n2[, K, K])``;
    the last chunk is padded to ``batch`` keys (one shape, one compilation) and its padded seeds
    dropped. Each seed's kernels are taken in float64, symmetrised when ``symmetric`` (``x2=None``,
    as the single-seed kernels return them), checked finite (``what`` names the model in the error)
    and merged into running means and ``M2`` (:func:`_merge`); the standard deviations use ``ddof=1``.
    Shared by the fully-connected and the generic (:mod:`.montecarlo_generic`) paths.
    """
    n_samples = keys.shape[0]
    stats = {"nngp": None, "ntk": None}  # (count, mean, M2)
    stacks: dict[str, list] = {"nngp": [], "ntk": []}
    for start in range(0, n_samples, batch):
        chunk = keys[start : start + batch]
        if chunk.shape[0] < batch:  # pad to one shape (one compilation); padded seeds dropped
            chunk = jnp.concatenate([chunk, jnp.broadcast_to(chunk[:1], (batch - chunk.shape[0],) + chunk.shape[1:])])
        count = min(batch, n_samples - start)
        for name, values in zip(("nngp", "ntk"), chunk_fn(chunk)):
            values = np.asarray(values, np.float64)[:count]
            if symmetric:
                values = 0.5 * (values + np.transpose(values, (0, 2, 1, 4, 3)[: values.ndim]))
            _finite(values, f"monte_carlo_kernels ({name}) of {what}")
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