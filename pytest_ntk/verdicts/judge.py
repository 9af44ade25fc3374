r"""How a measurement is judged: pure functions from validated float64 arrays to a :class:`Measurement`.

Four kinds, each with the same rule for the prediction and for every rival prediction:

- ``close``: HOLDS when :math:`|m - p| \le a + r|p|` (every element, for arrays), else FAILS;
- ``at_most`` / ``at_least``: HOLDS when :math:`m \le b` / :math:`m \ge b` (every element);
- ``samples``: the Student-t confidence interval of the mean of :math:`v_s - p_s` over seeds
  :math:`s`; HOLDS when the whole interval of the gap lies within the tolerance
  :math:`a + r\,\overline{|p|}`, FAILS when it lies wholly outside, else INCONCLUSIVE;
- ``slope``: the least-squares slope's confidence interval against the allowed band
  ``[expected - tol, expected + tol]`` (or the bounds ``lower``/``upper``); same three outcomes.

**Rivals.** A rival is what a competing or deliberately wrong theory predicts for the same
quantity. It is judged exactly as the prediction is (same tolerance rule, same interval); its
verdict FAILS means the measurement rejects it. For a one-sided claim (bounds only), a rival on
the claim's allowed side is refused by the recorder: it is a special case of the claim, not a
competitor. The measurement's verdict is then

- FAILS when the prediction FAILS (whatever the rivals do);
- HOLDS only when the prediction HOLDS **and** every rival FAILS;
- INCONCLUSIVE otherwise, naming the rival the measurement cannot tell apart from the prediction.

For a slope judged against bounds only (no ``tol``), a rival exponent is a point: it is rejected
when the slope's interval excludes it.
"""

from __future__ import annotations

import math

import numpy as np

from .model import Measurement, Rival, Verdict
from .stats import fit_slope, mean_ci, mean_of

__all__ = ["close", "bound", "samples", "slope", "interval", "interval_verdict", "abs_interval", "fmt"]


def fmt(x) -> str:
    if x is None:
        return "None"
    return f"{x:.4g}" if isinstance(x, float) else repr(x)


def abs_interval(lo: float, hi: float) -> tuple[float, float]:
    """The range of ``|d|`` for ``d`` in ``[lo, hi]``."""
    if lo <= 0.0 <= hi:
        return 0.0, max(-lo, hi)
    return min(abs(lo), abs(hi)), max(abs(lo), abs(hi))


def interval_verdict(lo: float, hi: float, ok_lo: float, ok_hi: float) -> Verdict:
    """HOLDS if [lo, hi] lies inside [ok_lo, ok_hi]; FAILS if it lies wholly outside; else INCONCLUSIVE.

    An unbounded interval (one sample, two points) never HOLDS, even inside a tolerance that
    overflowed float64 to inf.
    """
    if ok_lo <= lo and hi <= ok_hi and math.isfinite(lo) and math.isfinite(hi):
        return Verdict.HOLDS
    if hi < ok_lo or lo > ok_hi:
        return Verdict.FAILS
    return Verdict.INCONCLUSIVE


def _with_rivals(verdict: Verdict, message: str, rivals: list[Rival]) -> tuple[Verdict, str]:
    """The measurement's verdict from the prediction's and the rivals' (see the module docstring)."""
    if verdict is not Verdict.HOLDS:
        if rivals:  # the rivals' outcomes are part of the finding even when the prediction decides nothing
            out = [r.name for r in rivals if r.ruled_out]
            kept = [r.name for r in rivals if not r.ruled_out]
            message += ("; rivals " + (f"ruled out: {', '.join(map(repr, out))}" if out else "")
                        + ("; " if out and kept else "") + (f"not ruled out: {', '.join(map(repr, kept))}" if kept else ""))
        return verdict, message
    standing = [r for r in rivals if not r.ruled_out]
    if not standing:
        if rivals:
            message += f"; rival{'s' if len(rivals) > 1 else ''} ruled out: " + ", ".join(repr(r.name) for r in rivals)
        return verdict, message
    names = ", ".join(repr(r.name) for r in standing)
    why = "; ".join(r.message for r in standing)
    return Verdict.INCONCLUSIVE, (f"{message}; but cannot distinguish the prediction from rival {names} ({why})")


