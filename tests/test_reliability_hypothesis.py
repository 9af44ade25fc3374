"""Hostile inputs to the claim API: no input makes a measurement HOLDS that should not, and none crashes.

Each property feeds the recorder (the ``claim`` fixture) values drawn by hypothesis -- NaN, +-inf,
subnormals, 1e308, integers beyond float64, booleans, None, strings, complex numbers, empty,
ragged and mismatched arrays, object arrays, invalid tolerances -- and derives the verdict that
should come out independently: with Python floats (IEEE arithmetic, like numpy's, but written
out element by element) and, for HOLDS, with exact rational arithmetic (``fractions.Fraction``).

Every call runs with all warnings turned into errors: a measurement may only return or raise
``ClaimFailed`` (FAILS) or ``ClaimError`` (ERROR); an ERROR message names the claim and the bad
value; and the claim's result always serialises to strict JSON (no result is lost).
The last test runs a real pytest session over a file of hostile claims.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pytest_ntk.verdicts import ClaimError, ClaimFailed, ClaimRecorder, Tolerance, Verdict

pytest_plugins = ["pytester"]

CLAIM = "reliability.hostile"
DEFAULT = Tolerance(rtol=0.05, atol=0.0, confidence=0.95)
TINY = Fraction(2) ** -1074  # the smallest subnormal: the absolute error of one rounding near 0
ULPS = Fraction(1, 2**48)  # a few roundings' relative error

# NTK_HYPOTHESIS_EXAMPLES=20000 for a long hunt; the default keeps the file at a few seconds
FAST = settings(max_examples=int(os.environ.get("NTK_HYPOTHESIS_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------- hostile values
@dataclass(frozen=True)
class Hostile:
    """A value to pass to the recorder and what it means.

    ``reals`` is its elements as Python floats (row-major) and ``shape`` its shape when it is a
    valid numeric input (NaN/inf included: those are numeric, but never HOLDS); both are None
    when the recorder must refuse it, and ``token`` is then a piece of text the ERROR message
    must contain (the bad value, or what is wrong with it).
    """

    value: object
    reals: tuple | None
    shape: tuple | None
    token: str | None = None

    @property
    def valid(self) -> bool:
        return self.reals is not None


EXTREMES = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-308, -3e-310, 1.7976931348623157e308,
            -1.7976931348623157e308, 1e308, -1e308, 1e-300, 1.0, -1.0, 0.5, 3.0]
finite = st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=False, allow_infinity=False))
nonfinite = st.sampled_from([math.nan, math.inf, -math.inf])
any_float = st.one_of(finite, finite, finite, nonfinite)


def _scalar(x: float) -> Hostile:
    return Hostile(x, (x,), ())


def _exact_int(n: int, wrap=lambda n: n) -> Hostile:
    """An integer is a valid measurement only when float64 holds it exactly (else it is refused, naming
    what it would round to: judging a rounded number could turn a FAILS into a HOLDS)."""
    if abs(n) <= 2**53 or int(float(n)) == n:
        return Hostile(wrap(n), (float(n),), ())
    return Hostile(wrap(n), None, None, "exactly")


def _f32(x: float) -> Hostile:
    with np.errstate(all="ignore"):  # float32 overflow to inf is one of the hostile inputs
        v = np.float32(x)
    return Hostile(v, (float(v),), ())


valid_scalar = st.one_of(
    any_float.map(_scalar),
    st.integers(-(2**80), 2**80).map(_exact_int),
    st.sampled_from([2**53 + 1, -(2**53) - 1, 2**62 + 1, 2**63 - 1]).map(_exact_int),
    any_float.map(_f32),
    any_float.map(lambda x: Hostile(np.float64(x), (x,), ())),
    any_float.map(lambda x: Hostile(np.array(x), (x,), ())),  # 0-d array
    st.integers(-(2**62), 2**62).map(lambda n: _exact_int(n, np.int64)),
)

invalid_scalar = st.one_of(
    st.booleans().map(lambda b: Hostile(b, None, None, "boolean")),
    st.booleans().map(lambda b: Hostile(np.bool_(b), None, None, "boolean")),
    st.just(Hostile(None, None, None, "None")),
    st.text(max_size=6).map(lambda s: Hostile(s, None, None, repr(s))),
    st.sampled_from(["1.5", "nan", "inf", "1e308", " 2 "]).map(lambda s: Hostile(s, None, None, repr(s))),
    st.binary(max_size=4).map(lambda b: Hostile(b, None, None, repr(b))),
    st.builds(complex, finite, finite).map(lambda c: Hostile(c, None, None, "complex")),
    st.integers(2**1024, 2**1100).map(lambda n: Hostile(n, None, None, "integer")),
    st.integers(2**1024, 2**1100).map(lambda n: Hostile(-n, None, None, "integer")),
    st.just(Hostile(object(), None, None, "object")),
)


@st.composite
def array_like(draw, elements=any_float, max_len=4):
    """Lists, nested lists and numpy arrays: valid ones with their reals, invalid ones with a token."""
    kind = draw(st.sampled_from(
        ["list", "list", "tuple", "nested", "ndarray64", "ndarray32", "int_array", "object_array",
         "empty", "ragged", "bool_list", "bool_array", "complex_array", "str_list", "none_list", "str_array"]))
    xs = draw(st.lists(elements, min_size=1, max_size=max_len))
    n = len(xs)
    if kind == "list":
        return Hostile(list(xs), tuple(xs), (n,))
    if kind == "tuple":
        return Hostile(tuple(xs), tuple(xs), (n,))
    if kind == "nested":
        rows = draw(st.integers(1, 3))
        grid = [list(xs) for _ in range(rows)]
        return Hostile(grid, tuple(xs) * rows, (rows, n))
    if kind == "ndarray64":
        return Hostile(np.array(xs, dtype=np.float64), tuple(xs), (n,))
    if kind == "ndarray32":
        with np.errstate(all="ignore"):
            a = np.array(xs, dtype=np.float32)
        return Hostile(a, tuple(float(v) for v in a), (n,))
    if kind == "int_array":
        ints = draw(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=max_len))
        if not all(_exact_int(v).valid for v in ints):
            return Hostile(np.array(ints, dtype=np.int64), None, None, "exactly")
        return Hostile(np.array(ints, dtype=np.int64), tuple(float(v) for v in ints), (len(ints),))
    if kind == "object_array":
        return Hostile(np.array(xs, dtype=object), tuple(xs), (n,))
    if kind == "empty":
        return Hostile(draw(st.sampled_from([[], (), np.array([]), np.zeros((0, 3)), [[]]])), None, None, "empty")
    if kind == "ragged":
        return Hostile([list(xs), list(xs) + [1.0]], None, None, "rectangular")
    if kind == "bool_list":
        return Hostile(list(xs) + [True], None, None, "boolean")
    if kind == "bool_array":
        return Hostile(np.array(xs) > 0, None, None, "boolean")
    if kind == "complex_array":
        return Hostile(np.array(xs, dtype=complex) + 1j, None, None, "complex")
    if kind == "str_list":
        return Hostile(list(xs) + ["1.0"], None, None, "'1.0'")
    if kind == "none_list":
        return Hostile(list(xs) + [None], None, None, "None")
    return Hostile(np.array([str(x) for x in xs]), None, None, "dtype")  # str_array


hostile = st.one_of(valid_scalar, valid_scalar, invalid_scalar, array_like())
benign = st.one_of(finite.map(_scalar), array_like(elements=finite))  # valid, but maybe of the wrong shape

# a tolerance argument: (value, valid float or None when invalid, token)
tolerance_arg = st.one_of(
    st.just((None, 0.0, None)),
    st.sampled_from([0.0, 1e-12, 0.05, 1.0, 1e308, 5e-324]).map(lambda t: (t, t, None)),
    st.floats(0.0, 1e6).map(lambda t: (t, t, None)),
    st.integers(0, 10).map(lambda t: (t, float(t), None)),
    st.sampled_from([-1.0, -5e-324, -0.1]).map(lambda t: (t, None, repr(t))),
    st.sampled_from([math.nan, math.inf, -math.inf]).map(lambda t: (t, None, repr(t))),
    st.sampled_from([True, False, "0.1", np.bool_(True)]).map(lambda t: (t, None, repr(t))),
)


# ---------------------------------------------------------------------------- running the recorder
def run(method: str, *args, **kwargs):
    """Call one recorder method with every warning an error; return (verdict, message, recorder).

    Anything but a return, ClaimFailed or ClaimError propagates and fails the property.
    """
    rec = ClaimRecorder(CLAIM, DEFAULT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            m = getattr(rec, method)(*args, **kwargs)
        except ClaimFailed as exc:
            verdict, message, error = Verdict.FAILS, str(exc), exc
        except ClaimError as exc:
            verdict, message, error = Verdict.ERROR, str(exc), exc
        else:
            verdict, message, error = m.verdict, m.message, None
            assert verdict in (Verdict.HOLDS, Verdict.INCONCLUSIVE), "a returned measurement HOLDS or is INCONCLUSIVE"
        result = rec.finish(error=error)
    assert result.verdict is verdict, "the claim's verdict is the measurement's"
    event(f"{method}: {verdict.value}")
    json.dumps(result.to_dict(), allow_nan=False)  # the result survives into the JSON report
    if verdict in (Verdict.ERROR, Verdict.FAILS):
        assert repr(CLAIM) in message, message
    return verdict, message


def names_one_of(message: str, tokens) -> bool:
    tokens = [t for t in tokens if t]
    return any(t in message for t in tokens)


def nonfinite_token(reals) -> str | None:
    for x in reals:
        if not math.isfinite(x):
            return repr(x)
    return None


def _rtol_atol(rtol, atol):
    """The tolerance the recorder must use: the claim's default when neither is given, else 0 for the other."""
    if rtol[0] is None and atol[0] is None:
        return DEFAULT.rtol, DEFAULT.atol, []
    bad = [t[2] for t in (rtol, atol) if t[1] is None]
    return rtol[1], atol[1], bad


