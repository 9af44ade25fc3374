"""The one door to neural-tangents, the field's reference library, used as an independent oracle.

Nothing else in pytest-ntk imports ``neural_tangents``; everything else runs without it.

Why this adapter exists: neural-tangents 0.6.5 (its last release, December 2023) imports
``neural_tangents.experimental`` from its top-level ``__init__``, and that package imports
tensorflow and tf2jax for a TF-to-JAX bridge we never use. The project's lock removes
tensorflow (a multi-GB wheel) from the environment, so a plain ``import neural_tangents``
would fail. Before importing it we register an empty stand-in for
``neural_tangents.experimental``; every other module of the library (``stax``,
``empirical``, ``predict``, ``monte_carlo``) imports no tensorflow and works unchanged.
The release also fails to import on jax >= 0.6; :func:`load` then reports it as absent.
"""

from __future__ import annotations

import sys
import types
from functools import lru_cache

from .errors import OracleUnavailable  # re-exported: the error lives with the others

__all__ = ["OracleUnavailable", "available", "load", "reason"]

_STUB = "neural_tangents.experimental"


@lru_cache(maxsize=None)
def _import():
    installed_stub = False
    if _STUB not in sys.modules:
        stub = types.ModuleType(_STUB)
        stub.__doc__ = "Stand-in registered by pytest_ntk.science.oracle: the TF bridge needs tensorflow."
        sys.modules[_STUB] = stub
        installed_stub = True
    try:
        import neural_tangents as nt  # the only import of neural-tangents in the project
    except Exception as exc:  # ImportError, or AttributeError from a too-new jax
        if installed_stub:
            sys.modules.pop(_STUB, None)
        return None, f"neural-tangents unavailable: {type(exc).__name__}: {exc}"
    return nt, ""


def load():
    """Return the ``neural_tangents`` module, or raise :class:`OracleUnavailable` saying why."""
    nt, why = _import()
    if nt is None:
        raise OracleUnavailable(why)
    return nt


def available() -> bool:
    """Whether neural-tangents imports in this environment."""
    return _import()[0] is not None


def reason() -> str:
    """Why neural-tangents is unavailable ('' when it is available)."""
    return _import()[1]


def version() -> str | None:
    """The installed neural-tangents version, or None when it cannot be imported."""
    nt = _import()[0]
    return None if nt is None else getattr(nt, "__version__", "unknown")