def _worst(values: np.ndarray) -> int:
    return int(np.argmin(values)) if values.ndim else 0


# ---------------------------------------------------------------------------- close
def _close_core(m: np.ndarray, p: np.ndarray, rtol: float, atol: float):
    """(verdict, index, gap, tol, margin) of ``|m - p| <= atol + rtol |p|``; None when the gap overflows."""
    p = np.broadcast_to(p.reshape(()) if p.size == 1 else p, m.shape)
    gaps = np.abs(m - p)
    if not np.all(np.isfinite(gaps)):
        return None, int(np.argmin(np.isfinite(gaps).ravel())), None, None, None
    tols = atol + rtol * np.abs(p)  # may overflow to inf: then every finite gap is within it
    margins = tols - gaps
    i = _worst(margins.ravel())
    gap, tol, margin = float(gaps.ravel()[i]), float(tols.ravel()[i]), float(margins.ravel()[i])
    return (Verdict.HOLDS if margin >= 0 else Verdict.FAILS), i, gap, tol, margin


def close(name: str, m: np.ndarray, p: np.ndarray, rtol: float, atol: float,
          rivals: dict[str, np.ndarray], *, default_tolerance: bool = False) -> Measurement:
    """A ``close`` measurement (inputs finite, ``p`` of ``m``'s shape or of size 1)."""
    verdict, i, gap, tol, margin = _close_core(m, p, rtol, atol)
    pb = np.broadcast_to(p.reshape(()) if p.size == 1 else p, m.shape)
    if verdict is None:
        return error(name, "close", f"the gap |measured - predicted| overflows float64 (measured "
                     f"{float(m.ravel()[i])!r} vs predicted {float(pb.ravel()[i])!r}); rescale the quantities")
    mi, pi = float(m.ravel()[i]), float(pb.ravel()[i])
    where = (f" (worst of {m.size} elements, index {tuple(int(k) for k in np.unravel_index(i, m.shape))})"
             if m.size > 1 else "")
    msg = (f"{name}: measured {fmt(mi)} vs predicted {fmt(pi)}: gap {fmt(gap)} "
           f"{'<=' if verdict is Verdict.HOLDS else '>'} tolerance {fmt(tol)} "
           f"(atol {fmt(atol)} + rtol {fmt(rtol)}*|predicted|){where}")
    judged = []
    for rname, rp in rivals.items():
        rv, ri, rgap, rtol_, rmargin = _close_core(m, rp, rtol, atol)
        if rv is None:
            return error(name, "close", f"rival {rname!r}: the gap |measured - rival| overflows float64")
        rpb = np.broadcast_to(rp.reshape(()) if rp.size == 1 else rp, m.shape)
        judged.append(Rival(rname, float(rpb.ravel()[ri]), rv, rgap, rtol_, rmargin,
                            message=f"rival {rname!r} predicts {fmt(float(rpb.ravel()[ri]))}: gap {fmt(rgap)} "
                                    f"{'<=' if rv is Verdict.HOLDS else '>'} tolerance {fmt(rtol_)}"))
    verdict, msg = _with_rivals(verdict, msg, judged)
    detail = {}
    if m.size > 1:
        gaps = np.abs(m - pb)
        detail = {"elements": int(m.size), "max_gap": float(gaps.max()), "mean_gap": float(gaps.mean())}
    return Measurement(name=name, kind="close", verdict=verdict, measured=mi, predicted=pi, gap=gap,
                       tolerance=tol, margin=margin, rtol=rtol, atol=atol, n=int(m.size), message=msg,
                       detail=detail, rivals=tuple(judged), default_tolerance=default_tolerance)