def _kwargs(**pairs):
    return {k: v[0] for k, v in pairs.items() if v[0] is not None}


def _shapes_match(m: Hostile, p: Hostile) -> bool:
    return m.shape == p.shape or len(p.reals) == 1


def _broadcast(m: Hostile, p: Hostile) -> list[tuple[float, float]]:
    """Element pairs: a one-element prediction applies to every measured element."""
    ps = p.reals * len(m.reals) if len(p.reals) == 1 else p.reals
    return list(zip(m.reals, ps))


# ---------------------------------------------------------------------------- close
def expected_close(m: Hostile, p: Hostile, rtol, atol):
    """(verdict, tokens the ERROR message may name): |m - p| <= atol + rtol |p| with Python floats."""
    r, a, bad_tol = _rtol_atol(rtol, atol)
    if bad_tol:
        return Verdict.ERROR, bad_tol
    if not m.valid or not p.valid:
        return Verdict.ERROR, [h.token for h in (m, p) if not h.valid]
    if not _shapes_match(m, p):
        return Verdict.ERROR, [str(m.shape), str(p.shape)]
    bad = nonfinite_token(m.reals) or nonfinite_token(p.reals)
    if bad:
        return Verdict.ERROR, [bad]
    holds = True
    for mi, pi in _broadcast(m, p):
        gap = abs(mi - pi)
        if gap == math.inf:  # |m - p| beyond float64: it cannot be judged, and must never HOLDS
            return Verdict.ERROR, ["overflow"]
        holds &= gap <= a + r * abs(pi)  # an overflowing tolerance (inf) exceeds every finite gap: correct
    return (Verdict.HOLDS if holds else Verdict.FAILS), []


