"""The verdict model (pure Python + numpy/scipy; never imports jax or pytest)."""

from .model import ClaimError, ClaimFailed, ClaimResult, Measurement, Tolerance, Verdict, combine
from .recorder import ClaimRecorder, derive_seed
from .stats import fit_slope, mean_ci

__all__ = [
    "ClaimError",
    "ClaimFailed",
    "ClaimRecorder",
    "ClaimResult",
    "Measurement",
    "Tolerance",
    "Verdict",
    "combine",
    "derive_seed",
    "fit_slope",
    "mean_ci",
]