# ---------------------------------------------------------------------------- bounds
def bound(kind: str, name: str, m: np.ndarray, b: np.ndarray) -> Measurement:
    """An ``at_most`` / ``at_least`` measurement (inputs finite, ``b`` of ``m``'s shape or size 1)."""
    b = np.broadcast_to(b.reshape(()) if b.size == 1 else b, m.shape)
    margins = (b - m) if kind == "at_most" else (m - b)
    i = _worst(margins.ravel())
    mi, bi, margin = float(m.ravel()[i]), float(b.ravel()[i]), float(margins.ravel()[i])
    # the comparison itself decides (a margin that overflows to -inf between 1e308 and -1e308 still FAILS)
    verdict = Verdict.HOLDS if (mi <= bi if kind == "at_most" else mi >= bi) else Verdict.FAILS
    op = "<=" if kind == "at_most" else ">="
    msg = f"{name}: measured {fmt(mi)} {op} bound {fmt(bi)} {'holds' if verdict is Verdict.HOLDS else 'is violated'}"
    if m.size > 1:
        msg += f" (worst of {m.size} elements)"
    return Measurement(name=name, kind=kind, verdict=verdict, measured=mi, predicted=bi, gap=max(-margin, 0.0),
                       tolerance=0.0, margin=margin, n=int(m.size), message=msg)


# ---------------------------------------------------------------------------- samples
def _samples_core(v: np.ndarray, p: np.ndarray, rtol: float, atol: float, conf: float):
    """(ci, pred, tol, gap_lo, gap_hi, verdict) for per-seed values ``v`` against ``p``; None on overflow."""
    diffs = v - p if p.size > 1 else v - p[0]
    ci = mean_ci(diffs, conf)
    if not np.all(np.isfinite(diffs)) or not math.isfinite(ci.mean) or (
            ci.n >= 2 and not (math.isfinite(ci.lo) and math.isfinite(ci.hi))):
        return None
    pred = mean_of(p)  # the means of huge predictions must not overflow: an inf tolerance would HOLDS anything
    tol = atol + rtol * mean_of(np.abs(p))
    gap_lo, gap_hi = abs_interval(ci.lo, ci.hi)
    return ci, pred, tol, gap_lo, gap_hi, interval_verdict(ci.lo, ci.hi, -tol, tol), diffs


def samples(name: str, v: np.ndarray, p: np.ndarray, rtol: float, atol: float, conf: float,
            rivals: dict[str, np.ndarray], *, default_tolerance: bool = False,
            detail: dict | None = None) -> Measurement:
    """A ``samples`` measurement: ``v`` one value per seed (1-D), ``p`` size 1 or ``v``'s size."""
    core = _samples_core(v, p, rtol, atol, conf)
    if core is None:
        return error(name, "samples", "the mean or spread of values - predicted overflows float64; rescale the "
                     "quantities")
    ci, pred, tol, gap_lo, gap_hi, verdict, diffs = core
    mean = pred + ci.mean
    msg = (f"{name}: mean {fmt(mean)} over {ci.n} samples vs predicted {fmt(pred)}: gap "
           f"{fmt(abs(ci.mean))}, {conf:.0%} CI of the gap [{fmt(gap_lo)}, {fmt(gap_hi)}] vs "
           f"tolerance {fmt(tol)}: {verdict.value}")
    if verdict is Verdict.INCONCLUSIVE:
        msg += " (the interval straddles the tolerance: more samples needed)"
    judged = []
    for rname, rp in rivals.items():
        rc = _samples_core(v, rp, rtol, atol, conf)
        if rc is None:
            return error(name, "samples", f"rival {rname!r}: the mean of values - rival overflows float64")
        rci, rpred, rtol_, rlo, rhi, rv, _ = rc
        judged.append(Rival(rname, rpred, rv, abs(rci.mean), rtol_, rtol_ - abs(rci.mean), (rlo, rhi),
                            message=f"rival {rname!r} predicts {fmt(rpred)}: CI of its gap [{fmt(rlo)}, {fmt(rhi)}] "
                                    f"vs tolerance {fmt(rtol_)}: {rv.value}"))
    verdict, msg = _with_rivals(verdict, msg, judged)
    warnings = []
    if ci.n >= 2 and float(np.ptp(diffs)) == 0.0:
        warnings.append(f"zero variance across {ci.n} seeds (every value - predicted equals {fmt(float(diffs[0]))}): "
                        f"are the seeds used?")
    d = {"sem": ci.sem, "std": float(np.std(diffs, ddof=1)) if ci.n > 1 else None}
    d.update(detail or {})
    return Measurement(name=name, kind="samples", verdict=verdict, measured=mean, predicted=pred, gap=abs(ci.mean),
                       tolerance=tol, margin=tol - abs(ci.mean), rtol=rtol, atol=atol,
                       ci=(pred + ci.lo, pred + ci.hi), gap_ci=(gap_lo, gap_hi), confidence=conf, n=ci.n,
                       message=msg, detail=d, rivals=tuple(judged), warnings=tuple(warnings),
                       default_tolerance=default_tolerance)


