"""float64 where it matters, without touching the user's global JAX configuration."""

from __future__ import annotations

import contextlib

import jax

__all__ = ["x64"]


@contextlib.contextmanager
def x64():
    """Enable JAX's 64-bit mode inside the block only (jax's own scoped config context).

    jax <= 0.6 spells it ``jax.experimental.enable_x64``; newer releases expose the config
    option ``jax.enable_x64`` as a context manager. Both restore the previous state on exit.
    """
    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None and callable(ctx):
        with ctx(True):
            yield
        return
    from jax.experimental import enable_x64  # jax < 0.7

    with enable_x64():
        yield


@contextlib.contextmanager
def single_threaded_blas():
    """Run numpy/scipy's dense linear algebra (BLAS/LAPACK) on one thread inside the block.

    Kernel solves here are small (n ~ 1000: a Cholesky takes milliseconds on one core). Where the
    cores are shared -- xdist workers, other jobs -- a multi-threaded OpenBLAS spin-waits for busy
    threads and the same solve can take 10-100x longer. One thread also fixes the order of
    floating-point reductions, so warm and cold runs agree to the bit. Uses threadpoolctl (the
    scientific Python stack's tool for this) and restores the previous limits on exit.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
