"""The claim recorder: the ``claim`` fixture a claim test calls to record its measurements.

Each method records one named :class:`~pytest_ntk.verdicts.model.Measurement` and

- raises :class:`ClaimFailed` (an ``AssertionError``) when the prediction is violated (FAILS);
- raises :class:`ClaimError` when the input cannot be judged (NaN or inf, empty, mismatched
  shapes, an invalid tolerance) -- the claim's verdict is then ERROR, never HOLDS;
- returns the measurement otherwise (HOLDS, or INCONCLUSIVE for sampled quantities whose
  confidence interval straddles the tolerance; the test goes on and the claim is INCONCLUSIVE).
"""

from __future__ import annotations

import contextlib
import decimal
import functools
import json
import math
import numbers
import time
import zlib
from typing import Any, Callable

import numpy as np

from .model import (
    ClaimError,
    ClaimFailed,
    ClaimResult,
    Measurement,
    Tolerance,
    Verdict,
    combine,
)
from .stats import fit_slope, mean_ci, mean_of

__all__ = ["ClaimRecorder", "derive_seed"]


def derive_seed(base_seed: int, claim_id: str, index: int = 0) -> int:
    """A 32-bit seed for ``claim_id`` from the run's base seed, stable across runs and processes.

    ``numpy.random.SeedSequence([base_seed, crc32(claim_id), index])`` mixes the three into
    independent streams: different claims, or different indices, never share a seed by accident.
    """
    ss = np.random.SeedSequence([int(base_seed) & 0xFFFFFFFF, zlib.crc32(claim_id.encode()), int(index)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _quiet_floats(method):
    """Run a measurement with numpy's floating-point warnings off: overflow is judged, not warned about.

    Under ``-W error`` a RuntimeWarning from ``m - p`` would otherwise replace the verdict with a
    crash; each method checks for non-finite intermediate results itself and reports an ERROR.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        __tracebackhide__ = True
        with np.errstate(all="ignore"):
            return method(*args, **kwargs)

    return wrapper


def _fmt(x) -> str:
    if x is None:
        return "None"
    return f"{x:.4g}" if isinstance(x, float) else repr(x)


class ClaimRecorder:
    """Bound to one claim test; see the module docstring for the contract of each method."""

    def __init__(
        self,
        claim_id: str,
        tolerance: Tolerance,
        *,
        base_seed: int = 0,
        seed_key: str | None = None,
        on_stage: Callable[[str, str, float], None] | None = None,
    ):
        self.id = claim_id
        self.tolerance = tolerance
        self.base_seed = int(base_seed)
        self._seed_key = seed_key or claim_id
        self.measurements: list[Measurement] = []
        self.stages: list[dict[str, Any]] = []
        self.artifacts: list[dict[str, Any]] = []
        self._on_stage = on_stage

    def __repr__(self) -> str:
        return f"<claim {self.id!r}: {len(self.measurements)} measurement(s), {self.tolerance}>"

    # ------------------------------------------------------------------ seeds and bookkeeping
    @property
    def seed(self) -> int:
        """This claim's seed, derived from ``--ntk-seed`` and the claim id (shared by its parametrized cases)."""
        return derive_seed(self.base_seed, self._seed_key)

    def seeds(self, n: int) -> list[int]:
        """``n`` independent seeds for this claim (e.g. one per trial or per ensemble member)."""
        return [derive_seed(self.base_seed, self._seed_key, i + 1) for i in range(int(n))]

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time a stage of the claim (``duration_s`` per stage lands in the JSON report)."""
        start = time.perf_counter()
        status = "done"
        try:
            yield
        except BaseException:
            status = "broke"
            raise
        finally:
            duration = time.perf_counter() - start
            self.stages.append({"name": name, "duration_s": round(duration, 6), "status": status})
            if self._on_stage is not None:
                self._on_stage(self.id, name, duration)

    def table(self, name: str, columns, rows) -> None:
        """Attach a table (e.g. a paper's results table) that the reports render."""
        columns = [str(c) for c in columns]
        rows = [[_plain(v) for v in row] for row in rows]
        for row in rows:
            if len(row) != len(columns):
                raise ClaimError(
                    f"claim {self.id!r}: table {name!r} row {row!r} has {len(row)} cells, "
                    f"expected {len(columns)}"
                )
        self._check_json(f"table {name!r}", rows)
        self.artifacts.append({"kind": "table", "name": str(name), "columns": columns, "rows": rows})

    def attach(self, name: str, data: Any) -> None:
        """Attach JSON-ready data (series for plots, fitted constants, ...) to the claim's report."""
        data = _plain(data)
        self._check_json(f"attachment {name!r}", data)
        self.artifacts.append({"kind": "data", "name": str(name), "data": data})

    def _check_json(self, what: str, data) -> None:
        # artifacts travel to the xdist controller and into the JSON report: refuse here, naming the claim,
        # rather than break the report writer at the end of the run
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ClaimError(f"claim {self.id!r}: {what} is not JSON-ready data ({exc})") from None

    # ------------------------------------------------------------------ input handling
    def _name(self, name: str | None, kind: str) -> str:
        if name is not None:
            if not isinstance(name, str) or not name:
                raise ClaimError(f"claim {self.id!r}: measurement name must be a non-empty string, got {name!r}")
            return name
        taken = {m.name for m in self.measurements}
        if kind not in taken:
            return kind
        i = 2
        while f"{kind}#{i}" in taken:
            i += 1
        return f"{kind}#{i}"

    def _array(self, name: str, what: str, value) -> np.ndarray:
        """``value`` as a float64 array, or ClaimError naming the claim, the measurement and the value.

        Real numbers only: a boolean (a comparison's outcome, not a measurement), a complex number
        (casting would drop its imaginary part), a string (even "1.5"), None, or an integer beyond
        float64's range is refused rather than coerced.
        """
        where = f"claim {self.id!r}, measurement {name!r}: {what}"
        if isinstance(value, (str, bytes)) or value is None:
            raise ClaimError(f"{where} must be numeric, got {_short(value)}")
        flag = _bool_inside(value) if isinstance(value, (list, tuple)) else None
        if flag is not None:  # numpy would read [True, 2.0] as [1.0, 2.0]
            raise ClaimError(f"{where} must be numeric, got the boolean {_short(flag)} in {_short(value)}")
        try:
            raw = np.asarray(value)
        except (TypeError, ValueError, OverflowError):  # e.g. ragged nested lists
            raise ClaimError(f"{where} must be numeric (a number or a rectangular array), got {_short(value)}") from None
        kind = raw.dtype.kind
        if kind == "O":
            for e in raw.ravel():
                if not _is_real(e):
                    raise ClaimError(f"{where} must be numeric (real numbers), got {_short(e)} in {_short(value)}")
        elif kind == "b":
            raise ClaimError(f"{where} must be numeric, got the boolean {_short(value)} (record the quantity "
                             f"that was compared, not the comparison)")
        elif kind == "c":
            raise ClaimError(f"{where} must be numeric (real), got the complex {_short(value)}")
        elif kind not in "iuf":
            raise ClaimError(f"{where} must be numeric, got {_short(value)} (dtype {raw.dtype})")
        try:
            with np.errstate(all="ignore"):
                arr = raw.astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ClaimError(f"{where} must be numeric and representable in float64, got {_short(value)}") from None
        if arr.size == 0:
            raise ClaimError(f"claim {self.id!r}, measurement {name!r}: {what} is empty")
        return arr

    def _record(self, m: Measurement) -> Measurement:
        __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
        self.measurements.append(m)
        if m.verdict is Verdict.FAILS:
            raise ClaimFailed(f"claim {self.id!r}: {m.message}")
        if m.verdict is Verdict.ERROR:
            raise ClaimError(f"claim {self.id!r}: {m.message}")
        return m

    def _nonfinite(self, name: str, kind: str, **arrays) -> Measurement | None:
        for what, arr in arrays.items():
            if arr is not None and not np.all(np.isfinite(arr)):
                bad = arr[~np.isfinite(arr)].ravel()[0] if arr.ndim else arr
                return Measurement(
                    name=name, kind=kind, verdict=Verdict.ERROR, measured=None, predicted=None,
                    gap=None, tolerance=None, margin=None,
                    message=f"measurement {name!r}: {what} is not finite ({float(bad)!r}); a non-finite "
                    f"number never HOLDS",
                )
        return None

    @staticmethod
    def _error(name: str, kind: str, why: str) -> Measurement:
        return Measurement(name=name, kind=kind, verdict=Verdict.ERROR, measured=None, predicted=None, gap=None,
                           tolerance=None, margin=None, message=f"measurement {name!r}: {why}")

    def _tol(self, name: str, rtol, atol) -> tuple[float, float]:
        if rtol is None and atol is None:
            return self.tolerance.rtol, self.tolerance.atol
        for what, v in (("rtol", rtol), ("atol", atol)):
            if isinstance(v, (bool, np.bool_, str, bytes)):
                raise ClaimError(f"claim {self.id!r}, measurement {name!r}: {what} must be a number >= 0, got {v!r}")
        t = Tolerance(0.0 if rtol is None else rtol, 0.0 if atol is None else atol, 0.5)
        try:
            t = t.validated(self.id)
        except ClaimError as exc:
            raise ClaimError(f"{exc} (measurement {name!r})") from None
        return t.rtol, t.atol

    def _confidence(self, confidence) -> float:
        if confidence is None:
            return self.tolerance.confidence
        if isinstance(confidence, (bool, np.bool_, str, bytes)):
            raise ClaimError(f"claim {self.id!r}: confidence must be a number in (0, 1), got {confidence!r}")
        return Tolerance(0.0, 0.0, confidence).validated(self.id).confidence

    # ------------------------------------------------------------------ the measurements
    @_quiet_floats
    def close(self, measured, predicted, *, rtol=None, atol=None, name=None) -> Measurement:
        """HOLDS when ``|measured - predicted| <= atol + rtol * |predicted|`` (elementwise for arrays).

        With neither ``rtol`` nor ``atol`` given the claim's ``tolerance`` applies; with one given
        the other is 0. For arrays the worst element (smallest margin) is reported.
        """
        __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
        name = self._name(name, "close")
        rtol, atol = self._tol(name, rtol, atol)
        m = self._array(name, "measured", measured)
        p = self._array(name, "predicted", predicted)
        if m.shape != p.shape and p.size != 1:
            raise ClaimError(
                f"claim {self.id!r}, measurement {name!r}: measured has shape {m.shape} but predicted "
                f"has shape {p.shape}"
            )
        bad = self._nonfinite(name, "close", measured=m, predicted=p)
        if bad:
            return self._record(bad)
        p = np.broadcast_to(p.reshape(()) if p.size == 1 else p, m.shape)
        gaps = np.abs(m - p)
        if not np.all(np.isfinite(gaps)):
            j = int(np.argmin(np.isfinite(gaps).ravel()))
            return self._record(self._error(
                name, "close", f"the gap |measured - predicted| overflows float64 (measured "
                f"{float(m.ravel()[j])!r} vs predicted {float(p.ravel()[j])!r}); rescale the quantities"))
        tols = atol + rtol * np.abs(p)  # may overflow to inf: then every finite gap is within it
        margins = tols - gaps
        i = int(np.argmin(margins)) if margins.ndim else 0
        gap, tol, margin = float(gaps.ravel()[i]), float(tols.ravel()[i]), float(margins.ravel()[i])
        mi, pi = float(m.ravel()[i]), float(p.ravel()[i])
        verdict = Verdict.HOLDS if margin >= 0 else Verdict.FAILS
        where = f" (worst of {m.size} elements, index {tuple(int(k) for k in np.unravel_index(i, m.shape))})" if m.size > 1 else ""
        msg = (
            f"{name}: measured {_fmt(mi)} vs predicted {_fmt(pi)}: gap {_fmt(gap)} "
            f"{'<=' if verdict is Verdict.HOLDS else '>'} tolerance {_fmt(tol)} "
            f"(atol {_fmt(atol)} + rtol {_fmt(rtol)}*|predicted|){where}"
        )
        detail = {}
        if m.size > 1:
            detail = {"elements": int(m.size), "max_gap": float(gaps.max()), "mean_gap": float(gaps.mean())}
        return self._record(Measurement(
            name=name, kind="close", verdict=verdict, measured=mi, predicted=pi, gap=gap,
            tolerance=tol, margin=margin, rtol=rtol, atol=atol, n=int(m.size), message=msg, detail=detail,
        ))

    @_quiet_floats
    def _bound(self, kind: str, measured, bound, name) -> Measurement:
        __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
        name = self._name(name, kind)
        m = self._array(name, "measured", measured)
        b = self._array(name, "bound", bound)
        if b.size != 1 and b.shape != m.shape:
            raise ClaimError(
                f"claim {self.id!r}, measurement {name!r}: measured has shape {m.shape} but bound has shape {b.shape}"
            )
        bad = self._nonfinite(name, kind, measured=m, bound=b)
        if bad:
            return self._record(bad)
        b = np.broadcast_to(b.reshape(()) if b.size == 1 else b, m.shape)
        margins = (b - m) if kind == "at_most" else (m - b)
        i = int(np.argmin(margins)) if margins.ndim else 0
        mi, bi, margin = float(m.ravel()[i]), float(b.ravel()[i]), float(margins.ravel()[i])
        verdict = Verdict.HOLDS if margin >= 0 else Verdict.FAILS
        op = "<=" if kind == "at_most" else ">="
        msg = f"{name}: measured {_fmt(mi)} {op} bound {_fmt(bi)} {'holds' if verdict is Verdict.HOLDS else 'is violated'}"
        if m.size > 1:
            msg += f" (worst of {m.size} elements)"
        return self._record(Measurement(
            name=name, kind=kind, verdict=verdict, measured=mi, predicted=bi, gap=max(-margin, 0.0),
            tolerance=0.0, margin=margin, n=int(m.size), message=msg,
        ))

    def at_most(self, measured, bound, *, name=None) -> Measurement:
        """HOLDS when ``measured <= bound`` (every element, for arrays)."""
        __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
        return self._bound("at_most", measured, bound, name)

    def at_least(self, measured, bound, *, name=None) -> Measurement:
        """HOLDS when ``measured >= bound`` (every element, for arrays)."""
        __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
        return self._bound("at_least", measured, bound, name)

    @_quiet_floats
    def slope(self, x, y, *, expected=None, tol=None, upper=None, lower=None, log=True, confidence=None,
              name=None) -> Measurement:
        """Fit ``log y = a + s log x`` (or linear with ``log=False``) and judge the slope's confidence interval.

        Against ``expected +- tol``: HOLDS when the whole interval lies inside it, FAILS when the whole
        interval lies outside, INCONCLUSIVE otherwise. Against bounds (``upper`` and/or ``lower``):
        HOLDS when the interval lies within them, FAILS when it lies wholly beyond one, else
        INCONCLUSIVE. Repeated ``x`` values (several seeds per width) tighten the interval.
        """
        __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
        name = self._name(name, "slope")
        xa = self._array(name, "x", x).ravel()
        ya = self._array(name, "y", y).ravel()
        if xa.shape != ya.shape:
            raise ClaimError(f"claim {self.id!r}, measurement {name!r}: x has {xa.size} points but y has {ya.size}")
        if (expected is None) != (tol is None):
            raise ClaimError(f"claim {self.id!r}, measurement {name!r}: give expected and tol together "
                             f"(got expected={expected!r}, tol={tol!r})")
        if expected is None and upper is None and lower is None:
            raise ClaimError(f"claim {self.id!r}, measurement {name!r}: slope needs expected=..., tol=... "
                             f"or a bound (upper=/lower=)")
        targets = {what: self._array(name, what, v) for what, v in
                   (("expected", expected), ("upper", upper), ("lower", lower)) if v is not None}
        for what, arr in targets.items():
            if arr.size != 1:
                raise ClaimError(f"claim {self.id!r}, measurement {name!r}: {what} must be one number, "
                                 f"got shape {arr.shape}")
        targets = {what: arr.reshape(()) for what, arr in targets.items()}
        bad = self._nonfinite(name, "slope", x=xa, y=ya, **targets)
        if bad:
            return self._record(bad)
        if log and (np.any(xa <= 0) or np.any(ya <= 0)):
            v = xa[xa <= 0][0] if np.any(xa <= 0) else ya[ya <= 0][0]
            return self._record(Measurement(
                name=name, kind="slope", verdict=Verdict.ERROR, measured=None, predicted=expected,
                gap=None, tolerance=tol, margin=None,
                message=f"measurement {name!r}: a log-log slope needs positive x and y, got {float(v)!r}",
            ))
        if np.unique(xa).size < 2:
            raise ClaimError(f"claim {self.id!r}, measurement {name!r}: slope needs at least two distinct x values")
        if upper is not None and lower is not None and float(targets["lower"]) > float(targets["upper"]):
            raise ClaimError(f"claim {self.id!r}, measurement {name!r}: lower={lower!r} exceeds upper={upper!r}")
        conf = self._confidence(confidence)
        fit = fit_slope(xa, ya, log=log, confidence=conf)
        if not math.isfinite(fit.slope) or (
            fit.n >= 3 and not (math.isfinite(fit.lo) and math.isfinite(fit.hi))
        ):
            return self._record(self._error(
                name, "slope", f"the least-squares fit is not finite in float64 (slope {fit.slope!r}, "
                f"interval [{fit.lo!r}, {fit.hi!r}]): the x values are too close together or the data "
                f"too large; rescale x and y"))
        lo_ok, hi_ok = -math.inf, math.inf
        if expected is not None:
            tol = _check(self.id, name, "tol", tol)
            expected = float(targets["expected"])
            lo_ok, hi_ok = expected - tol, expected + tol
        if upper is not None:
            upper = float(targets["upper"])
            hi_ok = min(hi_ok, upper)
        if lower is not None:
            lower = float(targets["lower"])
            lo_ok = max(lo_ok, lower)
        verdict = _interval_verdict(fit.lo, fit.hi, lo_ok, hi_ok)
        margin = min(fit.slope - lo_ok, hi_ok - fit.slope)
        if expected is not None:
            gap = abs(fit.slope - float(expected))
            gap_ci = _abs_interval(fit.lo - float(expected), fit.hi - float(expected))
            predicted = float(expected)
        else:
            predicted = float(upper) if upper is not None else float(lower)
            gap = max(-margin, 0.0)
            gap_ci = None
        allowed = f"[{_fmt(lo_ok)}, {_fmt(hi_ok)}]"
        msg = (f"{name}: fitted {'log-log ' if log else ''}slope {_fmt(fit.slope)}, {conf:.0%} CI "
               f"[{_fmt(fit.lo)}, {_fmt(fit.hi)}] from {fit.n} points, allowed {allowed}: {verdict.value}")
        return self._record(Measurement(
            name=name, kind="slope", verdict=verdict, measured=fit.slope, predicted=predicted, gap=gap,
            tolerance=(hi_ok - lo_ok) / 2 if math.isfinite(hi_ok - lo_ok) else None, margin=margin,
            ci=(fit.lo, fit.hi), gap_ci=gap_ci, confidence=conf, n=fit.n, message=msg,
            detail={"intercept": fit.intercept, "stderr": fit.stderr, "r2": fit.r2, "log": bool(log),
                    "allowed": [lo_ok if math.isfinite(lo_ok) else None, hi_ok if math.isfinite(hi_ok) else None],
                    "x": xa.tolist(), "y": ya.tolist()},
        ))

    @_quiet_floats
    def samples(self, values, *, predicted, rtol=None, atol=None, confidence=None, name=None) -> Measurement:
        """Judge a quantity measured over seeds by the confidence interval of its mean.

        ``gap = |mean - predicted|`` ranges, over the interval, from ``gap_lo`` to ``gap_hi``.
        HOLDS when ``gap_hi <= tolerance``, FAILS when ``gap_lo > tolerance``, INCONCLUSIVE
        otherwise (too few seeds to decide). ``predicted`` may be a scalar or one value per sample
        (paired differences).
        """
        __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
        name = self._name(name, "samples")
        rtol, atol = self._tol(name, rtol, atol)
        v = self._array(name, "values", values).ravel()
        p = self._array(name, "predicted", predicted).ravel()
        if p.size != 1 and p.size != v.size:
            raise ClaimError(f"claim {self.id!r}, measurement {name!r}: {v.size} values but {p.size} predictions")
        bad = self._nonfinite(name, "samples", values=v, predicted=p)
        if bad:
            return self._record(bad)
        conf = self._confidence(confidence)
        diffs = v - p if p.size > 1 else v - p[0]
        ci = mean_ci(diffs, conf)
        if not np.all(np.isfinite(diffs)) or not math.isfinite(ci.mean) or (
            ci.n >= 2 and not (math.isfinite(ci.lo) and math.isfinite(ci.hi))
        ):
            return self._record(self._error(
                name, "samples", f"the mean or spread of values - predicted overflows float64 (mean "
                f"{ci.mean!r}, interval [{ci.lo!r}, {ci.hi!r}]); rescale the quantities"))
        pred = mean_of(p)  # the means of huge predictions must not overflow: an inf tolerance would HOLDS anything
        tol = atol + rtol * mean_of(np.abs(p))
        gap_lo, gap_hi = _abs_interval(ci.lo, ci.hi)
        verdict = _interval_verdict(ci.lo, ci.hi, -tol, tol)
        mean = pred + ci.mean
        msg = (f"{name}: mean {_fmt(mean)} over {ci.n} samples vs predicted {_fmt(pred)}: gap "
               f"{_fmt(abs(ci.mean))}, {conf:.0%} CI of the gap [{_fmt(gap_lo)}, {_fmt(gap_hi)}] vs "
               f"tolerance {_fmt(tol)}: {verdict.value}")
        if verdict is Verdict.INCONCLUSIVE:
            msg += " (the interval straddles the tolerance: more samples needed)"
        return self._record(Measurement(
            name=name, kind="samples", verdict=verdict, measured=mean, predicted=pred, gap=abs(ci.mean),
            tolerance=tol, margin=tol - abs(ci.mean), rtol=rtol, atol=atol,
            ci=(pred + ci.lo, pred + ci.hi), gap_ci=(gap_lo, gap_hi), confidence=conf, n=ci.n, message=msg,
            detail={"sem": ci.sem, "std": float(np.std(diffs, ddof=1)) if ci.n > 1 else None},
        ))

    # ------------------------------------------------------------------ the verdict
    def finish(self, *, error: BaseException | None = None, skipped: str | None = None, **meta) -> ClaimResult:
        """Close the claim: combine the measurements' verdicts with how the test ended."""
        if skipped is not None:
            verdict, message = Verdict.SKIPPED, skipped
        elif error is not None and not isinstance(error, ClaimFailed):
            verdict = Verdict.ERROR
            message = f"{type(error).__name__}: {error}"
        elif not self.measurements:
            verdict, message = Verdict.ERROR, "claim recorded no measurement"
        else:
            verdict = combine(m.verdict for m in self.measurements)
            decisive = [m for m in self.measurements if m.verdict is verdict]
            message = decisive[0].message if decisive else ""
            if error is not None and verdict in (Verdict.HOLDS, Verdict.INCONCLUSIVE):
                # the test itself raised ClaimFailed: the prediction is violated whatever was measured
                verdict, message = Verdict.FAILS, str(error)
        meta.setdefault("nodeid", "")  # the plugin passes it; a notebook need not
        return ClaimResult(
            id=self.id, verdict=verdict, message=message, seed=self.seed, measurements=list(self.measurements),
            stages=list(self.stages), artifacts=list(self.artifacts), **meta,
        )


def _bool_inside(seq):
    """The first boolean inside nested lists/tuples (or a boolean array among them), else None."""
    stack = [seq]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, (bool, np.bool_)) or (isinstance(v, np.ndarray) and v.dtype.kind == "b"):
            return v
    return None


def _is_real(x) -> bool:
    """A real number that is not a boolean (Python, numpy or Decimal scalars)."""
    if isinstance(x, (bool, np.bool_)):
        return False
    return isinstance(x, (numbers.Real, decimal.Decimal))


def _short(value, limit: int = 120) -> str:
    """``repr(value)``, shortened in the middle when long (a message names the value, not all of it)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits (about {'-' if value < 0 else ''}1e{value.bit_length() * math.log10(2):.0f})"
    try:
        r = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        r = f"<{type(value).__name__}>"
    return r if len(r) <= limit else f"{r[: limit - 40]} ... {r[-30:]}"


def _check(claim_id: str, name: str, what: str, value) -> float:
    try:
        v = float("nan") if isinstance(value, (bool, np.bool_, str, bytes)) else float(value)
    except (TypeError, ValueError, OverflowError):
        v = float("nan")
    if not math.isfinite(v) or v < 0:
        raise ClaimError(f"claim {claim_id!r}, measurement {name!r}: {what} must be finite and >= 0, got {value!r}")
    return v


def _abs_interval(lo: float, hi: float) -> tuple[float, float]:
    """The range of ``|d|`` for ``d`` in ``[lo, hi]``."""
    if lo <= 0.0 <= hi:
        return 0.0, max(-lo, hi)
    return min(abs(lo), abs(hi)), max(abs(lo), abs(hi))


def _interval_verdict(lo: float, hi: float, ok_lo: float, ok_hi: float) -> Verdict:
    """HOLDS if [lo, hi] lies inside [ok_lo, ok_hi]; FAILS if it lies wholly outside; else INCONCLUSIVE.

    An unbounded interval (one sample, two points) never HOLDS, even inside a tolerance that
    overflowed float64 to inf.
    """
    if ok_lo <= lo and hi <= ok_hi and math.isfinite(lo) and math.isfinite(hi):
        return Verdict.HOLDS
    if hi < ok_lo or lo > ok_hi:
        return Verdict.FAILS
    return Verdict.INCONCLUSIVE


def _plain(v):
    """JSON-ready copy of ``v``: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
