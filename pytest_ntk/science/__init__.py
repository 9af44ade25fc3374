"""The science layer: networks, kernels, training, predictions, data and the cache. No pytest here.

- :mod:`.nets`: :class:`~.nets.FullyConnected`, one description for the finite network and its
  infinite-width NNGP and NTK; :mod:`.conv`: :class:`~.conv.ConvNet`, the same for convolutional
  networks (CNN-GP and CNTK);
- :mod:`.kernels`: closed-form float64 kernels (:mod:`.kernels.analytic`) and the kernels of
  Liu et al. 2025 (:mod:`.kernels.liu2025`);
- :mod:`.empirical`: finite-width kernels (the structured fully-connected path, the generic path for
  any JAX model, Monte Carlo seed averages);
- :mod:`.train`: vmapped ensemble training (GD, SGD, momentum) with its linearisation alongside, and
  :mod:`.sgd_fast`, the fused SGD program for fully-connected ensembles (opt-in, ``method="auto"``);
- :mod:`.predict`: kernel regression, the gradient-descent MSE prediction at any time, GP posteriors;
- :mod:`.models`: wrappers of a network (centred, output-scaled) and small norms;
- :mod:`.data`: the data sets of the claims; :mod:`.cache`: the content-addressed cache;
- :mod:`.numerics`, :mod:`.errors`, :mod:`.oracle` (the only door to neural-tangents).

A notebook can use all of it without pytest. Submodules load on first access, so
``import pytest_ntk.science`` does not import JAX.
"""

from __future__ import annotations

import importlib

__all__ = ["activations", "adapters", "cache", "conv", "data", "empirical", "errors", "kernels", "models", "nets", "numerics",
           "oracle", "predict", "sgd_fast", "train"]

_SUBMODULES = frozenset(__all__)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
