"""pytest-ntk: audit neural-tangent-kernel and NNGP claims as pytest tests.

The verdict model is imported eagerly (it is light); the science layer (JAX) and the suite helper
are imported on first use of one of their names, so that ``pytest`` starts fast and the plugin
never needs JAX.
"""

from __future__ import annotations

import importlib

from .verdicts import ClaimError, ClaimFailed, ClaimResult, Measurement, Tolerance, Verdict

__version__ = "0.1.0"

_LAZY = {
    "FullyConnected": ("pytest_ntk.science.nets", "FullyConnected"),
    "empirical_ntk": ("pytest_ntk.science.empirical", "empirical_ntk"),
    "kernels": ("pytest_ntk.science.kernels", None),
    "data": ("pytest_ntk.science.data", None),
    "empirical": ("pytest_ntk.science.empirical", None),
    "train": ("pytest_ntk.science.train", None),
    "predict": ("pytest_ntk.science.predict", None),
    "nets": ("pytest_ntk.science.nets", None),
    "monte_carlo_kernels": ("pytest_ntk.science.empirical", "monte_carlo_kernels"),
    "cache": ("pytest_ntk.science.cache", None),
    "Cache": ("pytest_ntk.science.cache", "Cache"),
    "train_network": ("pytest_ntk.science.train", "train"),
    "train_pair": ("pytest_ntk.science.train", "train_pair"),
    "kernel_regression": ("pytest_ntk.science.predict", "kernel_regression"),
    "gradient_descent_mse": ("pytest_ntk.science.predict", "gradient_descent_mse"),
    "gp_posterior": ("pytest_ntk.science.predict", "gp_posterior"),
    "models": ("pytest_ntk.science.models", None),
    "science": ("pytest_ntk.science", None),
    "Suite": ("pytest_ntk.harness.suite", "Suite"),
}

__all__ = [
    "ClaimError",
    "ClaimFailed",
    "ClaimResult",
    "Measurement",
    "Tolerance",
    "Verdict",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pytest_ntk' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
