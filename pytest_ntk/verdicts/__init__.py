"""The verdict model (pure Python + numpy; never imports jax, scipy or pytest).

- :mod:`.model`: :class:`Verdict`, :class:`Tolerance`, :class:`Measurement`, :class:`Rival`,
  :class:`ClaimResult` and the verdict rules every report follows (:func:`combine`,
  :func:`decisive`, :func:`breaks_run`);
- :mod:`.inputs`: what a claim may pass (exact float64 or refused by name);
- :mod:`.judge`: how each kind of measurement, and each rival, is judged;
- :mod:`.stats`: Student-t intervals for a mean and a fitted slope;
- :mod:`.recorder`: the ``claim`` fixture's object and the claim's lifecycle.
"""

from .model import (
    ORDER,
    SEED_RANGE,
    SEVERITY,
    ClaimError,
    ClaimFailed,
    ClaimResult,
    Measurement,
    Rival,
    Tolerance,
    Verdict,
    breaks_run,
    combine,
    decisive,
    severity,
)

import importlib

# The recorder and the statistics need numpy: they load on first use, so that importing the plugin
# (which every pytest run of a project with pytest-ntk installed does) stays cheap.
_LAZY = {"ClaimRecorder": "recorder", "derive_seed": "recorder",
         "fit_slope": "stats", "mean_ci": "stats"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ORDER",
    "SEED_RANGE",
    "SEVERITY",
    "ClaimError",
    "ClaimFailed",
    "ClaimRecorder",
    "ClaimResult",
    "Measurement",
    "Rival",
    "Tolerance",
    "Verdict",
    "breaks_run",
    "combine",
    "decisive",
    "derive_seed",
    "fit_slope",
    "mean_ci",
    "severity",
]