@FAST
@given(m=hostile, p=st.one_of(hostile, benign), rtol=tolerance_arg, atol=tolerance_arg)
@example(m=_scalar(1e308), p=_scalar(-1e308), rtol=(1e308, 1e308, None), atol=(None, 0.0, None))
@example(m=_scalar(5e-324), p=_scalar(0.0), rtol=(None, 0.0, None), atol=(5e-324, 5e-324, None))
@example(m=_scalar(1e-323), p=_scalar(0.0), rtol=(None, 0.0, None), atol=(5e-324, 5e-324, None))
@example(m=Hostile([True, 2.0], None, None, "boolean"), p=_scalar(1.0), rtol=(1.0, 1.0, None),
         atol=(None, 0.0, None))
def test_close_never_holds_wrongly(m, p, rtol, atol):
    verdict, message = run("close", m.value, p.value, **_kwargs(rtol=rtol, atol=atol))
    want, tokens = expected_close(m, p, rtol, atol)
    assert verdict is want, (verdict, want, message)
    if want is Verdict.ERROR:
        assert names_one_of(message, tokens), (tokens, message)
    if verdict is Verdict.HOLDS:  # exact arithmetic agrees, up to the roundings of gap and tolerance
        r, a, _ = _rtol_atol(rtol, atol)
        for mi, pi in _broadcast(m, p):
            gap = abs(Fraction(mi) - Fraction(pi))
            tol = Fraction(a) + Fraction(r) * abs(Fraction(pi))
            assert gap <= tol * (1 + ULPS) + TINY


