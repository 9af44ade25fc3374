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