# ---------------------------------------------------------------------------- slope
def slope(name: str, x: np.ndarray, y: np.ndarray, *, expected: float | None, tol: float | None,
          upper: float | None, lower: float | None, log: bool, conf: float, rivals: dict[str, float],
          variables: tuple[str, str] = ("x", "y")) -> Measurement:
    """A ``slope`` measurement (x, y finite, same shape, at least two distinct x; positive for ``log``)."""
    xa, ya = x.ravel(), y.ravel()
    fit = fit_slope(xa, ya, log=log, confidence=conf)
    if not math.isfinite(fit.slope) or (fit.n >= 3 and not (math.isfinite(fit.lo) and math.isfinite(fit.hi))):
        return error(name, "slope", f"the least-squares fit is not finite in float64 (slope {fit.slope!r}, "
                     f"interval [{fit.lo!r}, {fit.hi!r}]): the x values are too close together or the data "
                     f"too large; rescale x and y")
    lo_ok, hi_ok = -math.inf, math.inf
    if expected is not None:
        lo_ok, hi_ok = expected - tol, expected + tol
    if upper is not None:
        hi_ok = min(hi_ok, upper)
    if lower is not None:
        lo_ok = max(lo_ok, lower)
    verdict = interval_verdict(fit.lo, fit.hi, lo_ok, hi_ok)
    margin = min(fit.slope - lo_ok, hi_ok - fit.slope)
    if expected is not None:
        gap = abs(fit.slope - expected)
        gap_ci = abs_interval(fit.lo - expected, fit.hi - expected)
        predicted = expected
    else:
        predicted = upper if upper is not None else lower
        gap = max(-margin, 0.0)
        gap_ci = None
    allowed = f"[{fmt(lo_ok)}, {fmt(hi_ok)}]"
    msg = (f"{name}: fitted {'log-log ' if log else ''}slope {fmt(fit.slope)}, {conf:.0%} CI "
           f"[{fmt(fit.lo)}, {fmt(fit.hi)}] from {fit.n} points, allowed {allowed}: {verdict.value}")
    judged = []
    half = tol if tol is not None else 0.0
    for rname, r in rivals.items():
        rv = interval_verdict(fit.lo, fit.hi, r - half, r + half)
        rlo, rhi = abs_interval(fit.lo - r, fit.hi - r)
        band = f"[{fmt(r - half)}, {fmt(r + half)}]" if half else f"the point {fmt(r)}"
        judged.append(Rival(rname, r, rv, abs(fit.slope - r), half, half - abs(fit.slope - r), (rlo, rhi),
                            message=f"rival {rname!r} predicts slope {fmt(r)}: the CI "
                                    f"{'excludes' if rv is Verdict.FAILS else 'meets'} {band}"))
    verdict, msg = _with_rivals(verdict, msg, judged)
    warnings = []
    groups: dict[float, list] = {}
    for xv, yv in zip(xa.tolist(), ya.tolist()):
        groups.setdefault(xv, []).append(yv)
    repeated = [g for g in groups.values() if len(g) > 1]
    if repeated and all(len(set(g)) == 1 for g in repeated):
        warnings.append("every repeated x has identical y values (zero variance across seeds at each x): are the "
                        "seeds used?")
    return Measurement(
        name=name, kind="slope", verdict=verdict, measured=fit.slope, predicted=predicted, gap=gap,
        tolerance=(hi_ok - lo_ok) / 2 if math.isfinite(hi_ok - lo_ok) else None, margin=margin,
        ci=(fit.lo, fit.hi), gap_ci=gap_ci, confidence=conf, n=fit.n, message=msg,
        detail={"intercept": fit.intercept, "stderr": fit.stderr, "r2": fit.r2, "log": bool(log),
                "allowed": [lo_ok if math.isfinite(lo_ok) else None, hi_ok if math.isfinite(hi_ok) else None],
                "x": xa.tolist(), "y": ya.tolist(), "x_name": variables[0], "y_name": variables[1]},
        rivals=tuple(judged), warnings=tuple(warnings))