# ---------------------------------------------------------------------------- at_most / at_least
@FAST
@given(kind=st.sampled_from(["at_most", "at_least"]), m=hostile, b=st.one_of(hostile, benign))
@example(kind="at_most", m=_scalar(1e308), b=_scalar(-1e308))
@example(kind="at_least", m=_scalar(5e-324), b=_scalar(0.0))
@example(kind="at_most", m=_scalar(5e-324), b=_scalar(-0.0))
def test_bounds_never_hold_wrongly(kind, m, b):
    verdict, message = run(kind, m.value, b.value)
    if not m.valid or not b.valid:
        assert verdict is Verdict.ERROR
        assert names_one_of(message, [h.token for h in (m, b) if not h.valid]), message
        return
    if not _shapes_match(m, b):
        assert verdict is Verdict.ERROR and str(m.shape) in message and str(b.shape) in message
        return
    bad = nonfinite_token(m.reals) or nonfinite_token(b.reals)
    if bad:
        assert verdict is Verdict.ERROR and bad in message
        return
    pairs = _broadcast(m, b)
    holds = all((mi <= bi) if kind == "at_most" else (mi >= bi) for mi, bi in pairs)  # comparisons are exact
    assert verdict is (Verdict.HOLDS if holds else Verdict.FAILS), (verdict, pairs, message)


# ---------------------------------------------------------------------------- samples
small_lists = st.lists(any_float, min_size=1, max_size=6)
confidence_arg = st.one_of(
    st.just((None, None)),
    st.floats(0.5, 0.999).map(lambda c: (c, None)),
    st.sampled_from([0.0, 1.0, 1.5, -0.1, math.nan, True, "0.9"]).map(lambda c: (c, repr(c))),
)


@FAST
@given(values=st.one_of(small_lists.map(lambda xs: Hostile(xs, tuple(xs), (len(xs),))), hostile),
       predicted=st.one_of(any_float.map(_scalar), small_lists.map(lambda xs: Hostile(xs, tuple(xs), (len(xs),))),
                           invalid_scalar),
       rtol=tolerance_arg, atol=tolerance_arg, confidence=confidence_arg)
@example(values=Hostile([9e307] * 3, (9e307,) * 3, (3,)), predicted=Hostile([1e308] * 3, (1e308,) * 3, (3,)),
         rtol=(0.05, 0.05, None), atol=(None, 0.0, None), confidence=(None, None))
@example(values=Hostile([1e308, -1e308, 1e308], (1e308, -1e308, 1e308), (3,)), predicted=_scalar(0.0),
         rtol=(None, 0.0, None), atol=(1e308, 1e308, None), confidence=(None, None))
@example(values=Hostile([[1.0]], (1.0,), (1, 1)), predicted=_scalar(1.0),
         rtol=(None, 0.0, None), atol=(0.0, 0.0, None), confidence=(None, None))
