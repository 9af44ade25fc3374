"""Small, exact statistics for verdicts: Student-t intervals for a mean and for a fitted slope."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["MeanCI", "SlopeFit", "mean_ci", "fit_slope"]


@dataclass(frozen=True)
class MeanCI:
    """Sample mean with its two-sided Student-t confidence interval.

    ``lo, hi = mean -/+ t_{(1+c)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation
    (ddof = 1). With one sample the interval is infinite: one seed decides nothing.
    """

    mean: float
    lo: float
    hi: float
    sem: float
    n: int
    confidence: float


def mean_ci(values, confidence: float) -> MeanCI:
    v = np.asarray(values, dtype=float).ravel()
    n = v.size
    mean = float(v.mean())
    if n < 2:
        return MeanCI(mean, -math.inf, math.inf, math.inf, n, confidence)
    sem = float(v.std(ddof=1) / math.sqrt(n))
    half = float(_st.t.ppf(0.5 + confidence / 2.0, n - 1)) * sem
    return MeanCI(mean, mean - half, mean + half, sem, n, confidence)


@dataclass(frozen=True)
class SlopeFit:
    """Ordinary least squares ``y = intercept + slope * x`` with a Student-t interval for the slope.

    ``stderr = sqrt(RSS / (n - 2) / sum((x - xbar)^2))`` and ``ci = slope -/+ t_{(1+c)/2, n-2} * stderr``.
    With ``log=True`` both axes are natural logs of the data (a power law ``y ~ x^slope``).
    """

    slope: float
    intercept: float
    lo: float
    hi: float
    stderr: float
    n: int
    confidence: float
    log: bool
    r2: float


def fit_slope(x, y, *, log: bool, confidence: float) -> SlopeFit:
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if log:
        x, y = np.log(x), np.log(y)
    n = x.size
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum() / sxx)
    intercept = float(ym - slope * xm)
    resid = y - (intercept + slope * x)
    rss = float((resid**2).sum())
    tss = float(((y - ym) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else 1.0
    if n < 3:
        return SlopeFit(slope, intercept, -math.inf, math.inf, math.inf, n, confidence, log, r2)
    stderr = math.sqrt(rss / (n - 2) / sxx)
    half = float(_st.t.ppf(0.5 + confidence / 2.0, n - 2)) * stderr
    return SlopeFit(slope, intercept, slope - half, slope + half, stderr, n, confidence, log, r2)
