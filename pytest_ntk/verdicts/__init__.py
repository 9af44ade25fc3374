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
from .recorder import SEED_RANGE, ClaimRecorder, derive_seed
from .stats import fit_slope, mean_ci

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