@example(values=Hostile([2.0, 2.0], (2.0, 2.0), (2,)), predicted=_scalar(2.0),
         rtol=(None, 0.0, None), atol=(0.0, 0.0, None), confidence=(None, None))
def test_samples_never_hold_wrongly(values, predicted, rtol, atol, confidence):
    kwargs = _kwargs(rtol=rtol, atol=atol)
    if confidence[0] is not None:
        kwargs["confidence"] = confidence[0]
    verdict, message = run("samples", values.value, predicted=predicted.value, **kwargs)
    r, a, bad_tol = _rtol_atol(rtol, atol)
    bad = bad_tol + [h.token for h in (values, predicted) if not h.valid] + ([confidence[1]] if confidence[1] else [])
    if bad:  # several problems: the message names the first one the recorder meets
        for h in (values, predicted):
            if h.valid:
                bad += [nonfinite_token(h.reals), str(len(h.reals))]
        assert verdict is Verdict.ERROR and names_one_of(message, bad), (bad, message)
        return
    if values.shape is not None and len(values.shape) > 1:  # samples() takes one value per seed (1-D)
        assert verdict is Verdict.ERROR and "one value per independent seed" in message, message
        return
    v, p = values.reals, predicted.reals
    if len(p) not in (1, len(v)):
        assert verdict is Verdict.ERROR and str(len(v)) in message and str(len(p)) in message
        return
    nf = nonfinite_token(v) or nonfinite_token(p)
    if nf:
        assert verdict is Verdict.ERROR and nf in message
        return
    ps = p if len(p) == len(v) else p * len(v)
    diffs = [Fraction(vi) - Fraction(pi) for vi, pi in zip(v, ps)]
    gap = abs(sum(diffs) / len(diffs))  # exact
    tol = Fraction(a) + Fraction(r) * sum(abs(Fraction(pi)) for pi in ps) / len(ps)
    huge = max(abs(x) for x in v + p) > 1e300
    if verdict is Verdict.ERROR:
        assert huge, f"ERROR only where float64 overflows: {message}"
        return
    if len(v) == 1:
        assert verdict is Verdict.INCONCLUSIVE, "one sample decides nothing"
    if verdict is Verdict.HOLDS:  # the whole interval lies inside, so the point estimate does
        assert gap <= tol * (1 + ULPS) + TINY * 8, (float(gap), float(tol), message)
    if verdict is Verdict.FAILS:
        assert gap * (1 + ULPS) + TINY * 8 >= tol, (float(gap), float(tol), message)
    if len(v) >= 2 and all(d == 0 for d in diffs) and not huge:
        assert verdict is Verdict.HOLDS, "measured exactly the prediction on every seed"


# ---------------------------------------------------------------------------- slope
def _ols_slope(x, y) -> Fraction:
    """The least-squares slope in exact arithmetic."""
    xs, ys = [Fraction(v) for v in x], [Fraction(v) for v in y]
    n = len(xs)
    xm, ym = sum(xs) / n, sum(ys) / n
    sxx = sum((a - xm) ** 2 for a in xs)
    return sum((a - xm) * (b - ym) for a, b in zip(xs, ys)) / sxx


