"""The claim recorder: the ``claim`` fixture a claim test calls to record its measurements.

Each measurement method (:meth:`~ClaimRecorder.close`, :meth:`~ClaimRecorder.at_most`,
:meth:`~ClaimRecorder.at_least`, :meth:`~ClaimRecorder.samples`, :meth:`~ClaimRecorder.slope`)
records one named :class:`~pytest_ntk.verdicts.model.Measurement` (judged by
:mod:`pytest_ntk.verdicts.judge`) and

- raises :class:`ClaimFailed` (an ``AssertionError``) when the prediction is violated (FAILS);
- raises :class:`ClaimError` when the input cannot be judged (NaN or inf, empty, refused or
  mis-shaped input, an invalid tolerance; see :mod:`pytest_ntk.verdicts.inputs`);
- returns the measurement otherwise (HOLDS; or INCONCLUSIVE when a confidence interval straddles
  the tolerance or a rival prediction fits as well -- the test goes on).

**Nothing the recorder refuses is lost.** Every refusal leaves an ERROR measurement on the claim
before the exception leaves the method, so a test that catches the ``ClaimError`` and goes on to
record holding measurements still ends ERROR; a caught ``ClaimFailed`` leaves its FAILS
measurement. The recorded measurements are kept privately (:attr:`measurements` is a read-only
copy).

**The claim's lifecycle is closed.** The plugin seals the recorder when the test's call phase
ends (:meth:`seal`). Anything recorded afterwards -- by a finalizer, a fixture's teardown, a
thread that outlived the test -- is not counted: it makes the claim ERROR ("recorded after the
test returned").
"""

from __future__ import annotations

import functools
import math
import operator
import threading
import zlib
from typing import Any, Callable, Mapping

import numpy as np

from . import judge
from .artifacts import Artifacts, plain
from .inputs import as_float64, as_name, short
from .model import (
    ClaimError,
    ClaimFailed,
    ClaimResult,
    Measurement,
    Tolerance,
    SEED_RANGE,
    Verdict,
    check_confidence,
    check_tolerance_value,
    combine,
)

__all__ = ["ClaimRecorder", "derive_seed", "SEED_RANGE"]



