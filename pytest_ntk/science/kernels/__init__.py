"""Infinite-width kernels, in float64 numpy.

- :mod:`pytest_ntk.science.kernels.analytic`: the NNGP kernel and the NTK of a
  :class:`pytest_ntk.science.nets.FullyConnected` network (closed-form recursions; tanh by quadrature).
- :mod:`pytest_ntk.science.kernels.conv`: the CNN-GP kernel and CNTK of a
  :class:`pytest_ntk.science.conv.ConvNet` (full spatial covariance, in blocks of input pairs).
- :mod:`pytest_ntk.science.kernels.liu2025`: the nine kernels of Liu, Tai, Crandall and Huang (2025),
  as their published code computes them and with the angle normalisation corrected.

This package imports nothing at import time; ``import pytest_ntk.science.kernels.analytic`` (or
``from pytest_ntk.science.kernels import liu2025``) loads a submodule, and so does plain attribute
access (``pytest_ntk.science.kernels.liu2025`` after ``import pytest_ntk.science.kernels``).
"""

from __future__ import annotations

import importlib

__all__ = ["analytic", "conv", "liu2025"]

_SUBMODULES = frozenset(__all__)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
