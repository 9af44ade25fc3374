"""What the empirical-kernel paths share: input validation, dtypes, row blocks, constants.

Private to :mod:`pytest_ntk.science.empirical`; no network class is imported here.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import NumericalError
from ..numerics import x64

OUTPUTS = ("mean", "full")
METHODS = ("auto", "jacobian", "ntvp", "structured")

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



def _cast_tree(tree, dtype):
    """Floating leaves to ``dtype`` (as JAX arrays); other leaves unchanged."""

    def cast(leaf):
        arr = jnp.asarray(leaf)
        return arr.astype(dtype) if jnp.issubdtype(arr.dtype, jnp.floating) else arr

    return jax.tree_util.tree_map(cast, tree)

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


def _place(out, block, s1, e1, s2, e2, mirror: bool):
    block = np.asarray(block, np.float64)[: e1 - s1, : e2 - s2]
    out[s1:e1, s2:e2] = block
    if mirror:
        out[s2:e2, s1:e1] = np.transpose(block, (1, 0, 3, 2) if block.ndim == 4 else (1, 0))