def derive_seed(base_seed: int, claim_id: str, index: int = 0) -> int:
    """A 32-bit seed for ``claim_id`` from the run's base seed, stable across runs and processes.

    ``numpy.random.SeedSequence([base_seed, crc32(claim_id), index])`` mixes the three into
    independent streams: different claims, or different indices, never share a seed by accident.
    ``base_seed`` must lie in :data:`SEED_RANGE` (ValueError otherwise: no silent aliasing).
    """
    base = operator.index(base_seed)
    if not SEED_RANGE[0] <= base <= SEED_RANGE[1]:
        raise ValueError(f"base seed must lie in [0, 2**32 - 1], got {base_seed!r}")
    ss = np.random.SeedSequence([base, zlib.crc32(claim_id.encode()), operator.index(index)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _measurement(kind: str):
    """Decorate a measurement method: refusals become ERROR measurements, floats are judged, not warned.

    The wrapper (1) refuses a record after :meth:`ClaimRecorder.seal`; (2) runs the method with
    numpy's floating-point warnings off (overflow is judged, not warned about: under ``-W error``
    a RuntimeWarning would otherwise replace the verdict with a crash); (3) when the method raises
    a ``ClaimError`` it did not record, or any unexpected exception, records an ERROR measurement
    named after the call before re-raising.
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, name=None, **kwargs):
            __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
            self._check_open(f"{kind}(name={name!r})")
            label = self._label(name, kind)
            try:
                if name is not None:
                    as_name(name, "measurement name", f"claim {self.id!r}")  # refuse, recorded under `label`
                with np.errstate(all="ignore"):
                    m = method(self, *args, name=label, **kwargs)
            except ClaimFailed:
                raise
            except ClaimError as exc:
                if not getattr(exc, "recorded", False):
                    self._append(judge.error(label, kind, _strip(str(exc), self.id)))
                raise
            except Exception as exc:  # noqa: BLE001 - an input we did not foresee is an ERROR, never silent
                self._append(judge.error(label, kind, f"{type(exc).__name__}: {exc}"))
                raise ClaimError(f"claim {self.id!r}, measurement {label!r}: could not be judged: "
                                 f"{type(exc).__name__}: {exc}") from exc
            return self._record(m)

        return wrapper

    return decorate


def _strip(message: str, claim_id: str) -> str:
    prefix = f"claim {claim_id!r}"
    message = message.removeprefix(prefix).lstrip(",: ")
    return message


class ClaimRecorder(Artifacts):
    """Bound to one claim test; see the module docstring for the contract of each method.

    ``tolerance`` is the claim's default (marker > command line > ini > profile);
    ``tolerance_is_default`` says it came from the profile or the command line rather than the
    claim's own ``tolerance`` marker (measurements that use it are marked so in the reports).
    """

    def __init__(
        self,
        claim_id: str,
        tolerance: Tolerance,
        *,
        base_seed: int = 0,
        seed_key: str | None = None,
        on_stage: Callable[[str, str, float | None], None] | None = None,
        tolerance_is_default: bool = False,
    ):
        self._id = str(claim_id)
        self._tolerance = tolerance.validated(self._id)
        derive_seed(base_seed, self._id)  # refuses a base seed outside SEED_RANGE now, not at first use
        self._base_seed = int(base_seed)
        self._seed_key = seed_key or claim_id
        self._measurements: list[Measurement] = []
        self._stages: list[dict[str, Any]] = []
        self._artifacts: list[dict[str, Any]] = []
        self._on_stage = on_stage
        self._tolerance_is_default = bool(tolerance_is_default)
        self._lock = threading.Lock()
        self._sealed = False
        self._late: list[str] = []
        self._settings: dict[str, Any] = {}
        self._profile: str | None = None

    def __repr__(self) -> str:
        return f"<claim {self.id!r}: {len(self._measurements)} measurement(s), {self.tolerance}>"

    # ------------------------------------------------------------------ read-only state
    @property
    def id(self) -> str:
        return self._id

    @property
    def tolerance(self) -> Tolerance:
        return self._tolerance

    @property
    def base_seed(self) -> int:
        return self._base_seed

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """The measurements recorded so far (a copy: the record cannot be edited from outside)."""
        with self._lock:
            return tuple(self._measurements)

    @property
    def stages(self) -> tuple[dict[str, Any], ...]:
        return tuple(dict(s) for s in self._stages)

    @property
    def artifacts(self) -> tuple[dict[str, Any], ...]:
        return tuple(dict(a) for a in self._artifacts)

    @property
    def late(self) -> tuple[str, ...]:
        """What was recorded after :meth:`seal` (each makes the claim ERROR)."""
        with self._lock:
            return tuple(self._late)

    @property
    def sealed(self) -> bool:
        return self._sealed

    @property
    def settings(self) -> dict[str, Any]:
        """``{suite name: settings}`` the claim ran with (noted by :class:`pytest_ntk.Suite`)."""
        return {k: v for k, v in self._settings.items()}

    @property
    def profile(self) -> str | None:
        return self._profile

    def note_settings(self, suite: str, settings: Mapping[str, Any], *, profile: str | None = None) -> None:
        """Note the settings a suite runs this claim with (they land in the report's ``settings``)."""
        self._settings[str(suite)] = plain(dict(settings))
        if profile is not None:
            self._profile = str(profile)

    # ------------------------------------------------------------------ lifecycle
    def seal(self) -> None:
        """Close the record (the plugin calls it when the test's call phase ends)."""
        with self._lock:
            self._sealed = True

    def _check_open(self, what: str) -> None:
        with self._lock:
            if self._sealed:
                self._late.append(what)
                raise ClaimError(f"claim {self.id!r}: {what} recorded after the test returned; a claim's "
                                 f"measurements must be recorded during the test's call (this makes the claim ERROR)")

    def _append(self, m: Measurement) -> None:
        with self._lock:
            if self._sealed:
                self._late.append(f"measurement {m.name!r}")
                return
            self._measurements.append(m)

    def _record(self, m: Measurement) -> Measurement:
        __tracebackhide__ = True  # pytest shows the claim's line, not the recorder's
        self._append(m)
        if m.verdict is Verdict.FAILS:
            raise ClaimFailed(f"claim {self.id!r}: {m.message}")
        if m.verdict is Verdict.ERROR:
            exc = ClaimError(f"claim {self.id!r}: {m.message}")
            exc.recorded = True
            raise exc
        return m

    def _refuse(self, kind: str, label: str, message: str):
        """Record an ERROR measurement for a refused non-measurement call (table, attach, stage) and raise."""
        self._append(judge.error(label, kind, message))
        exc = ClaimError(f"claim {self.id!r}: {message}")
        exc.recorded = True
        raise exc

    # ------------------------------------------------------------------ seeds and bookkeeping
    @property
    def seed(self) -> int:
        """This claim's seed, derived from ``--ntk-seed`` and the claim id (shared by its parametrized cases)."""
        return derive_seed(self._base_seed, self._seed_key)

    def seeds(self, n: int) -> list[int]:
        """``n`` independent 32-bit seeds for this claim (e.g. one per trial or per ensemble member).

        ``derive_seed(base, claim id, i)`` for ``i = 1..n``: different from :attr:`seed` (index 0)
        and from every other claim's, the same in every run with the same ``--ntk-seed``.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ClaimError(f"claim {self.id!r}: seeds(n) needs an integer n >= 0, got {n!r}")
        return [derive_seed(self._base_seed, self._seed_key, i + 1) for i in range(int(n))]

    def _label(self, name, kind: str) -> str:
        """The measurement's name: ``name`` (a string or an integer), else ``kind``, ``kind#2``, ..."""
        if name is not None:
            try:
                return as_name(name, "measurement name", f"claim {self.id!r}")
            except ClaimError:
                pass  # refused by the method itself, below, with this label
        taken = {m.name for m in self._measurements}
        if kind not in taken:
            return kind
        i = 2
        while f"{kind}#{i}" in taken:
            i += 1
        return f"{kind}#{i}"

    # ------------------------------------------------------------------ inputs
    def _where(self, name: str) -> str:
        return f"claim {self.id!r}, measurement {name!r}"

    def _tol(self, name: str, rtol, atol) -> tuple[float, float, bool]:
        """(rtol, atol, from the default?): the claim's tolerance when neither is given; one given: the other is 0."""
        if rtol is None and atol is None:
            return self.tolerance.rtol, self.tolerance.atol, self._tolerance_is_default
        where = f"measurement {name!r}"
        r = 0.0 if rtol is None else check_tolerance_value(self.id, "rtol", rtol, where=where)
        a = 0.0 if atol is None else check_tolerance_value(self.id, "atol", atol, where=where)
        return r, a, False

    def _confidence(self, name: str, confidence) -> float:
        if confidence is None:
            return self.tolerance.confidence
        return check_confidence(self.id, confidence, where=f"measurement {name!r}")

    def _rivals(self, name: str, rivals, shape_of: Callable[[str, np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
        """``{rival name: prediction}`` validated like the prediction itself (``shape_of`` checks the shape)."""
        if rivals is None:
            return {}
        if not isinstance(rivals, Mapping):
            raise ClaimError(f"{self._where(name)}: rivals must be a mapping {{name: prediction}}, got {short(rivals)}")
        out = {}
        for rname, value in rivals.items():
            label = as_name(rname, "rival name", self._where(name))
            arr = as_float64(value, f"rival {label!r}", self._where(name))
            if not np.all(np.isfinite(arr)):
                raise ClaimError(f"{self._where(name)}: rival {label!r} is not finite ({short(value)})")
            out[label] = shape_of(label, arr)
        return out

    def _contradicts(self, name: str, rivals: dict[str, np.ndarray], lo, hi) -> None:
        """Refuse a rival of a one-sided claim that lies on the claim's allowed side (in ``[lo, hi]``).

        "The slope is at most -0.25" and "the slope is -0.5" do not compete: the second is a special
        case of the first, and ruling it out or not says nothing about the claim. (A rival of a
        two-sided prediction may lie inside its tolerance band: then the measurement cannot tell the
        two theories apart at this tolerance, which is exactly what INCONCLUSIVE reports.)
        """
        for rname, r in rivals.items():
            with np.errstate(all="ignore"):
                inside = np.all((np.asarray(lo) <= r) & (r <= np.asarray(hi)))
            if inside:
                raise ClaimError(
                    f"{self._where(name)}: rival {rname!r} ({short(r.tolist() if r.ndim else float(r))}) lies inside "
                    f"the prediction's allowed range, so it does not contradict the prediction; a rival must "
                    f"predict something the prediction rules out")

    def _nonfinite(self, name: str, kind: str, **arrays) -> Measurement | None:
        for what, arr in arrays.items():
            if arr is not None and not np.all(np.isfinite(arr)):
                bad = arr[~np.isfinite(arr)].ravel()[0] if arr.ndim else arr
                return judge.error(name, kind, f"{what} is not finite ({float(bad)!r}); a non-finite number never HOLDS")
        return None

    # ------------------------------------------------------------------ the measurements
    @_measurement("close")
    def close(self, measured, predicted, *, rtol=None, atol=None, rivals=None, name=None) -> Measurement:
        """HOLDS when ``|measured - predicted| <= atol + rtol * |predicted|`` (every element, for arrays)
        and every rival is rejected by the same rule.

        With neither ``rtol`` nor ``atol`` given the claim's ``tolerance`` applies; with one given
        the other is 0. For arrays the worst element (smallest margin) is reported. ``rivals``:
        ``{name: prediction}`` of competing theories, each of ``predicted``'s shape (or a scalar);
        a rival within tolerance makes the measurement INCONCLUSIVE (it cannot tell them apart).
        """
        __tracebackhide__ = True
        rtol, atol, default = self._tol(name, rtol, atol)
        where = self._where(name)
        m = as_float64(measured, "measured", where)
        p = as_float64(predicted, "predicted", where)

        def shaped(what: str, arr: np.ndarray) -> np.ndarray:
            if arr.shape != m.shape and arr.size != 1:
                raise ClaimError(f"{where}: measured has shape {m.shape} but {what} has shape {arr.shape}")
            return arr

        shaped("predicted", p)
        rv = self._rivals(name, rivals, shaped)
        bad = self._nonfinite(name, "close", measured=m, predicted=p)
        if bad:
            return bad
        return judge.close(name, m, p, rtol, atol, rv, default_tolerance=default)

    @_measurement("at_most")
    def at_most(self, measured, bound, *, name=None) -> Measurement:
        """HOLDS when ``measured <= bound`` (every element, for arrays). A bound has no rivals: a
        competing theory's prediction is a value, judged with :meth:`close` or :meth:`samples`."""
        __tracebackhide__ = True
        return self._bound("at_most", measured, bound, name)

    @_measurement("at_least")
    def at_least(self, measured, bound, *, name=None) -> Measurement:
        """HOLDS when ``measured >= bound`` (every element, for arrays)."""
        __tracebackhide__ = True
        return self._bound("at_least", measured, bound, name)

    def _bound(self, kind: str, measured, bound, name: str) -> Measurement:
        where = self._where(name)
        m = as_float64(measured, "measured", where)
        b = as_float64(bound, "bound", where)
        if b.size != 1 and b.shape != m.shape:
            raise ClaimError(f"{where}: measured has shape {m.shape} but bound has shape {b.shape}")
        bad = self._nonfinite(name, kind, measured=m, bound=b)
        if bad:
            return bad
        return judge.bound(kind, name, m, b)

    @_measurement("slope")
    def slope(self, x, y, *, expected=None, tol=None, upper=None, lower=None, log=True, confidence=None,
              rivals=None, x_name=None, y_name=None, name=None) -> Measurement:
        """Fit ``log y = a + s log x`` (or linear with ``log=False``) and judge the slope's confidence interval.

        Against ``expected +- tol``: HOLDS when the whole interval lies inside it, FAILS when the whole
        interval lies outside, INCONCLUSIVE otherwise. Against bounds (``upper`` and/or ``lower``):
        HOLDS when the interval lies within them, FAILS when it lies wholly beyond one, else
        INCONCLUSIVE. ``x`` and ``y`` must have the same shape (one point per pair); repeated ``x``
        values (several seeds per width) tighten the interval. ``rivals``: ``{name: exponent}``
        (e.g. ``{"does not converge": 0.0}``), each judged against ``exponent +- tol`` (a point
        when only bounds are given). ``x_name``/``y_name`` label the plot's axes.
        """
        __tracebackhide__ = True
        where = self._where(name)
        xa = as_float64(x, "x", where)
        ya = as_float64(y, "y", where)
        if xa.shape != ya.shape:
            raise ClaimError(f"{where}: x has shape {xa.shape} but y has shape {ya.shape}; pass one y per x "
                             f"(np.broadcast_to(x, y.shape) for several seeds per x)")
        if (expected is None) != (tol is None):
            raise ClaimError(f"{where}: give expected and tol together (got expected={expected!r}, tol={tol!r})")
        if expected is None and upper is None and lower is None:
            raise ClaimError(f"{where}: slope needs expected=..., tol=... or a bound (upper=/lower=)")
        targets = {}
        for what, v in (("expected", expected), ("upper", upper), ("lower", lower)):
            if v is None:
                continue
            arr = as_float64(v, what, where)
            if arr.size != 1:
                raise ClaimError(f"{where}: {what} must be one number, got shape {arr.shape}")
            targets[what] = arr.reshape(())
        if tol is not None:
            tol = check_tolerance_value(self.id, "tol", tol, where=f"measurement {name!r}")
        conf = self._confidence(name, confidence)

        rv = self._rivals(name, rivals, functools.partial(_one_number, where))
        labels = (as_name(x_name, "x_name", where) if x_name is not None else "x",
                  as_name(y_name, "y_name", where) if y_name is not None else "y")
        bad = self._nonfinite(name, "slope", x=xa, y=ya, **targets)
        if bad:
            return bad
        if log and (np.any(xa <= 0) or np.any(ya <= 0)):
            v = xa[xa <= 0].ravel()[0] if np.any(xa <= 0) else ya[ya <= 0].ravel()[0]
            return judge.error(name, "slope", f"a log-log slope needs positive x and y, got {float(v)!r}")
        if np.unique(xa).size < 2:
            raise ClaimError(f"{where}: slope needs at least two distinct x values, got {short(x)}")
        if "upper" in targets and "lower" in targets and float(targets["lower"]) > float(targets["upper"]):
            raise ClaimError(f"{where}: lower={lower!r} exceeds upper={upper!r}")
        if "expected" not in targets:  # a one-sided claim: a rival on its allowed side is no rival
            self._contradicts(name, rv, float(targets["lower"]) if "lower" in targets else -math.inf,
                              float(targets["upper"]) if "upper" in targets else math.inf)
        return judge.slope(name, xa, ya, expected=float(targets["expected"]) if "expected" in targets else None,
                           tol=tol, upper=float(targets["upper"]) if "upper" in targets else None,
                           lower=float(targets["lower"]) if "lower" in targets else None, log=bool(log),
                           conf=conf, rivals={k: float(v) for k, v in rv.items()}, variables=labels)

    @_measurement("samples")
    def samples(self, values, *, predicted, rtol=None, atol=None, confidence=None, axis=None, rivals=None,
                name=None) -> Measurement:
        """Judge a quantity measured over independent seeds by the confidence interval of its mean.

        ``values`` holds **one value per seed** (1-D). A 2-D array (seeds x points, say) is refused
        unless ``axis`` names the seed axis: each seed's value is then the mean over the other
        axes (stated in the measurement's detail), never thousands of correlated "samples".
        ``predicted`` is a scalar, one value per seed (paired differences), or of ``values``'s full
        shape (reduced like it). ``gap = |mean - predicted|`` ranges, over the interval, from
        ``gap_lo`` to ``gap_hi``: HOLDS when ``gap_hi <= tolerance``, FAILS when
        ``gap_lo > tolerance``, INCONCLUSIVE otherwise (too few seeds to decide). ``rivals``:
        ``{name: prediction}`` shaped like ``predicted``, judged with the same interval.
        """
        __tracebackhide__ = True
        rtol, atol, default = self._tol(name, rtol, atol)
        where = self._where(name)
        v = as_float64(values, "values", where)
        conf = self._confidence(name, confidence)
        full_shape = v.shape
        detail = {}
        if axis is None:
            if v.ndim > 1:
                raise ClaimError(
                    f"{where}: values has shape {v.shape}; samples() takes one value per independent seed (a "
                    f"1-D array). Reduce it explicitly, or pass axis= (the seed axis: each seed's value is "
                    f"then the mean over the other axes)")
            v = v.reshape(-1)
        else:
            if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -v.ndim <= axis < v.ndim:
                raise ClaimError(f"{where}: axis must be an integer axis of values (shape {v.shape}), got {axis!r}")
            v = _per_seed(v, int(axis))
            detail = {"reduced": f"values of shape {full_shape}: one value per seed along axis {int(axis)}, the "
                                 f"mean over the other axes"}

        def shaped(what: str, arr: np.ndarray) -> np.ndarray:
            if arr.size == 1:
                return arr.reshape(1)
            if axis is not None and arr.shape == full_shape:
                return _per_seed(arr, int(axis))
            if arr.ndim == 1 and arr.size == v.size:
                return arr
            raise ClaimError(f"{where}: {v.size} values (one per seed) but {what} has shape {arr.shape}")

        p = shaped("predicted", as_float64(predicted, "predicted", where))
        rv = self._rivals(name, rivals, shaped)
        bad = self._nonfinite(name, "samples", values=v, predicted=p)
        if bad:
            return bad
        return judge.samples(name, v, p, rtol, atol, conf, rv, default_tolerance=default, detail=detail)

    @_measurement("interval")
    def interval(self, estimate, ci, *, predicted=None, rtol=None, atol=None, upper=None, lower=None,
                 confidence=None, rivals=None, how: str = "", name=None) -> Measurement:
        """Judge an estimate by a confidence interval the claim computed itself (``ci = (lo, hi)``).

        For quantities that are neither a mean over seeds nor a fitted slope: a fitted line
        extrapolated with its uncertainty (:meth:`pytest_ntk.verdicts.stats.SlopeFit.mean_at`), a
        bootstrap interval, a propagated error. ``confidence`` is the interval's coverage (recorded;
        default the claim's). Against ``predicted`` (with ``rtol``/``atol``, default the claim's
        tolerance): HOLDS when the whole interval lies within the tolerance band, FAILS when it lies
        wholly outside, INCONCLUSIVE otherwise. Against ``upper``/``lower``: the same with the
        bounds. ``rivals``: ``{name: value}`` judged with the same band (points, against bounds).
        ``how`` says in words how the interval was obtained (shown in the reports).
        """
        __tracebackhide__ = True
        where = self._where(name)
        est = as_float64(estimate, "estimate", where)
        if est.size != 1:
            raise ClaimError(f"{where}: estimate must be one number, got shape {est.shape}")
        if isinstance(ci, (str, bytes)) or not hasattr(ci, "__len__") or len(ci) != 2:
            raise ClaimError(f"{where}: ci must be a pair (lo, hi), got {short(ci)}")
        lo, hi = (as_float64(v, what, where).reshape(-1) for v, what in zip(ci, ("ci lo", "ci hi")))
        if lo.size != 1 or hi.size != 1:
            raise ClaimError(f"{where}: ci must be two numbers, got {short(ci)}")
        if (predicted is None) == (upper is None and lower is None):
            raise ClaimError(f"{where}: interval needs either predicted=... or bounds (upper=/lower=), not both")
        if predicted is None and (rtol is not None or atol is not None):
            raise ClaimError(f"{where}: rtol/atol apply to predicted=..., not to bounds")
        rtol_, atol_, default = self._tol(name, rtol, atol)
        conf = self._confidence(name, confidence)
        targets = {what: as_float64(v, what, where).reshape(-1) for what, v in
                   (("predicted", predicted), ("upper", upper), ("lower", lower)) if v is not None}
        for what, arr in targets.items():
            if arr.size != 1:
                raise ClaimError(f"{where}: {what} must be one number, got shape {arr.shape}")
        rv = self._rivals(name, rivals, functools.partial(_one_number, where))
        e, l, h = float(est.reshape(())), float(lo[0]), float(hi[0])
        if not math.isfinite(e) or math.isnan(l) or math.isnan(h):
            return judge.error(name, "interval", f"the estimate {e!r} or its interval [{l!r}, {h!r}] is not a number")
        bad = self._nonfinite(name, "interval", **targets)
        if bad:
            return bad
        if not l <= e <= h:
            raise ClaimError(f"{where}: the interval [{l!r}, {h!r}] does not contain the estimate {e!r}")
        if "upper" in targets and "lower" in targets and targets["lower"][0] > targets["upper"][0]:
            raise ClaimError(f"{where}: lower={lower!r} exceeds upper={upper!r}")
        if "predicted" not in targets:  # a one-sided claim: a rival on its allowed side is no rival
            self._contradicts(name, rv, float(targets["lower"][0]) if "lower" in targets else -math.inf,
                              float(targets["upper"][0]) if "upper" in targets else math.inf)
        return judge.interval(name, e, l, h, predicted=float(targets["predicted"][0]) if "predicted" in targets else None,
                              rtol=rtol_, atol=atol_,
                              upper=float(targets["upper"][0]) if "upper" in targets else None,
                              lower=float(targets["lower"][0]) if "lower" in targets else None, conf=conf,
                              rivals={k: float(v) for k, v in rv.items()}, how=str(how),
                              default_tolerance=default and predicted is not None)

    # ------------------------------------------------------------------ the verdict
    def finish(self, *, error: BaseException | None = None, skipped: str | None = None, **meta) -> ClaimResult:
        """Close the claim: combine the measurements' verdicts with how the test ended.

        - anything recorded after :meth:`seal` makes the claim ERROR;
        - ``skipped`` (the test skipped itself, or called ``pytest.xfail``): SKIPPED, unless a
          measurement already FAILS or ERRORs -- then that verdict stands;
        - an exception other than ``ClaimFailed`` makes it ERROR; so does no measurement at all;
        - otherwise the most severe measurement verdict; a ``ClaimFailed`` the test raised itself
          turns a HOLDS or INCONCLUSIVE into FAILS.
        """
        ms = self.measurements
        late = self.late
        broken = [m for m in ms if m.verdict in (Verdict.FAILS, Verdict.ERROR)]
        if late:
            verdict = Verdict.ERROR
            message = (f"recorded after the test returned: {', '.join(late[:5])}"
                       f"{' ...' if len(late) > 5 else ''}; measurements must be recorded during the test")
        elif skipped is not None and not broken:
            verdict, message = Verdict.SKIPPED, skipped
        elif error is not None and not isinstance(error, ClaimFailed):
            verdict = Verdict.ERROR
            message = f"{type(error).__name__}: {error}"
        elif not ms:
            verdict, message = Verdict.ERROR, "claim recorded no measurement"
        else:
            verdict = combine(m.verdict for m in ms)
            decisive = [m for m in ms if m.verdict is verdict]
            message = decisive[0].message if decisive else ""
            if error is not None and verdict in (Verdict.HOLDS, Verdict.INCONCLUSIVE):
                # the test itself raised ClaimFailed: the prediction is violated whatever was measured
                verdict, message = Verdict.FAILS, str(error)
        meta.setdefault("nodeid", "")  # the plugin passes it; a notebook need not
        meta.setdefault("settings", self.settings)
        meta.setdefault("profile", self._profile)
        return ClaimResult(
            id=self.id, verdict=verdict, message=message, seed=self.seed, measurements=list(ms),
            stages=list(self.stages), artifacts=list(self.artifacts), **meta,
        )


def _one_number(where: str, what: str, arr: np.ndarray) -> np.ndarray:
    if arr.size != 1:
        raise ClaimError(f"{where}: {what} must be one number, got shape {arr.shape}")
    return arr.reshape(())


def _per_seed(a: np.ndarray, axis: int) -> np.ndarray:
    """One value per index along ``axis``: the mean over every other axis."""
    moved = np.moveaxis(a, axis, 0)
    return moved.reshape(moved.shape[0], -1).mean(axis=1)
