"""Small, exact statistics for verdicts: Student-t intervals for a mean and for a fitted slope."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["MeanCI", "SlopeFit", "mean_ci", "fit_slope", "mean_of"]


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


def _pow2_below(a: np.ndarray) -> float:
    """``2**(e-1)`` with ``max|a| < 2**e``: dividing by it is exact and brings ``a`` into (-2, 2).

    0.0 when ``a`` is all zeros, ``nan`` when it holds a non-finite number.
    """
    m = float(np.max(np.abs(a))) if a.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m if m == 0.0 else math.nan
    return math.ldexp(1.0, math.frexp(m)[1] - 1)


def _scaled(a: np.ndarray) -> tuple[np.ndarray, float]:
    """``(a / s, s)`` with ``s`` a power of two (exact scaling), ``|a / s| < 2``; ``s = 1`` for zeros."""
    s = _pow2_below(a)
    if s == 0.0 or not math.isfinite(s):
        return (a if s == 0.0 else a * math.nan), (1.0 if s == 0.0 else s)
    return a / s, s


def mean_of(values) -> float:
    """The mean of finite ``values``, summed after exact power-of-two scaling so it never overflows."""
    w, s = _scaled(np.asarray(values, dtype=float).ravel())
    with np.errstate(all="ignore"):
        return float(w.mean()) * s


def mean_ci(values, confidence: float) -> MeanCI:
    v = np.asarray(values, dtype=float).ravel()
    n = v.size
    with np.errstate(all="ignore"):  # sums of huge values are taken on data scaled by a power of two
        w, s = _scaled(v)
        mean = float(w.mean()) * s
        if n < 2:
            return MeanCI(mean, -math.inf, math.inf, math.inf, n, confidence)
        sem = float(w.std(ddof=1) / math.sqrt(n)) * s
        half = float(_st.t.ppf(0.5 + confidence / 2.0, n - 1)) * sem
    return MeanCI(mean, mean - half, mean + half, sem, n, confidence)


@dataclass(frozen=True)
class SlopeFit:
    """Ordinary least squares ``y = intercept + slope * x`` with a Student-t interval for the slope.

    ``stderr = sqrt(RSS / (n - 2) / sum((x - xbar)^2))`` and ``ci = slope -/+ t_{(1+c)/2, n-2} * stderr``.
    With ``log=True`` both axes are natural logs of the data (a power law ``y ~ x^slope``).
    The sums are taken on centred data scaled by powers of two (exact), so huge or tiny x and y
    neither overflow nor underflow; a fit that float64 cannot represent (x values that coincide
    after centring, a slope beyond float64's range) has NaN fields.
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
    n = x.size
    nan = math.nan
    with np.errstate(all="ignore"):
        if log:
            x, y = np.log(x), np.log(y)
        (xs, sx0), (ys, sy0) = _scaled(x), _scaled(y)
        xm, ym = float(xs.mean()) * sx0, float(ys.mean()) * sy0
        u, sx = _scaled(x - xm)  # centred x = sx * u, |u| < 2
        v, sy = _scaled(y - ym)
        suu = float((u * u).sum())
        if not (math.isfinite(sx) and math.isfinite(sy) and math.isfinite(suu) and suu > 0.0):
            return SlopeFit(nan, nan, nan, nan, nan, n, confidence, log, nan)
        b = float((u * v).sum()) / suu  # the slope in scaled units
        ratio = sy / sx  # a power of two: exact unless beyond float64's range
        slope = b * ratio
        if not math.isfinite(slope) or (b != 0.0 and abs(slope) < np.finfo(float).tiny):
            return SlopeFit(nan, nan, nan, nan, nan, n, confidence, log, nan)
        intercept = ym - slope * xm
        resid = v - b * u
        rss, tss = float((resid * resid).sum()), float((v * v).sum())
        r2 = 1.0 - rss / tss if tss > 0 else 1.0
        if n < 3:
            return SlopeFit(slope, intercept, -math.inf, math.inf, math.inf, n, confidence, log, r2)
        stderr = math.sqrt(rss / (n - 2) / suu) * ratio
        half = float(_st.t.ppf(0.5 + confidence / 2.0, n - 2)) * stderr
    return SlopeFit(slope, intercept, slope - half, slope + half, stderr, n, confidence, log, r2)