def _slope_error_bound(x, y) -> float:
    """A generous bound on the float rounding error of a least-squares slope over the data."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    with np.errstate(all="ignore"):
        dx = (x - np.mean(x / 4) * 4) / max(np.max(np.abs(x)), 1e-300)
        dy = (y - np.mean(y / 4) * 4) / max(np.max(np.abs(y)), 1e-300)
        sxx = float(np.sum(dx * dx))
        scale = float(np.sum(np.abs(dx) * np.abs(dy))) / sxx * max(np.max(np.abs(y)), 1e-300) / max(np.max(np.abs(x)), 1e-300)
    return float(1e-10 * scale) if math.isfinite(scale) else math.inf


slope_points = st.one_of(
    st.lists(st.floats(0.1, 1e4), min_size=2, max_size=6),
    st.lists(finite, min_size=2, max_size=6),
    st.lists(any_float, min_size=1, max_size=5),
)
slope_target = st.one_of(st.floats(-5, 5), finite, nonfinite, st.sampled_from([True, "1.0", [1.0, 2.0], None]))


@FAST
@given(x=slope_points, y=slope_points, log=st.booleans(), expected=slope_target, tol=tolerance_arg,
       upper=st.one_of(st.none(), slope_target), lower=st.one_of(st.none(), slope_target),
       confidence=confidence_arg)
@example(x=[1e-320, 2e-320, 3e-320], y=[1.0, 2.0, 3.0], log=False, expected=1.0, tol=(0.1, 0.1, None),
         upper=None, lower=None, confidence=(None, None))
@example(x=[1e200, 2e200, 3e200], y=[1.0, 2.0, 3.0], log=False, expected=0.0, tol=(1e-300, 1e-300, None),
         upper=None, lower=None, confidence=(None, None))
@example(x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.0], log=True, expected=None, tol=(None, 0.0, None),
         upper=math.nan, lower=0.0, confidence=(None, None))
def test_slope_never_holds_wrongly(x, y, log, expected, tol, upper, lower, confidence):
    kwargs = {"log": log}
    if expected is not None:
        kwargs["expected"] = expected
    if tol[0] is not None:
        kwargs["tol"] = tol[0]
    for key, value in (("upper", upper), ("lower", lower)):
        if value is not None:
            kwargs[key] = value
    if confidence[0] is not None:
        kwargs["confidence"] = confidence[0]
    verdict, message = run("slope", x, y, **kwargs)

    def number(t):
        return not isinstance(t, (bool, str, list)) and t is not None and math.isfinite(t)

    data_ok = all(math.isfinite(v) for v in x + y) and len(x) == len(y) and len(set(x)) >= 2
    if log:
        data_ok &= all(v > 0 for v in x + y)
    targets_ok = all(number(t) for t in (expected, upper, lower) if t is not None)
    spec_ok = (expected is None) == (tol[0] is None) and (expected, upper, lower) != (None, None, None)
    tol_ok = tol[0] is None or tol[1] is not None
    conf_ok = confidence[1] is None
    ordered = not (number(upper) and number(lower) and lower > upper)
    if not (data_ok and targets_ok and spec_ok and tol_ok and conf_ok and ordered):
        assert verdict is Verdict.ERROR, (verdict, message)
        return
    if verdict is Verdict.ERROR:  # only a fit float64 cannot represent may error here
        assert "not finite in float64" in message, message
        return
    if len(x) == 2:
        assert verdict is Verdict.INCONCLUSIVE, "two points fit any line exactly: no interval"
    lo_ok, hi_ok = -math.inf, math.inf
    if expected is not None:
        lo_ok, hi_ok = expected - tol[1], expected + tol[1]
    if upper is not None:
        hi_ok = min(hi_ok, upper)
    if lower is not None:
        lo_ok = max(lo_ok, lower)
    xs, ys = (np.log(x), np.log(y)) if log else (x, y)
    slope = float(_ols_slope(list(map(float, xs)), list(map(float, ys))))
    err = _slope_error_bound(xs, ys) + 1e-12 * (abs(lo_ok) if math.isfinite(lo_ok) else 0) \
        + 1e-12 * (abs(hi_ok) if math.isfinite(hi_ok) else 0)
    if verdict is Verdict.HOLDS:
        assert lo_ok - err <= slope <= hi_ok + err, (slope, lo_ok, hi_ok, message)
    if verdict is Verdict.FAILS:
        assert slope <= lo_ok + err or slope >= hi_ok - err, (slope, lo_ok, hi_ok, message)


@st.composite
def power_law(draw):
    """Well-formed but numerically hard slope data: clustered, huge, tiny or wide x; noisy y."""
    n = draw(st.integers(3, 8))
    centre = draw(st.sampled_from([1.0, 1e-200, 1e-300, 1e150, 1e300, 7.0]))
    spread = draw(st.sampled_from([1.0, 1e-3, 1e-9, 1e-14, 4.0]))
    log = draw(st.booleans())
    steps = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n, unique=True))
    x = [centre * (1.0 + spread * k) for k in steps]
    s_true = draw(st.floats(-3, 3))
    noise = draw(st.lists(st.floats(-1e-3, 1e-3), min_size=n, max_size=n))
    if log:
        y = [math.exp(s_true * math.log(xi / centre) + e) for xi, e in zip(x, noise)]
    else:
        y = [s_true * (xi - centre) / (centre * spread) + e for xi, e in zip(x, noise)]
    expected = draw(st.one_of(st.just(s_true), st.floats(-3, 3)))
    tol = draw(st.sampled_from([0.0, 1e-6, 0.01, 0.1, 1.0]))
    return x, y, log, expected, tol


@FAST
@given(data=power_law())
def test_slope_on_hard_data_agrees_with_exact_least_squares(data):
    """On well-formed data that float64 finds hard, a verdict agrees with the exact least-squares slope."""
    x, y, log, expected, tol = data
    verdict, message = run("slope", x, y, log=log, expected=expected, tol=tol)
    if verdict is Verdict.ERROR:
        assert "not finite in float64" in message or "distinct x" in message or "positive" in message, message
        return
    xs, ys = (np.log(x), np.log(y)) if log else (x, y)
    if len(set(map(float, xs))) < 2:
        return
    slope = float(_ols_slope(list(map(float, xs)), list(map(float, ys))))
    err = _slope_error_bound(xs, ys) + 1e-12 * (1 + abs(expected))
    if verdict is Verdict.HOLDS:
        assert abs(slope - expected) <= tol + err, (slope, expected, tol, message)
    if verdict is Verdict.FAILS:
        assert abs(slope - expected) >= tol - err, (slope, expected, tol, message)


@FAST
@given(v=st.lists(st.sampled_from([1.0, 1e-300, 1e300, 5e-324, 3.0]), min_size=2, max_size=6).flatmap(
           lambda scales: st.tuples(*[st.floats(-2, 2).map(lambda z, s=s: z * s) for s in scales])),
       p=st.sampled_from([0.0, 1.0, 1e300, -1e300, 5e-324]), rtol=st.sampled_from([0.0, 0.05, 1.0, 3.0]),
       atol=st.sampled_from([0.0, 5e-324, 1e-300, 0.5, 1e300]))
def test_samples_on_valid_data_agree_with_exact_mean(v, p, rtol, atol):
    """Valid samples at every scale: HOLDS only if the exact mean gap is within tolerance, FAILS only if not."""
    verdict, message = run("samples", list(v), predicted=p, rtol=rtol, atol=atol)
    gap = abs(sum(Fraction(x) - Fraction(p) for x in v) / len(v))
    tol = Fraction(atol) + Fraction(rtol) * abs(Fraction(p))
    if verdict is Verdict.ERROR:
        assert "overflows float64" in message and max(abs(x) for x in (*v, p)) > 1e299, message
    if verdict is Verdict.HOLDS:
        assert gap <= tol * (1 + ULPS) + TINY * 8, (float(gap), float(tol), message)
    if verdict is Verdict.FAILS:
        assert gap * (1 + ULPS) + TINY * 8 >= tol, (float(gap), float(tol), message)


# ---------------------------------------------------------------------------- a pytest session of hostile claims
HOSTILE_CLAIMS = '''
import math
import warnings

import numpy as np
import pytest


@pytest.mark.claim("hostile.nan", source="test", statement="NaN never holds")
def test_nan(claim):
    claim.close(float("nan"), 1.0, rtol=1e9, atol=1e9)


@pytest.mark.claim("hostile.inf_in_array", source="test", statement="inf never holds")
def test_inf_in_array(claim):
    claim.close([1.0, 2.0, 3.0], [1.0, math.inf, 3.0], rtol=1e9)


@pytest.mark.claim("hostile.overflow_gap", source="test", statement="an overflowing gap never holds")
def test_overflow_gap(claim):
    claim.close(1e308, -1e308, rtol=1e308)


@pytest.mark.claim("hostile.float32_overflow", source="test", statement="float32 overflow never holds")
def test_float32_overflow(claim):
    with np.errstate(over="ignore"):
        value = np.float32(3e38) * np.float32(10.0)
    claim.at_most(value, 1e39)


@pytest.mark.claim("hostile.nan_tolerance", source="test", statement="a NaN tolerance is no tolerance")
def test_nan_tolerance(claim):
    claim.close(1.0, 1.0, rtol=float("nan"))


@pytest.mark.claim("hostile.negative_tolerance", source="test", statement="negative tolerance")
def test_negative_tolerance(claim):
    claim.samples([1.0, 1.0, 1.0], predicted=1.0, atol=-0.5)


@pytest.mark.claim("hostile.empty", source="test", statement="nothing measured")
def test_empty(claim):
    claim.at_least([], 0.0)


@pytest.mark.claim("hostile.shapes", source="test", statement="mismatched shapes")
def test_shapes(claim):
    claim.close(np.ones((2, 3)), np.ones((3, 2)))


@pytest.mark.claim("hostile.string", source="test", statement="a string is not a measurement")
def test_string(claim):
    claim.close("0.99", 1.0)


@pytest.mark.claim("hostile.boolean", source="test", statement="a comparison is not a measurement")
def test_boolean(claim):
    claim.at_least(np.allclose([1.0], [1.0]), 1)


@pytest.mark.claim("hostile.none", source="test", statement="None is not a measurement")
def test_none(claim):
    claim.samples([1.0, None, 1.0], predicted=1.0)


@pytest.mark.claim("hostile.slope_nan_bound", source="test", statement="a NaN bound is no bound")
def test_slope_nan_bound(claim):
    claim.slope([1.0, 2.0, 4.0], [1.0, 2.0, 4.0], lower=0.0, upper=float("nan"))


@pytest.mark.claim("hostile.subnormal", source="test", statement="subnormals are numbers")
def test_subnormal(claim):
    claim.close(5e-324, 0.0, atol=5e-324)


@pytest.mark.claim("hostile.fails", source="test", statement="a plain violation")
def test_fails(claim):
    claim.close(1e-308, 0.0, atol=5e-324)
'''

HOSTILE_VERDICTS = {
    "hostile.nan": ("ERROR", ["nan"]),
    "hostile.inf_in_array": ("ERROR", ["inf"]),
    "hostile.overflow_gap": ("ERROR", ["overflow", "1e+308"]),
    "hostile.float32_overflow": ("ERROR", ["inf"]),
    "hostile.nan_tolerance": ("ERROR", ["rtol", "nan"]),
    "hostile.negative_tolerance": ("ERROR", ["atol", "-0.5"]),
    "hostile.empty": ("ERROR", ["empty"]),
    "hostile.shapes": ("ERROR", ["(2, 3)", "(3, 2)"]),
    "hostile.string": ("ERROR", ["'0.99'"]),
    "hostile.boolean": ("ERROR", ["boolean", "True"]),
    "hostile.none": ("ERROR", ["None"]),
    "hostile.slope_nan_bound": ("ERROR", ["upper", "nan"]),
    "hostile.subnormal": ("HOLDS", []),
    "hostile.fails": ("FAILS", ["1e-308"]),
}


def test_hostile_claims_in_a_pytest_session(pytester):
    """A session of hostile claims, with warnings as errors: every claim gets a verdict, none crashes it."""
    pytester.makepyfile(test_hostile=HOSTILE_CLAIMS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error", "--ntk-json=report.json")
    assert "INTERNALERROR" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=len(HOSTILE_VERDICTS) - 1)
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["complete"] is True
    claims = {c["id"]: c for c in report["claims"]}
    assert set(claims) == set(HOSTILE_VERDICTS)
    for claim_id, (verdict, tokens) in HOSTILE_VERDICTS.items():
        c = claims[claim_id]
        assert c["verdict"] == verdict, (claim_id, c["message"])
        if verdict == "ERROR":
            assert repr(claim_id) in c["message"], c["message"]
        for token in tokens:
            assert token in c["message"], (claim_id, token, c["message"])
    # the terminal table shows each ERROR with its message
    out = result.stdout.str()
    assert "hostile.overflow_gap" in out and "overflows float64" in out
