"""The verdict model, driven directly (no pytest session): ClaimRecorder, Tolerance, statistics.

Expected values are worked out by hand from the inputs (or with scipy.stats, an independent
implementation of the same intervals), never copied from the recorder's own output.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from pytest_ntk.verdicts import (
    ClaimError,
    ClaimFailed,
    ClaimRecorder,
    ClaimResult,
    Measurement,
    Tolerance,
    Verdict,
    combine,
    derive_seed,
    fit_slope,
    mean_ci,
)

CLAIM = "unit.claim"


def recorder(rtol=0.05, atol=0.0, confidence=0.95, **kw) -> ClaimRecorder:
    return ClaimRecorder(CLAIM, Tolerance(rtol, atol, confidence), **kw)


def only(rec: ClaimRecorder) -> Measurement:
    assert len(rec.measurements) == 1
    return rec.measurements[0]


# ---------------------------------------------------------------------------- close
def test_close_holds_with_the_claims_tolerance():
    rec = recorder(rtol=0.05)
    m = rec.close(1.04, 1.0)
    assert m.verdict is Verdict.HOLDS and m.kind == "close" and m.name == "close"
    assert m.measured == 1.04 and m.predicted == 1.0
    assert m.gap == pytest.approx(0.04)
    assert m.tolerance == pytest.approx(0.05)
    assert m.margin == pytest.approx(0.01)
    assert (m.rtol, m.atol) == (0.05, 0.0)
    assert rec.finish().verdict is Verdict.HOLDS


def test_close_fails_raises_claimfailed_which_is_an_assertionerror():
    rec = recorder()
    with pytest.raises(ClaimFailed) as info:
        rec.close(1.2, 1.0, rtol=0.1)
    assert isinstance(info.value, AssertionError)
    assert CLAIM in str(info.value)
    m = only(rec)
    assert m.verdict is Verdict.FAILS
    assert m.gap == pytest.approx(0.2) and m.tolerance == pytest.approx(0.1)
    assert m.margin == pytest.approx(-0.1)
    result = rec.finish(error=info.value)
    assert result.verdict is Verdict.FAILS
    assert "gap 0.2 > tolerance 0.1" in result.message


def test_close_boundary_is_inclusive():
    # 1.5 - 1.0 = 0.5 exactly in binary floating point: gap == tolerance holds
    m = recorder().close(1.5, 1.0, atol=0.5)
    assert m.verdict is Verdict.HOLDS and m.margin == 0.0


def test_close_tolerance_is_atol_plus_rtol_times_predicted():
    m = recorder().close(2.3, 2.0, rtol=0.1, atol=0.15)  # tolerance 0.15 + 0.1 * 2 = 0.35 >= 0.3
    assert m.verdict is Verdict.HOLDS
    assert m.tolerance == pytest.approx(0.35) and m.gap == pytest.approx(0.3)
    # a negative prediction uses |predicted|
    m = recorder().close(-2.3, -2.0, rtol=0.1, atol=0.15, name="neg")
    assert m.tolerance == pytest.approx(0.35)


def test_close_explicit_rtol_sets_atol_to_zero_and_vice_versa():
    rec = recorder(rtol=0.5, atol=1.0)
    with pytest.raises(ClaimFailed):
        rec.close(1.2, 1.0, rtol=0.1)  # the claim's atol=1.0 would have made this hold
    m = rec.measurements[0]
    assert (m.rtol, m.atol) == (0.1, 0.0)
    with pytest.raises(ClaimFailed):
        rec.close(1.4, 1.0, atol=0.3)  # the claim's rtol=0.5 would have made this hold
    assert (rec.measurements[1].rtol, rec.measurements[1].atol) == (0.0, 0.3)


def test_close_defaults_to_the_claims_atol():
    m = recorder(rtol=0.0, atol=0.25).close(1.2, 1.0)
    assert m.verdict is Verdict.HOLDS and m.tolerance == pytest.approx(0.25)


def test_close_arrays_report_the_worst_element_by_margin_not_by_gap():
    # gaps [0.4, 0.05], tolerances [1.04, 0.1], margins [0.64, 0.05]: element 1 decides
    m = recorder().close(np.array([10.0, 1.05]), np.array([10.4, 1.0]), rtol=0.1)
    assert m.verdict is Verdict.HOLDS
    assert m.measured == 1.05 and m.predicted == 1.0
    assert m.gap == pytest.approx(0.05) and m.margin == pytest.approx(0.05)
    assert m.n == 2
    assert m.detail["max_gap"] == pytest.approx(0.4)


def test_close_array_fails_on_one_bad_element():
    rec = recorder()
    # gaps [0, 0.5, 0.3], tolerances [0.1, 0.2, 0.33], margins [0.1, -0.3, 0.03]
    with pytest.raises(ClaimFailed) as info:
        rec.close([1.0, 2.5, 3.0], [1.0, 2.0, 3.3], rtol=0.1)
    m = only(rec)
    assert m.verdict is Verdict.FAILS
    assert (m.measured, m.predicted) == (2.5, 2.0)
    assert m.margin == pytest.approx(-0.3)
    assert "worst of 3 elements" in str(info.value)


def test_close_two_dimensional_arrays_and_scalar_prediction():
    measured = np.array([[1.0, 1.01], [0.97, 1.02]])
    m = recorder().close(measured, 1.0)  # predicted broadcasts; worst element is 0.97
    assert m.verdict is Verdict.HOLDS
    assert m.measured == 0.97 and m.gap == pytest.approx(0.03) and m.n == 4
    assert "(1, 0)" in m.message


@pytest.mark.parametrize(
    "measured, predicted",
    [
        (3, 3),  # ints
        ([1, 2], [1, 2]),  # lists of ints
        (np.array(2.0), np.array(2.0)),  # 0-d arrays
        (np.float32(0.5), 0.5),  # numpy scalars
        ([[7.0]], 7.0),  # a 1x1 matrix against a scalar
    ],
)
def test_close_accepts_ints_lists_and_0d_arrays(measured, predicted):
    m = recorder().close(measured, predicted)
    assert m.verdict is Verdict.HOLDS and m.gap == 0.0
    assert isinstance(m.measured, float) and isinstance(m.gap, float)


def test_close_scalar_measured_against_a_one_element_prediction():
    m = recorder().close(2.0, [[2.1]], rtol=0.1)
    assert m.verdict is Verdict.HOLDS and m.gap == pytest.approx(0.1)


@pytest.mark.parametrize(
    "measured, predicted, shapes",
    [([1.0, 2.0, 3.0], [1.0, 2.0], ("(3,)", "(2,)")), ([[1.0, 2.0]], [1.0, 2.0], ("(1, 2)", "(2,)")),
     (1.0, [1.0, 2.0], ("()", "(2,)"))],
)
def test_close_mismatched_shapes_is_a_claim_error(measured, predicted, shapes):
    rec = recorder()
    with pytest.raises(ClaimError) as info:
        rec.close(measured, predicted)
    msg = str(info.value)
    assert CLAIM in msg and shapes[0] in msg and shapes[1] in msg
    assert rec.finish(error=info.value).verdict is Verdict.ERROR


@pytest.mark.parametrize("measured, predicted, what", [([], 1.0, "measured"), (1.0, np.array([]), "predicted")])
def test_close_empty_input_is_a_claim_error(measured, predicted, what):
    with pytest.raises(ClaimError, match=f"{what} is empty"):
        recorder().close(measured, predicted)


@pytest.mark.parametrize(
    "measured, predicted, what",
    [
        (float("nan"), 1.0, "measured"),
        (1.0, float("nan"), "predicted"),
        (float("inf"), 1.0, "measured"),
        (1.0, -math.inf, "predicted"),
        ([1.0, np.nan, 1.0], [1.0, 1.0, 1.0], "measured"),
    ],
)
def test_close_non_finite_is_an_error_never_holds(measured, predicted, what):
    rec = recorder(rtol=1e9, atol=1e9)  # no tolerance can make a NaN hold
    with pytest.raises(ClaimError) as info:
        rec.close(measured, predicted)
    assert not isinstance(info.value, AssertionError)
    assert f"{what} is not finite" in str(info.value) and CLAIM in str(info.value)
    assert only(rec).verdict is Verdict.ERROR
    result = rec.finish(error=info.value)
    assert result.verdict is Verdict.ERROR
    json.dumps(result.to_dict(), allow_nan=False)
    # even when the test swallows the exception, the recorded ERROR decides
    assert rec.finish().verdict is Verdict.ERROR


@pytest.mark.parametrize("bad", ["1.0", None, object()])
def test_close_non_numeric_input_is_a_claim_error(bad):
    with pytest.raises(ClaimError, match="must be numeric"):
        recorder().close(bad, 1.0)


@pytest.mark.parametrize("kw, word", [({"rtol": -0.1}, "rtol"), ({"atol": float("nan")}, "atol"),
                                      ({"rtol": math.inf}, "rtol"), ({"atol": "x"}, "atol")])
def test_close_invalid_tolerance_is_a_claim_error_naming_it(kw, word):
    with pytest.raises(ClaimError) as info:
        recorder().close(1.0, 1.0, **kw)
    assert CLAIM in str(info.value) and word in str(info.value)


def test_measurement_names_default_to_kind_and_stay_unique():
    rec = recorder()
    rec.close(1.0, 1.0)
    rec.close(1.0, 1.0)
    rec.at_most(0.0, 1.0)
    rec.close(1.0, 1.0, name="train_error")
    rec.close(1.0, 1.0)
    assert [m.name for m in rec.measurements] == ["close", "close#2", "at_most", "train_error", "close#3"]
    with pytest.raises(ClaimError, match="name"):
        rec.close(1.0, 1.0, name="")


# ---------------------------------------------------------------------------- bounds
def test_at_most_and_at_least_hold_and_fail():
    rec = recorder()
    m = rec.at_most(0.75, 1.0)
    assert m.verdict is Verdict.HOLDS and m.margin == 0.25 and m.gap == 0.0 and m.tolerance == 0.0
    assert rec.at_most(1.0, 1.0).verdict is Verdict.HOLDS  # equality holds
    assert rec.at_least(1.25, 1.0).margin == 0.25
    assert rec.at_least(1.0, 1.0).verdict is Verdict.HOLDS
    with pytest.raises(ClaimFailed, match="is violated"):
        rec.at_most(1.25, 1.0)
    assert rec.measurements[-1].gap == 0.25 and rec.measurements[-1].margin == -0.25
    with pytest.raises(ClaimFailed):
        rec.at_least(0.5, 1.0)
    assert rec.measurements[-1].gap == 0.5
    assert rec.finish().verdict is Verdict.FAILS


def test_bounds_on_arrays_report_the_worst_element():
    rec = recorder()
    with pytest.raises(ClaimFailed, match="worst of 3 elements"):
        rec.at_most([0.5, 1.3, 1.1], 1.0)
    assert rec.measurements[0].measured == 1.3 and rec.measurements[0].margin == pytest.approx(-0.3)
    # per-element bounds: margins [1, 0.5, 2]; the worst is the middle one
    m = rec.at_least(np.array([2.0, 2.5, 5.0]), np.array([1.0, 2.0, 3.0]))
    assert m.verdict is Verdict.HOLDS and (m.measured, m.predicted, m.margin) == (2.5, 2.0, 0.5)


@pytest.mark.parametrize("method", ["at_most", "at_least"])
@pytest.mark.parametrize("measured, bound, what", [(np.nan, 1.0, "measured"), (0.5, np.nan, "bound"),
                                                   ([0.0, np.inf], 1.0, "measured")])
def test_bounds_non_finite_is_an_error(method, measured, bound, what):
    rec = recorder()
    with pytest.raises(ClaimError, match=f"{what} is not finite"):
        getattr(rec, method)(measured, bound)
    assert rec.finish().verdict is Verdict.ERROR


def test_bounds_mismatched_shapes_and_empty():
    with pytest.raises(ClaimError, match=r"\(2,\).*\(3,\)"):
        recorder().at_most([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ClaimError, match="empty"):
        recorder().at_least([], 0.0)


# ---------------------------------------------------------------------------- slope
X = np.array([1.0, 2.0, 4.0, 8.0, 16.0])


def test_slope_exact_power_law_holds():
    m = recorder().slope(X, 3.0 * X**-0.5, expected=-0.5, tol=0.05)
    assert m.verdict is Verdict.HOLDS
    assert m.measured == pytest.approx(-0.5, abs=1e-12)
    assert m.ci[0] == pytest.approx(-0.5, abs=1e-9) and m.ci[1] == pytest.approx(-0.5, abs=1e-9)
    assert m.predicted == -0.5 and m.tolerance == pytest.approx(0.05) and m.n == 5
    assert m.detail["intercept"] == pytest.approx(math.log(3.0))


def test_slope_interval_matches_scipy_linregress():
    rng = np.random.default_rng(7)
    x = np.repeat([10.0, 20.0, 40.0, 80.0], 3)
    y = 2.0 * x**1.1 * np.exp(0.05 * rng.standard_normal(x.size))
    lr = stats.linregress(np.log(x), np.log(y))
    half = stats.t.ppf(0.975, x.size - 2) * lr.stderr
    m = recorder().slope(x, y, expected=1.1, tol=0.5)
    assert m.verdict is Verdict.HOLDS
    assert m.measured == pytest.approx(lr.slope, rel=1e-12)
    assert m.ci == pytest.approx((lr.slope - half, lr.slope + half), rel=1e-10)
    assert m.gap == pytest.approx(abs(lr.slope - 1.1))
    # the same data against a tolerance narrower than the interval is INCONCLUSIVE
    rec = recorder()
    inside = rec.slope(x, y, expected=lr.slope, tol=half / 2)
    assert inside.verdict is Verdict.INCONCLUSIVE
    assert rec.finish().verdict is Verdict.INCONCLUSIVE


def test_slope_fails_when_the_whole_interval_is_outside():
    rec = recorder()
    with pytest.raises(ClaimFailed, match="slope"):
        rec.slope(X, X**2, expected=1.0, tol=0.1)
    m = only(rec)
    assert m.verdict is Verdict.FAILS and m.gap == pytest.approx(1.0) and m.margin == pytest.approx(-0.9)


def test_slope_with_two_points_is_inconclusive():
    rec = recorder()
    m = rec.slope([1.0, 10.0], [1.0, 10.0], expected=1.0, tol=0.01)
    assert m.verdict is Verdict.INCONCLUSIVE  # no residual degrees of freedom: no interval
    assert m.measured == pytest.approx(1.0)
    assert m.ci == (-math.inf, math.inf)
    d = m.to_dict()
    json.dumps(d, allow_nan=False)  # the infinite interval must still serialize
    assert d["ci"] == [None, None]


def test_slope_against_bounds():
    y = X**-0.5
    assert recorder().slope(X, y, upper=0.0).verdict is Verdict.HOLDS
    assert recorder().slope(X, y, lower=-1.0, upper=-0.25).verdict is Verdict.HOLDS
    with pytest.raises(ClaimFailed):
        recorder().slope(X, y, lower=0.0)
    m = recorder().slope(X, y, upper=0.0)
    assert m.predicted == 0.0 and m.margin == pytest.approx(0.5) and m.gap == 0.0


def test_slope_linear_fit():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    m = recorder().slope(x, 2.0 - 3.0 * x, expected=-3.0, tol=0.01, log=False)
    assert m.verdict is Verdict.HOLDS and m.measured == pytest.approx(-3.0)
    assert m.detail["log"] is False


@pytest.mark.parametrize(
    "x, y, match",
    [
        ([1.0, 2.0, 0.0], [1.0, 2.0, 3.0], "positive x and y"),
        ([1.0, 2.0, 3.0], [1.0, -2.0, 3.0], "positive x and y"),
        ([1.0, 2.0, 3.0], [1.0, np.nan, 3.0], "y is not finite"),
        ([1.0, np.inf, 3.0], [1.0, 2.0, 3.0], "x is not finite"),
    ],
)
def test_slope_bad_data_is_an_error(x, y, match):
    rec = recorder()
    with pytest.raises(ClaimError, match=match):
        rec.slope(x, y, expected=1.0, tol=0.1)
    assert rec.finish().verdict is Verdict.ERROR


@pytest.mark.parametrize(
    "kw",
    [dict(expected=float("nan"), tol=0.1), dict(expected=math.inf, tol=0.1), dict(upper=float("nan")),
     dict(lower=float("nan")), dict(upper=0.0, lower=float("nan"))],
)
def test_slope_non_finite_prediction_is_an_error_never_holds(kw):
    rec = recorder()
    with pytest.raises(ClaimError, match="not finite"):
        rec.slope(X, X**-0.5, **kw)
    assert rec.finish().verdict is Verdict.ERROR


def test_slope_usage_errors():
    rec = recorder()
    with pytest.raises(ClaimError, match=r"x has shape \(3,\) but y has shape \(2,\)"):
        rec.slope([1.0, 2.0, 3.0], [1.0, 2.0], expected=1.0, tol=0.1)
    with pytest.raises(ClaimError, match="together"):
        rec.slope(X, X, expected=1.0)
    with pytest.raises(ClaimError, match="needs expected"):
        rec.slope(X, X)
    with pytest.raises(ClaimError, match="two distinct x"):
        rec.slope([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], expected=1.0, tol=0.1)
    with pytest.raises(ClaimError, match="tol must be finite"):
        rec.slope(X, X, expected=1.0, tol=-0.1)
    with pytest.raises(ClaimError, match="empty"):
        rec.slope([], [], expected=1.0, tol=0.1)


# ---------------------------------------------------------------------------- samples
def test_samples_holds_when_the_whole_interval_is_inside():
    values = [1.0, 1.02, 0.98, 1.01, 0.99]
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    m = recorder(rtol=0.05).samples(values, predicted=1.0)
    assert m.verdict is Verdict.HOLDS
    assert m.measured == pytest.approx(1.0) and m.n == 5
    assert m.ci == pytest.approx((lo, hi), rel=1e-12)
    assert m.gap_ci[1] == pytest.approx(max(1.0 - lo, hi - 1.0))
    assert m.tolerance == pytest.approx(0.05) and m.confidence == 0.95


def test_samples_fails_when_the_whole_interval_is_outside():
    rec = recorder(rtol=0.05)
    with pytest.raises(ClaimFailed, match="samples"):
        rec.samples([2.0, 2.1, 1.9, 2.05], predicted=1.0)
    m = only(rec)
    assert m.verdict is Verdict.FAILS
    assert m.gap == pytest.approx(1.0125) and m.gap_ci[0] > 0.05


def test_samples_inconclusive_when_the_interval_straddles():
    # mean 1.0, sd 0.1, n 3: half-width t(0.975, 2) * 0.1 / sqrt(3) = 0.248 > tolerance 0.05
    rec = recorder(rtol=0.05)
    m = rec.samples([0.9, 1.1, 1.0], predicted=1.0)
    assert m.verdict is Verdict.INCONCLUSIVE
    assert m.gap_ci[1] == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3))
    assert "more samples" in m.message
    result = rec.finish()
    assert result.verdict is Verdict.INCONCLUSIVE and "more samples" in result.message


def test_samples_one_seed_decides_nothing():
    m = recorder().samples([1.0], predicted=1.0)
    assert m.verdict is Verdict.INCONCLUSIVE and m.ci == (-math.inf, math.inf)
    json.dumps(m.to_dict(), allow_nan=False)  # infinite interval and sem still serialize


def test_samples_confidence_changes_the_verdict():
    values = [1.02, 1.03, 1.04]  # mean 1.03, sd 0.01; tolerance 0.05
    half50 = stats.t.ppf(0.75, 2) * 0.01 / math.sqrt(3)
    half99 = stats.t.ppf(0.995, 2) * 0.01 / math.sqrt(3)
    assert 1.03 + half50 < 1.05 < 1.03 + half99
    assert recorder(confidence=0.5).samples(values, predicted=1.0).verdict is Verdict.HOLDS
    assert recorder(confidence=0.5).samples(values, predicted=1.0, confidence=0.99).verdict is Verdict.INCONCLUSIVE


def test_samples_paired_predictions():
    values = np.array([1.1, 2.1, 3.1, 4.1])
    m = recorder().samples(values, predicted=[1.0, 2.0, 3.0, 4.0], atol=0.2)
    assert m.verdict is Verdict.HOLDS  # the differences are all exactly-ish 0.1
    assert m.gap == pytest.approx(0.1) and m.predicted == pytest.approx(2.5)
    with pytest.raises(ClaimError, match=r"4 values \(one per seed\) but predicted has shape \(3,\)"):
        recorder().samples(values, predicted=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("values, predicted, what", [([1.0, np.nan], 1.0, "values"), ([1.0, 1.0], np.inf, "predicted")])
def test_samples_non_finite_is_an_error(values, predicted, what):
    rec = recorder()
    with pytest.raises(ClaimError, match=f"{what} is not finite"):
        rec.samples(values, predicted=predicted)
    assert rec.finish().verdict is Verdict.ERROR


def test_samples_empty_and_bad_confidence():
    with pytest.raises(ClaimError, match="values is empty"):
        recorder().samples([], predicted=1.0)
    with pytest.raises(ClaimError, match="confidence"):
        recorder().samples([1.0, 1.0], predicted=1.0, confidence=1.0)


# ---------------------------------------------------------------------------- finishing a claim
def test_no_measurement_is_an_error():
    result = recorder().finish(nodeid="x.py::t")
    assert result.verdict is Verdict.ERROR
    assert result.message == "claim recorded no measurement"


def test_an_exception_is_an_error_even_after_holding_measurements():
    rec = recorder()
    rec.close(1.0, 1.0)
    result = rec.finish(error=RuntimeError("boom"))
    assert result.verdict is Verdict.ERROR and result.message == "RuntimeError: boom"
    # a plain failed assert is not a violated prediction either
    assert rec.finish(error=AssertionError("x")).verdict is Verdict.ERROR


def test_skipped_claim():
    result = recorder().finish(skipped="needs neural-tangents")
    assert result.verdict is Verdict.SKIPPED and result.message == "needs neural-tangents"


def test_verdicts_combine_by_severity():
    rec = recorder()
    rec.close(1.0, 1.0)
    rec.samples([0.9, 1.1, 1.0], predicted=1.0)
    assert rec.finish().verdict is Verdict.INCONCLUSIVE
    with pytest.raises(ClaimFailed):
        rec.at_most(2.0, 1.0, name="bound")
    result = rec.finish()
    assert result.verdict is Verdict.FAILS and result.message.startswith("bound:")
    assert result.decisive.name == "bound"
    assert combine([]) is Verdict.ERROR
    assert combine([Verdict.HOLDS, Verdict.ERROR, Verdict.FAILS]) is Verdict.ERROR


def test_user_raised_claimfailed_with_holding_measurements_does_not_hold():
    rec = recorder()
    rec.close(1.0, 1.0)
    result = rec.finish(error=ClaimFailed("the curve bends the wrong way"))
    assert result.verdict is Verdict.FAILS
    assert result.message == "the curve bends the wrong way"
    # without any measurement it is still an ERROR: nothing was measured
    assert recorder().finish(error=ClaimFailed("x")).verdict is Verdict.ERROR


# ---------------------------------------------------------------------------- seeds, stages, artifacts
def test_seeds_are_stable_distinct_and_depend_on_base_seed_and_id():
    a = ClaimRecorder("a.b", Tolerance(), base_seed=0)
    assert a.seed == ClaimRecorder("a.b", Tolerance(), base_seed=0).seed
    assert a.seed != ClaimRecorder("a.b", Tolerance(), base_seed=1).seed
    assert a.seed != ClaimRecorder("a.c", Tolerance(), base_seed=0).seed
    seeds = a.seeds(16)
    assert len(set(seeds)) == 16 and a.seed not in seeds
    assert a.seeds(3) == seeds[:3]
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in [a.seed, *seeds])
    # parametrized cases share the seed of their base id
    case = ClaimRecorder("a.b[depth=2]", Tolerance(), base_seed=0, seed_key="a.b")
    assert case.seed == a.seed
    assert derive_seed(0, "a.b") == a.seed
    np.random.default_rng(a.seed)  # usable as a numpy seed


def test_stage_records_duration_and_status():
    calls = []
    rec = recorder(on_stage=lambda cid, name, dt: calls.append((cid, name, dt)) if dt is not None else None)
    with rec.stage("train"):
        sum(range(1000))
    with pytest.raises(KeyError):
        with rec.stage("predict"):
            raise KeyError("x")
    assert [(s["name"], s["status"]) for s in rec.stages] == [("train", "done"), ("predict", "broke")]
    assert all(s["duration_s"] >= 0 for s in rec.stages)
    assert [(c[0], c[1]) for c in calls] == [(CLAIM, "train"), (CLAIM, "predict")]
    rec.close(1.0, 1.0)
    assert rec.finish().stages == list(rec.stages)


def test_table_and_attach_are_json_ready():
    rec = recorder()
    rec.table("Table 1", ["depth", np.str_("rmse")], [[1, np.float64(0.5)], (np.int64(2), 0.25)])
    rec.attach("curve", {"x": np.arange(3), "y": np.array([1.0, np.nan, 2.0]), 4: np.float32(0.5)})
    assert list(rec.artifacts) == [
        {"kind": "table", "name": "Table 1", "columns": ["depth", "rmse"], "rows": [[1, 0.5], [2, 0.25]]},
        {"kind": "data", "name": "curve", "data": {"x": [0, 1, 2], "y": [1.0, None, 2.0], "4": 0.5}},
    ]
    json.dumps(rec.artifacts, allow_nan=False)
    with pytest.raises(ClaimError, match="2 cells, expected 3"):
        rec.table("bad", ["a", "b", "c"], [[1, 2]])


def test_attach_rejects_data_that_is_not_json_ready():
    rec = recorder()
    with pytest.raises(ClaimError, match=CLAIM):
        rec.attach("weights", {"net": object()})
    with pytest.raises(ClaimError, match=CLAIM):
        rec.table("t", ["a"], [[{1, 2}]])
    assert rec.artifacts == ()
    assert [m.verdict for m in rec.measurements] == [Verdict.ERROR, Verdict.ERROR]  # refusals are recorded


# ---------------------------------------------------------------------------- model
@pytest.mark.parametrize(
    "tol, word",
    [(Tolerance(rtol=-0.01), "rtol"), (Tolerance(atol=float("nan")), "atol"), (Tolerance(rtol=math.inf), "rtol"),
     (Tolerance(confidence=0.0), "confidence"), (Tolerance(confidence=1.0), "confidence"),
     (Tolerance(confidence=float("nan")), "confidence"), (Tolerance(rtol="a"), "rtol")],
)
def test_tolerance_validation_names_the_claim_and_field(tol, word):
    with pytest.raises(ClaimError) as info:
        tol.validated("my.claim")
    assert "'my.claim'" in str(info.value) and word in str(info.value)


def test_tolerance_validated_returns_floats():
    t = Tolerance(rtol=1, atol=0, confidence=0.9).validated()
    assert t == Tolerance(1.0, 0.0, 0.9) and isinstance(t.rtol, float)


def test_result_round_trips_through_json_and_sanitizes_non_finite_numbers():
    rec = recorder()
    rec.close([1.0, 1.01], [1.0, 1.0])
    rec.samples([1.0], predicted=1.0)
    rec.slope([1.0, 2.0], [1.0, 2.0], expected=1.0, tol=0.1)
    result = rec.finish(nodeid="f.py::t", source="paper", statement="s", expect="holds", params={"d": 1})
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = ClaimResult.from_dict(json.loads(text))
    assert back.verdict is Verdict.INCONCLUSIVE and back.nodeid == "f.py::t" and back.params == {"d": 1}
    assert [m.name for m in back.measurements] == ["close", "samples", "slope"]
    assert back.measurements[0].measured == 1.01 and back.measurements[0].verdict is Verdict.HOLDS


@pytest.mark.parametrize(
    "verdict, expect, agrees",
    [(Verdict.HOLDS, "holds", True), (Verdict.FAILS, "fails", True), (Verdict.HOLDS, "fails", False),
     (Verdict.FAILS, "holds", False), (Verdict.HOLDS, None, None), (Verdict.ERROR, "holds", None),
     (Verdict.INCONCLUSIVE, "holds", None)],
)
def test_agrees_with_source(verdict, expect, agrees):
    r = ClaimResult(id="x", nodeid="n", verdict=verdict, expect=expect)
    assert r.agrees_with_source is agrees
    assert r.to_dict()["agrees_with_source"] is agrees


# ---------------------------------------------------------------------------- statistics
def test_mean_ci_matches_scipy():
    v = np.array([0.3, 0.5, 0.4, 0.8, 0.1])
    ci = mean_ci(v, 0.9)
    lo, hi = stats.t.interval(0.9, 4, loc=v.mean(), scale=stats.sem(v))
    assert (ci.lo, ci.hi) == pytest.approx((lo, hi), rel=1e-12)
    assert ci.n == 5 and ci.mean == pytest.approx(0.42)
    one = mean_ci([2.0], 0.95)
    assert (one.lo, one.hi, one.mean) == (-math.inf, math.inf, 2.0)


def test_fit_slope_matches_scipy():
    x = np.array([1.0, 2.0, 3.0, 5.0, 8.0])
    y = np.array([2.1, 2.9, 4.2, 5.8, 9.1])
    fit = fit_slope(x, y, log=False, confidence=0.95)
    lr = stats.linregress(x, y)
    assert fit.slope == pytest.approx(lr.slope) and fit.intercept == pytest.approx(lr.intercept)
    assert fit.stderr == pytest.approx(lr.stderr) and fit.r2 == pytest.approx(lr.rvalue**2)
    two = fit_slope([1.0, 2.0], [1.0, 3.0], log=False, confidence=0.95)
    assert two.slope == pytest.approx(2.0) and (two.lo, two.hi) == (-math.inf, math.inf)


# ---------------------------------------------------------------------------- rivals
def test_close_holds_only_when_every_rival_is_rejected():
    m = recorder().close(1.0, 1.0, rtol=0.05, rivals={"NNGP instead of NTK": 0.8, "depth-independent": 1.3})
    assert m.verdict is Verdict.HOLDS and m.rivals_ruled_out == 2
    assert [r.verdict for r in m.rivals] == [Verdict.FAILS, Verdict.FAILS]
    assert "ruled out" in m.message


def test_close_with_a_rival_that_also_holds_is_inconclusive_naming_it():
    rec = recorder()
    m = rec.close(1.0, 1.0, rtol=0.05, rivals={"NN1's NTK for both depths": 1.02, "zero": 0.0})
    assert m.verdict is Verdict.INCONCLUSIVE
    assert "cannot distinguish the prediction from rival \"NN1's NTK for both depths\"" in m.message
    assert [r.ruled_out for r in m.rivals] == [False, True]
    assert rec.finish().verdict is Verdict.INCONCLUSIVE


def test_a_failing_prediction_fails_whatever_the_rivals_do():
    with pytest.raises(ClaimFailed):
        recorder().close(2.0, 1.0, rivals={"right theory": 2.0})


def test_samples_rivals_are_judged_with_the_same_interval():
    values = [1.00, 1.02, 0.98, 1.01, 0.99]
    held = recorder().samples(values, predicted=1.0, rtol=0.05, rivals={"half": 0.5})
    assert held.verdict is Verdict.HOLDS and held.rivals[0].gap_ci[0] > held.rivals[0].tolerance
    undecided = recorder().samples(values, predicted=1.0, rtol=0.05, rivals={"close rival": 1.04})
    assert undecided.verdict is Verdict.INCONCLUSIVE and undecided.rivals[0].verdict is not Verdict.FAILS


def test_slope_rival_exponents():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    y = x**-0.5 * np.array([1.0, 1.01, 0.99, 1.0, 1.005])
    m = recorder().slope(x, y, expected=-0.5, tol=0.1, rivals={"does not converge": 0.0, "1/width": -1.0})
    assert m.verdict is Verdict.HOLDS and m.rivals_ruled_out == 2
    near = recorder().slope(x, y, expected=-0.5, tol=0.1, rivals={"-0.45 law": -0.45})
    assert near.verdict is Verdict.INCONCLUSIVE
    bounded = recorder().slope(x, y, upper=-0.25, rivals={"no decay": 0.0})
    assert bounded.verdict is Verdict.HOLDS and bounded.rivals[0].ruled_out


def test_rivals_must_be_a_mapping_of_finite_predictions_of_the_right_shape():
    for bad, word in (([0.5], "mapping"), ({"x": float("nan")}, "not finite"), ({"x": [1.0, 2.0]}, "shape"),
                      ({"x": "0.5"}, "'0.5'")):
        rec = recorder()
        with pytest.raises(ClaimError, match=word):
            rec.close(1.0, 1.0, rivals=bad)
        assert rec.finish().verdict is Verdict.ERROR


def test_rivals_travel_through_json():
    rec = recorder()
    rec.close(1.0, 1.0, rivals={"wrong": 2.0})
    d = rec.finish().to_dict()
    r = d["measurements"][0]["rivals"][0]
    assert r["name"] == "wrong" and r["verdict"] == "FAILS" and r["ruled_out"] is True and r["predicted"] == 2.0
    assert d["rivals"] == {"named": 1, "ruled_out": 1}
    back = ClaimResult.from_dict(json.loads(json.dumps(d)))
    assert back.measurements[0].rivals[0].ruled_out


def test_rivals_in_the_reports():
    from pytest_ntk.report import baseline, html, markdown, terminal

    rec = recorder()
    rec.close(1.0, 1.0, rivals={"wrong": 2.0, "close": 1.01})
    report = {"schema": 1, "run": {}, "complete": True, "claims": [rec.finish(nodeid="t.py::x").to_dict()]}
    lines = []
    terminal.render(report["claims"], lambda text, **kw: lines.append(text))
    assert any("1/2" in line for line in lines)
    assert "1/2 (not: close)" in markdown.render(report)
    page = html.render(report)
    assert "rival: wrong" in page and "ruled out" in page and "not ruled out" in page
    assert baseline.entries(report)[CLAIM]["rivals"] == {"close": "HOLDS", "wrong": "FAILS"}


# ---------------------------------------------------------------------------- interval estimates
def test_interval_against_a_bound_and_a_prediction():
    assert recorder().interval(0.04, (0.03, 0.045), upper=0.05).verdict is Verdict.HOLDS
    assert recorder().interval(0.06, (0.048, 0.078), upper=0.05).verdict is Verdict.INCONCLUSIVE
    with pytest.raises(ClaimFailed):
        recorder().interval(0.09, (0.08, 0.1), upper=0.05)
    m = recorder().interval(1.0, (0.99, 1.01), predicted=1.0, rtol=0.05, rivals={"wrong": 1.5})
    assert m.verdict is Verdict.HOLDS and m.rivals[0].ruled_out and m.kind == "interval"


def test_extrapolated_fit_carries_its_uncertainty():
    from pytest_ntk.verdicts import fit_slope

    rng = np.random.default_rng(3)
    x = np.repeat([128.0, 512.0, 2048.0], 4)
    y = 3 * x**-0.3 * np.exp(rng.normal(0, 0.1, x.size))
    fit = fit_slope(x, y, log=True, confidence=0.95)
    est, lo, hi = fit.mean_at(1e4)
    near_lo, near_hi = fit.mean_at(512.0)[1:]
    assert lo < est < hi and (hi - lo) / est > (near_hi - near_lo) / fit.mean_at(512.0)[0]  # wider far away
    m = recorder().interval(est, (lo, hi), upper=est * 1.01, how="fit extrapolated")
    assert m.verdict is Verdict.INCONCLUSIVE and "fit extrapolated" in m.message


def test_interval_refuses_bad_input():
    for kwargs, word in ((dict(estimate=1.0, ci=(1.1, 1.2), upper=2.0), "does not contain"),
                         (dict(estimate=1.0, ci=(0.9,), upper=2.0), "pair"),
                         (dict(estimate=1.0, ci=(0.9, 1.1)), "either predicted"),
                         (dict(estimate=1.0, ci=(0.9, 1.1), upper=2.0, atol=0.1), "bounds")):
        rec = recorder()
        with pytest.raises(ClaimError, match=word):
            rec.interval(**kwargs)
        assert rec.finish().verdict is Verdict.ERROR


def test_a_rival_on_the_allowed_side_of_a_bound_is_refused():
    """'At most -0.25' and 'exactly -0.5' do not compete: such a rival is refused, by name."""
    cases = [lambda r: r.slope([1.0, 2.0, 4.0], [1.0, 0.5, 0.25], upper=-0.25, rivals={"also allowed": -0.5}),
             lambda r: r.interval(0.04, (0.03, 0.045), upper=0.05, rivals={"below too": 0.01})]
    for case in cases:
        rec = recorder()
        with pytest.raises(ClaimError, match="does not contradict the prediction"):
            case(rec)
        assert rec.finish().verdict is Verdict.ERROR


def test_rival_outcomes_are_in_the_message_whatever_the_verdict():
    m = recorder().samples([0.9, 1.1, 1.0], predicted=1.0, rtol=0.05, rivals={"far": 3.0})
    assert m.verdict is Verdict.INCONCLUSIVE and "rivals ruled out: 'far'" in m.message