# ---------------------------------------------------------------------------- interval
def interval(name: str, estimate: float, lo: float, hi: float, *, predicted: float | None, rtol: float, atol: float,
             upper: float | None, lower: float | None, conf: float, rivals: dict[str, float], how: str = "",
             default_tolerance: bool = False) -> Measurement:
    """An ``interval`` measurement: an estimate with a confidence interval the claim computed.

    Against ``predicted``: HOLDS when ``[lo, hi]`` lies within ``predicted +- (atol + rtol |predicted|)``,
    FAILS when it lies wholly outside, else INCONCLUSIVE (rivals: the same band around each). Against
    bounds: HOLDS when ``[lo, hi]`` lies within them, FAILS when wholly beyond one, else INCONCLUSIVE.
    """
    if predicted is not None:
        tol = atol + rtol * abs(predicted)
        ok_lo, ok_hi = predicted - tol, predicted + tol
    else:
        ok_lo = lower if lower is not None else -math.inf
        ok_hi = upper if upper is not None else math.inf
        tol = None
    verdict = interval_verdict(lo, hi, ok_lo, ok_hi)
    margin = min(estimate - ok_lo, ok_hi - estimate)
    ref = predicted if predicted is not None else (upper if upper is not None else lower)
    gap = abs(estimate - predicted) if predicted is not None else max(-margin, 0.0)
    gap_ci = abs_interval(lo - predicted, hi - predicted) if predicted is not None else None
    msg = (f"{name}: estimate {fmt(estimate)}, {conf:.0%} CI [{fmt(lo)}, {fmt(hi)}]"
           f"{' (' + how + ')' if how else ''}, allowed [{fmt(ok_lo)}, {fmt(ok_hi)}]: {verdict.value}")
    if verdict is Verdict.INCONCLUSIVE:
        msg += " (the interval straddles the allowed range: the data do not decide)"
    judged = []
    for rname, r in rivals.items():
        rtol_ = atol + rtol * abs(r) if predicted is not None else 0.0
        rv = interval_verdict(lo, hi, r - rtol_, r + rtol_)
        rlo, rhi = abs_interval(lo - r, hi - r)
        judged.append(Rival(rname, r, rv, abs(estimate - r), rtol_, rtol_ - abs(estimate - r), (rlo, rhi),
                            message=f"rival {rname!r} predicts {fmt(r)}: the CI "
                                    f"{'excludes' if rv is Verdict.FAILS else 'meets'} [{fmt(r - rtol_)}, {fmt(r + rtol_)}]"))
    verdict, msg = _with_rivals(verdict, msg, judged)
    return Measurement(name=name, kind="interval", verdict=verdict, measured=estimate, predicted=ref, gap=gap,
                       tolerance=tol if tol is not None else ((ok_hi - ok_lo) / 2 if math.isfinite(ok_hi - ok_lo) else None),
                       margin=margin, rtol=rtol if predicted is not None else None,
                       atol=atol if predicted is not None else None, ci=(lo, hi), gap_ci=gap_ci, confidence=conf,
                       message=msg, detail={"how": how, "allowed": [ok_lo if math.isfinite(ok_lo) else None,
                                                                    ok_hi if math.isfinite(ok_hi) else None]},
                       rivals=tuple(judged), default_tolerance=default_tolerance)


# ---------------------------------------------------------------------------- errors
def error(name: str, kind: str, why: str) -> Measurement:
    """An ERROR measurement: the claim or its numbers could not be judged."""
    return Measurement(name=name, kind=kind, verdict=Verdict.ERROR, measured=None, predicted=None, gap=None,
                       tolerance=None, margin=None, message=f"measurement {name!r}: {why}")
