"""The plugin end to end: real pytest sessions (pytester) on small claim files.

Each test writes claim files whose verdicts follow from the numbers in them, runs pytest
in-process (fast) and checks the outcome, the verdict words of ``-v`` and the JSON report.
"""

from __future__ import annotations

import json
import math

import pytest

from pytest_ntk.verdicts import ClaimFailed


# inner sessions need neither the cache nor hypothesis' plugin (which would re-import hypothesis,
# assertion-rewritten, in every in-process run: pytester drops modules a run imported)
INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str):
    """Run pytest in-process with a JSON report; return the result and the parsed report (or None)."""
    path = pytester.path / "ntk.json"
    if path.exists():
        path.unlink()
    result = pytester.runpytest(*INNER, f"--ntk-json={path}", *args, no_reraise_ctrlc=True)
    report = json.loads(path.read_text()) if path.exists() else None
    return result, report


def by_id(report) -> dict:
    ids = [c["id"] for c in report["claims"]]
    assert len(ids) == len(set(ids)), ids
    return {c["id"]: c for c in report["claims"]}


def by_test(report) -> dict:
    return {c["nodeid"].split("::")[-1]: c for c in report["claims"]}


VERDICT_PATHS = """
import pytest
from pytest_ntk import ClaimFailed

@pytest.fixture
def broken():
    raise OSError("dataset missing")

@pytest.mark.claim("v.holds", source="a paper", statement="within 5%")
def test_holds(claim):
    claim.close(1.04, 1.0)

@pytest.mark.claim("v.fails")
def test_fails(claim):
    claim.close(1.2, 1.0, rtol=0.1)
    raise RuntimeError("not reached: close() raised ClaimFailed")

@pytest.mark.claim("v.samples_inconclusive")
def test_samples_inconclusive(claim):
    claim.samples([0.9, 1.1, 1.0], predicted=1.0)

@pytest.mark.claim("v.slope_inconclusive")
def test_slope_inconclusive(claim):
    claim.slope([1.0, 2.0], [1.0, 2.0], expected=1.0, tol=0.1)

@pytest.mark.claim("v.nan")
def test_nan(claim):
    claim.close(float("nan"), 1.0)

@pytest.mark.claim("v.inf_bound")
def test_inf_bound(claim):
    claim.at_most(0.5, float("inf"))

@pytest.mark.claim("v.exception")
def test_exception(claim):
    claim.close(1.0, 1.0)
    raise RuntimeError("kernel blew up")

@pytest.mark.claim("v.nothing")
def test_nothing(claim):
    pass

@pytest.mark.claim("v.no_fixture")
def test_no_fixture():
    pass

@pytest.mark.claim("v.plain_assert")
def test_plain_assert(claim):
    claim.close(1.0, 1.0)
    assert 1 == 2

@pytest.mark.claim("v.shapes")
def test_shapes(claim):
    claim.close([1.0, 2.0], [1.0, 2.0, 3.0])

@pytest.mark.claim("v.skipped")
def test_skipped(claim):
    pytest.skip("needs the oracle")

@pytest.mark.claim("v.swallowed")
def test_swallowed(claim):
    with pytest.raises(ClaimFailed):
        claim.at_least(0.5, 1.0)

@pytest.mark.claim("v.fixture_breaks")
def test_fixture_breaks(claim, broken):
    claim.close(1.0, 1.0)

def test_not_a_claim():
    pass

def test_claim_fixture_without_marker(claim):
    pass
"""

EXPECTED_VERDICTS = {
    "v.holds": "HOLDS",
    "v.fails": "FAILS",
    "v.samples_inconclusive": "INCONCLUSIVE",
    "v.slope_inconclusive": "INCONCLUSIVE",
    "v.nan": "ERROR",
    "v.inf_bound": "ERROR",
    "v.exception": "ERROR",
    "v.nothing": "ERROR",
    "v.no_fixture": "ERROR",
    "v.plain_assert": "ERROR",
    "v.shapes": "ERROR",
    "v.skipped": "SKIPPED",
    "v.swallowed": "FAILS",
    "v.fixture_breaks": "ERROR",
}


def test_every_verdict_path(pytester):
    pytester.makepyfile(test_paths=VERDICT_PATHS)
    result, report = run(pytester, "-v")
    result.assert_outcomes(passed=2, failed=9, xfailed=2, skipped=1, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    claims = by_id(report)
    assert {k: c["verdict"] for k, c in claims.items()} == EXPECTED_VERDICTS
    assert report["complete"] is True

    messages = {k: c["message"] for k, c in claims.items()}
    assert messages["v.nothing"] == "claim recorded no measurement"
    assert messages["v.no_fixture"] == "claim recorded no measurement"
    assert messages["v.exception"] == "RuntimeError: kernel blew up"
    assert "measured is not finite (nan)" in messages["v.nan"]
    assert "bound is not finite (inf)" in messages["v.inf_bound"]
    assert messages["v.plain_assert"].startswith("AssertionError")
    assert "(2,)" in messages["v.shapes"] and "(3,)" in messages["v.shapes"] and "'v.shapes'" in messages["v.shapes"]
    assert messages["v.skipped"] == "needs the oracle"
    assert messages["v.fixture_breaks"] == "OSError: dataset missing"
    assert "more samples needed" in messages["v.samples_inconclusive"]

    holds = claims["v.holds"]
    assert (holds["source"], holds["statement"]) == ("a paper", "within 5%")
    (m,) = holds["measurements"]
    assert m["measured"] == 1.04 and m["predicted"] == 1.0
    assert m["gap"] == pytest.approx(0.04) and m["tolerance"] == pytest.approx(0.05)
    assert m["margin"] == pytest.approx(0.01) and m["rtol"] == 0.05 and m["atol"] == 0.0
    (m,) = claims["v.fails"]["measurements"]
    assert m["verdict"] == "FAILS" and m["gap"] == pytest.approx(0.2) and m["margin"] == pytest.approx(-0.1)
    # the NaN is recorded as an ERROR measurement with no numbers, never as a gap
    (m,) = claims["v.nan"]["measurements"]
    assert m["verdict"] == "ERROR" and m["measured"] is None and m["gap"] is None

    result.stdout.fnmatch_lines_random([
        "*::test_holds HOLDS*",
        "*::test_fails FAILS*",
        "*::test_samples_inconclusive INCONCLUSIVE*",
        "*::test_slope_inconclusive INCONCLUSIVE*",
        "*::test_nan ERROR*",
        "*::test_nothing ERROR*",
        "*::test_skipped SKIPPED*",
        "*::test_swallowed FAILS*",
        "*::test_fixture_breaks ERROR*",
        "*::test_not_a_claim PASSED*",
    ])
    # a test that uses the claim fixture without a claim marker is told why
    result.stdout.fnmatch_lines(["*the `claim` fixture needs a @pytest.mark.claim(...)*"])
    # ClaimFailed is an AssertionError: pytest shows it as one
    result.stdout.fnmatch_lines(["*ClaimFailed: claim 'v.fails': close: measured 1.2 vs predicted 1*"])


def test_claimfailed_is_an_assertionerror():
    assert issubclass(ClaimFailed, AssertionError)


MARKER_ERRORS = """
import pytest

@pytest.mark.claim("m.unknown", source="s", statment="a typo")
def test_unknown_keyword(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("m.expect", expect="maybe")
def test_bad_expect(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim(source="s", statement="no id")
def test_missing_id(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim(42)
def test_int_id(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("m.dup")
def test_dup_one(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("m.neg_tol")
@pytest.mark.tolerance(rtol=-0.1)
def test_negative_tolerance(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("m.nan_tol")
@pytest.mark.tolerance(atol=float("nan"))
def test_nan_tolerance(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("m.bad_confidence")
@pytest.mark.tolerance(confidence=1.5)
def test_bad_confidence(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("m.tol_keyword")
@pytest.mark.tolerance(rtool=0.1)
def test_tolerance_keyword(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("m.ok", expect="HOLDS")
@pytest.mark.parametrize("n", [1, 2])
def test_ok(n, claim):
    claim.close(1.0, 1.0)

class TestGroup:
    @pytest.mark.claim("m.in_class")
    @pytest.mark.parametrize("n", [1, 2])
    def test_in_class(self, n, claim):
        claim.close(1.0, 1.0)
"""

DUPLICATE = """
import pytest

@pytest.mark.claim("m.dup")
def test_dup_two(claim):
    claim.close(1.0, 1.0)
"""


def test_marker_errors_name_the_claim_and_the_problem(pytester):
    pytester.makepyfile(test_markers=MARKER_ERRORS, test_other=DUPLICATE)
    result, report = run(pytester, "-v")
    claims = by_test(report)
    errors = {k: c["message"] for k, c in claims.items() if c["verdict"] == "ERROR"}
    assert set(errors) == {
        "test_unknown_keyword", "test_bad_expect", "test_missing_id", "test_int_id", "test_dup_one",
        "test_dup_two", "test_negative_tolerance", "test_nan_tolerance", "test_bad_confidence",
        "test_tolerance_keyword",
    }
    assert "'m.unknown'" in errors["test_unknown_keyword"] and "statment" in errors["test_unknown_keyword"]
    assert "'m.expect'" in errors["test_bad_expect"] and "'maybe'" in errors["test_bad_expect"]
    assert "claim id" in errors["test_missing_id"] and "test_missing_id" in errors["test_missing_id"]
    assert "42" in errors["test_int_id"]
    for dup in ("test_dup_one", "test_dup_two"):
        assert "'m.dup'" in errors[dup]
        assert "test_markers.py::test_dup_one, test_other.py::test_dup_two;" in errors[dup]
        assert str(pytester.path) not in errors[dup]  # node ids, not absolute paths
    assert "'m.neg_tol'" in errors["test_negative_tolerance"] and "rtol" in errors["test_negative_tolerance"]
    assert "-0.1" in errors["test_negative_tolerance"]
    assert "'m.nan_tol'" in errors["test_nan_tolerance"] and "atol" in errors["test_nan_tolerance"]
    assert "'m.bad_confidence'" in errors["test_bad_confidence"] and "confidence" in errors["test_bad_confidence"]
    assert "rtool" in errors["test_tolerance_keyword"]
    # the parametrized cases of one test share an id: no duplicate; expect is case-insensitive
    assert claims["test_ok[1]"]["verdict"] == claims["test_ok[2]"]["verdict"] == "HOLDS"
    assert claims["test_ok[1]"]["expect"] == "holds"
    assert claims["test_in_class[1]"]["id"] == "m.in_class[n=1]"
    assert claims["test_in_class[2]"]["verdict"] == "HOLDS"
    result.assert_outcomes(passed=4, errors=10)
    result.stdout.fnmatch_lines(["*::test_unknown_keyword ERROR*"])


PARAMETRIZED = """
import pytest

@pytest.mark.claim("p.depth", source="arXiv:0000.00000", statement="error grows with depth", expect="holds")
@pytest.mark.parametrize("depth, act", [(1, "relu"), (2, "erf")])
def test_depth(depth, act, claim):
    claim.close(float(depth), 1.0, rtol=0.5)

@pytest.mark.claim("p.expected_to_fail", expect="fails")
def test_expected_to_fail(claim):
    claim.at_most(2.0, 1.0)

@pytest.mark.claim("p.error_with_expect", expect="holds")
def test_error_with_expect(claim):
    raise ValueError("bad width")
"""


def test_setup_errors_of_parametrized_claims_keep_their_case_ids(pytester):
    pytester.makepyfile(test_case_errors="""
import pytest

@pytest.mark.claim("ce.tol", source="s", statement="t", expect="holds")
@pytest.mark.tolerance(rtol=-1)
@pytest.mark.parametrize("depth", [1, 2])
def test_tol(depth, claim):
    claim.close(1.0, 1.0)
""")
    result, report = run(pytester)
    result.assert_outcomes(errors=2)
    claims = by_id(report)  # distinct ids: one per case
    assert set(claims) == {"ce.tol[depth=1]", "ce.tol[depth=2]"}
    one = claims["ce.tol[depth=1]"]
    assert one["verdict"] == "ERROR" and one["params"] == {"depth": 1} and one["base_id"] == "ce.tol"
    assert (one["source"], one["statement"], one["expect"]) == ("s", "t", "holds")
    assert "rtol" in one["message"] and "'ce.tol[depth=1]'" in one["message"]


def test_parametrized_ids_and_agreement_with_the_source(pytester):
    pytester.makepyfile(test_params=PARAMETRIZED)
    result, report = run(pytester)
    claims = by_id(report)
    one, two = claims["p.depth[depth=1,act=relu]"], claims["p.depth[depth=2,act=erf]"]
    assert one["params"] == {"depth": 1, "act": "relu"} and two["params"] == {"depth": 2, "act": "erf"}
    assert one["nodeid"].endswith("test_depth[1-relu]")
    assert (one["verdict"], one["agrees_with_source"]) == ("HOLDS", True)
    assert (two["verdict"], two["agrees_with_source"]) == ("FAILS", False)
    assert one["source"] == "arXiv:0000.00000" and one["statement"] == "error grows with depth"
    fails = claims["p.expected_to_fail"]
    assert (fails["verdict"], fails["expect"], fails["agrees_with_source"]) == ("FAILS", "fails", True)
    err = claims["p.error_with_expect"]
    assert (err["verdict"], err["agrees_with_source"]) == ("ERROR", None)
    assert claims["p.depth[depth=1,act=relu]"]["expect"] == "holds"
    result.stdout.re_match_lines([
        r"p\.depth\[depth=1,act=relu\]\s+HOLDS .* holds \(agrees\)$",
        r"p\.depth\[depth=2,act=erf\]\s+FAILS .* holds \(contradicts\)$",
        r"p\.expected_to_fail\s+FAILS .* fails \(agrees\)$",
    ], consecutive=False)


# ---------------------------------------------------------------------------- tolerance resolution
TOLERANCES = """
import pytest

@pytest.mark.claim("t.plain")
def test_plain(claim, tolerance):
    claim.attach("tolerance", [tolerance.rtol, tolerance.atol, tolerance.confidence])
    claim.close(1.08, 1.0)

@pytest.mark.claim("t.marked")
@pytest.mark.tolerance(rtol=0.2)
def test_marked(claim, tolerance):
    claim.attach("tolerance", [tolerance.rtol, tolerance.atol, tolerance.confidence])
    claim.close(1.08, 1.0)

@pytest.mark.claim("t.none")
@pytest.mark.tolerance(rtol=None, atol=0.5, confidence=None)
def test_none(claim, tolerance):
    claim.attach("tolerance", [tolerance.rtol, tolerance.atol, tolerance.confidence])
    claim.close(1.08, 1.0)

def test_not_a_claim(tolerance):
    assert tolerance.rtol > 0
"""


def _tolerances(report):
    return {c["id"]: (tuple(c["artifacts"][0]["data"]), c["verdict"]) for c in report["claims"]}


def test_tolerance_resolution_order(pytester):
    pytester.makepyfile(test_tol=TOLERANCES)
    # profile default (quick: rtol 0.05): a gap of 0.08 fails; the marker's rtol 0.2 holds
    _, report = run(pytester)
    assert _tolerances(report) == {"t.plain": ((0.05, 0.0, 0.95), "FAILS"), "t.marked": ((0.2, 0.0, 0.95), "HOLDS"),
                                   "t.none": ((0.05, 0.5, 0.95), "HOLDS")}  # None: not set by the marker
    # the ini keys beat the profile
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nntk_rtol = "0.1"\nntk_atol = "0.001"\n')
    _, report = run(pytester)
    assert _tolerances(report) == {"t.plain": ((0.1, 0.001, 0.95), "HOLDS"),
                                   "t.marked": ((0.2, 0.001, 0.95), "HOLDS"), "t.none": ((0.1, 0.5, 0.95), "HOLDS")}
    # the command line beats the ini keys; the marker still beats the command line, field by field
    _, report = run(pytester, "--ntk-rtol=0.01", "--ntk-confidence=0.9")
    assert _tolerances(report) == {"t.plain": ((0.01, 0.001, 0.9), "FAILS"),
                                   "t.marked": ((0.2, 0.001, 0.9), "HOLDS"), "t.none": ((0.01, 0.5, 0.9), "HOLDS")}
    # every measurement records the tolerance it was judged with
    (m,) = by_id(report)["t.plain"]["measurements"]
    assert (m["rtol"], m["atol"], m["tolerance"]) == (0.01, 0.001, pytest.approx(0.011))


def test_tolerance_from_a_custom_profile(pytester):
    pytester.makepyfile(test_tol=TOLERANCES)
    pytester.makepyprojecttoml('[tool.pytest_ntk.profiles.loose]\nbase = "quick"\nrtol = 0.3\natol = 0.01\n')
    result, report = run(pytester, "--ntk-profile=loose")
    assert _tolerances(report) == {"t.plain": ((0.3, 0.01, 0.95), "HOLDS"), "t.marked": ((0.2, 0.01, 0.95), "HOLDS"),
                                   "t.none": ((0.3, 0.5, 0.95), "HOLDS")}
    assert report["run"]["profile"]["name"] == "loose"
    result.assert_outcomes(passed=4)


@pytest.mark.parametrize(
    "option, value",
    [("--ntk-rtol", "-1"), ("--ntk-rtol", "abc"), ("--ntk-atol", "nan"), ("--ntk-atol", "inf"),
     ("--ntk-confidence", "1.5"), ("--ntk-confidence", "0")],
)
def test_bad_tolerance_on_the_command_line_is_a_usage_error(pytester, option, value):
    pytester.makepyfile(test_tol=TOLERANCES)
    result = pytester.runpytest(*INNER, f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option}*{value}*"])


def test_bad_tolerance_in_the_ini_file_is_a_usage_error(pytester):
    pytester.makepyfile(test_tol=TOLERANCES)
    pytester.makeini("[pytest]\nntk_rtol = -0.5\n")
    result = pytester.runpytest(*INNER)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ntk_rtol*-0.5*"])


# ---------------------------------------------------------------------------- seeds
SEEDS = """
import pytest

@pytest.mark.claim("s.one")
@pytest.mark.parametrize("case", [1, 2])
def test_one(case, claim, ntk_seed):
    claim.attach("seeds", {"seed": claim.seed, "seeds": claim.seeds(4), "base": ntk_seed})
    claim.close(1.0, 1.0)

@pytest.mark.claim("s.two")
def test_two(claim, ntk_seed):
    claim.attach("seeds", {"seed": claim.seed, "seeds": claim.seeds(4), "base": ntk_seed})
    claim.close(1.0, 1.0)
"""


def _seeds(report):
    out = {}
    for c in report["claims"]:
        data = c["artifacts"][0]["data"]
        assert c["seed"] == data["seed"]
        out[c["id"]] = (data["seed"], tuple(data["seeds"]), data["base"])
    return out


def test_seeds_are_stable_shared_by_cases_and_follow_ntk_seed(pytester):
    pytester.makepyfile(test_seeds=SEEDS)
    _, first = run(pytester)
    _, again = run(pytester)
    _, other = run(pytester, "--ntk-seed=1")
    first, again, other = _seeds(first), _seeds(again), _seeds(other)
    assert first == again  # stable across runs
    one1, one2, two = first["s.one[case=1]"], first["s.one[case=2]"], first["s.two"]
    assert one1 == one2  # the parametrized cases of one claim share its seeds
    assert one1[0] != two[0]  # different claims get different seeds
    assert len(set(one1[1])) == 4 and one1[0] not in one1[1]  # claim.seeds(n) are distinct
    assert not set(one1[1]) & set(two[1])
    assert one1[2] == 0 and other["s.two"][2] == 1
    for cid in first:  # --ntk-seed changes every seed
        assert other[cid][0] != first[cid][0]
        assert not set(other[cid][1]) & set(first[cid][1])


def test_seed_from_the_ini_file(pytester):
    pytester.makepyfile(test_seeds=SEEDS)
    _, default = run(pytester)
    pytester.makeini("[pytest]\nntk_seed = 1\n")
    _, from_ini = run(pytester)
    _, from_cli = run(pytester, "--ntk-seed=1")
    assert _seeds(from_ini) == _seeds(from_cli) != _seeds(default)
    pytester.makeini("[pytest]\nntk_seed = one\n")
    result = pytester.runpytest(*INNER)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ntk_seed must be an integer*'one'*"])


# ---------------------------------------------------------------------------- audit mode
AUDIT = """
import pytest

@pytest.mark.claim("a.holds")
def test_holds(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("a.fails")
def test_fails(claim):
    claim.close(2.0, 1.0)

@pytest.mark.claim("a.inconclusive")
def test_inconclusive(claim):
    claim.samples([1.0], predicted=1.0)
"""


def test_audit_mode_fails_is_a_finding_not_a_failure(pytester):
    pytester.makepyfile(test_audit=AUDIT)
    result, report = run(pytester, "--ntk-audit", "-v")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, xfailed=2)
    result.stdout.fnmatch_lines_random(["*::test_fails FAILS*", "*::test_inconclusive INCONCLUSIVE*"])
    assert {c["id"]: c["verdict"] for c in report["claims"]} == {
        "a.holds": "HOLDS", "a.fails": "FAILS", "a.inconclusive": "INCONCLUSIVE"}
    assert report["run"]["audit"] is True
    # without --ntk-audit the same FAILS fails the run
    result, _ = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, xfailed=1)


def test_audit_mode_an_error_fails_the_run(pytester):
    pytester.makepyfile(test_audit=AUDIT + """
@pytest.mark.claim("a.error")
def test_error(claim):
    claim.close(float("nan"), 1.0)
""")
    result, report = run(pytester, "--ntk-audit")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, xfailed=2)
    assert by_id(report)["a.error"]["verdict"] == "ERROR"


def test_audit_mode_a_failing_plain_test_fails_the_run(pytester):
    pytester.makepyfile(test_audit=AUDIT + """
def test_helper():
    assert 1 + 1 == 3
""")
    result, _ = run(pytester, "--ntk-audit")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, xfailed=2)


def test_audit_mode_a_claim_with_a_setup_error_fails_the_run(pytester):
    pytester.makepyfile(test_audit=AUDIT + """
@pytest.mark.claim("a.bad_marker", expect="sometimes")
def test_bad_marker(claim):
    claim.close(1.0, 1.0)
""")
    result, _ = run(pytester, "--ntk-audit")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, errors=1, xfailed=2)


# ---------------------------------------------------------------------------- junit xml
def test_measurements_land_in_user_properties_and_junitxml(pytester):
    pytester.makepyfile(test_junit="""
import pytest

@pytest.mark.claim("j.close")
def test_close(claim):
    claim.close(1.04, 1.0, name="rmse")

@pytest.mark.claim("j.samples")
def test_samples(claim):
    claim.samples([1.0, 1.01, 0.99, 1.0], predicted=1.0)

@pytest.mark.claim("j.fails")
def test_fails(claim):
    claim.at_most(2.0, 1.0)

def test_plain():
    pass
""")
    xml_path = pytester.path / "junit.xml"
    reprec = pytester.inline_run(*INNER, f"--junitxml={xml_path}")
    reprec.assertoutcome(passed=3, failed=1)
    # on the call report, for other plugins
    calls = {r.nodeid.split("::")[-1]: dict(r.user_properties)
             for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"}
    assert calls["test_close"]["ntk.id"] == "j.close" and calls["test_close"]["ntk.verdict"] == "HOLDS"
    assert calls["test_close"]["ntk.rmse.measured"] == "1.04"
    # and in the JUnit XML file
    import xml.etree.ElementTree as ET

    props = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        props[case.get("name")] = {p.get("name"): p.get("value") for p in case.iter("property")}
    close = props["test_close"]
    assert close["ntk.id"] == "j.close" and close["ntk.verdict"] == "HOLDS"
    assert float(close["ntk.rmse.measured"]) == 1.04 and float(close["ntk.rmse.predicted"]) == 1.0
    assert float(close["ntk.rmse.gap"]) == pytest.approx(0.04)
    assert float(close["ntk.rmse.tolerance"]) == pytest.approx(0.05)
    assert float(close["ntk.rmse.margin"]) == pytest.approx(0.01)
    assert props["test_samples"]["ntk.verdict"] == "HOLDS" and "ntk.samples.ci" in props["test_samples"]
    assert props["test_fails"]["ntk.verdict"] == "FAILS"
    assert float(props["test_fails"]["ntk.at_most.gap"]) == 1.0
    assert not any(k.startswith("ntk.") for k in props["test_plain"])


# ---------------------------------------------------------------------------- interruption
INTERRUPT = """
import pytest

@pytest.mark.claim("i.first")
def test_first(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("i.second")
def test_second(claim):
    claim.close(1.0, 1.0)
    {stop}

@pytest.mark.claim("i.third")
def test_third(claim):
    claim.close(1.0, 1.0)
"""


@pytest.mark.parametrize("stop", ["raise KeyboardInterrupt", 'pytest.exit("stop the audit")'])
def test_interrupted_run_writes_finished_claims_and_complete_false(pytester, stop):
    pytester.makepyfile(test_interrupt=INTERRUPT.format(stop=stop))
    result, report = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert report is not None and report["complete"] is False
    claims = by_id(report)
    assert claims["i.first"]["verdict"] == "HOLDS"
    assert claims["i.second"]["verdict"] == "ERROR"
    assert "did not finish" in claims["i.second"]["message"]
    assert "i.third" not in claims
    assert [p.name for p in pytester.path.iterdir() if p.name.endswith(".tmp")] == []


def test_xfail_and_skip_markers_on_claims(pytester):
    pytester.makepyfile(test_marks="""
import pytest

@pytest.mark.claim("k.xfail")
@pytest.mark.xfail(reason="known gap")
def test_xfail(claim):
    claim.close(2.0, 1.0)

@pytest.mark.claim("k.xpass")
@pytest.mark.xfail(reason="known gap")
def test_xpass(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("k.skipif")
@pytest.mark.skipif(True, reason="no gpu")
def test_skipif(claim):
    claim.close(1.0, 1.0)
""")
    result, report = run(pytester, "-v")
    result.assert_outcomes(xfailed=1, xpassed=1, skipped=1)
    assert {c["id"]: c["verdict"] for c in report["claims"]} == {
        "k.xfail": "FAILS", "k.xpass": "HOLDS", "k.skipif": "SKIPPED"}
    assert by_id(report)["k.skipif"]["message"] == "no gpu"
    result.stdout.fnmatch_lines_random(["*::test_xfail FAILS*", "*::test_xpass HOLDS*", "*::test_skipif SKIPPED*"])


def test_run_stopped_by_maxfail_is_not_complete(pytester):
    pytester.makepyfile(test_stop="""
import pytest

@pytest.mark.claim("x.first")
def test_first(claim):
    claim.close(2.0, 1.0)

@pytest.mark.claim("x.second")
def test_second(claim):
    claim.close(1.0, 1.0)
""")
    result, report = run(pytester, "-x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert [c["id"] for c in report["claims"]] == ["x.first"]
    assert report["complete"] is False  # x.second never ran
    _, report = run(pytester)
    assert report["complete"] is True and len(report["claims"]) == 2


def test_stages_tables_and_attachments_reach_the_json(pytester):
    pytester.makepyfile(test_stages="""
import time
import numpy as np
import pytest

@pytest.mark.claim("st.claim")
def test_claim(claim):
    with claim.stage("train"):
        time.sleep(0.02)
    with claim.stage("evaluate"):
        pass
    claim.table("Table 1", ["depth", "rmse"], [[1, np.float64(0.25)], [2, 0.5]])
    claim.attach("curve", {"x": np.arange(3), "y": np.array([0.5, 0.25, 0.125])})
    claim.close(1.0, 1.0)

@pytest.mark.claim("st.breaks")
def test_breaks(claim):
    with claim.stage("train"):
        raise FloatingPointError("diverged")

@pytest.mark.claim("st.unserializable")
def test_unserializable(claim):
    claim.attach("model", object())
    claim.close(1.0, 1.0)
""")
    result, report = run(pytester, "-v")
    claims = by_id(report)
    stages = claims["st.claim"]["stages"]
    assert [(s["name"], s["status"]) for s in stages] == [("train", "done"), ("evaluate", "done")]
    assert 0.02 <= stages[0]["duration_s"] < 5 and stages[1]["duration_s"] < stages[0]["duration_s"]
    assert claims["st.claim"]["artifacts"] == [
        {"kind": "table", "name": "Table 1", "columns": ["depth", "rmse"], "rows": [[1, 0.25], [2, 0.5]]},
        {"kind": "data", "name": "curve", "data": {"x": [0, 1, 2], "y": [0.5, 0.25, 0.125]}},
    ]
    assert claims["st.breaks"]["verdict"] == "ERROR"
    assert claims["st.breaks"]["stages"] == [{"name": "train", "duration_s": pytest.approx(0, abs=1),
                                              "status": "broke"}]
    assert claims["st.unserializable"]["verdict"] == "ERROR"
    assert "'st.unserializable'" in claims["st.unserializable"]["message"]
    # -v prints a progress line per stage
    result.stdout.fnmatch_lines(["*st.claim: train done in *s"])
    assert report["complete"] is True and not math.isnan(claims["st.claim"]["duration_s"])


EXPECTED_FAILURE = """
import pytest

@pytest.mark.claim("demo.control", source="s", statement="a negative control", expect="fails")
def test_control(claim):
    claim.close(2.0, 1.0, rtol=0.1)

@pytest.mark.claim("demo.control_holds", source="s", statement="a control that held", expect="fails")
def test_control_holds(claim):
    claim.close(1.0, 1.0, rtol=0.1)
"""


def test_a_fails_the_source_expects_is_an_expected_failure(pytester):
    pytester.makepyfile(test_controls=EXPECTED_FAILURE)
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_control FAILS*", "*test_control_holds HOLDS*",
                                 "*demo.control*FAILS*fails (agrees)*"])


def test_ini_ntk_audit_turns_audit_mode_on(pytester):
    pytester.makepyfile(test_one=FAILING_HOLDS_CLAIM)
    assert pytester.runpytest("-p", "no:cacheprovider").ret == 1
    pytester.makeini("[pytest]\nntk_audit = true\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(xfailed=1)
    assert result.ret == 0


FAILING_HOLDS_CLAIM = """
import pytest

@pytest.mark.claim("demo.wrong", source="s", statement="2 is 1", expect="holds")
def test_wrong(claim):
    claim.close(2.0, 1.0, rtol=0.1)
"""


def test_ntk_gpus_pins_each_xdist_worker_to_one_device(pytester):
    pytester.makepyfile(test_pin="""
        import os, pytest

        @pytest.mark.parametrize("i", range(4))
        def test_device(i, request):
            worker = request.config.workerinput["workerid"]
            with open(f"{worker}-{i}.txt", "w") as fh:
                fh.write(os.environ["CUDA_VISIBLE_DEVICES"])
    """)
    result = pytester.runpytest_subprocess("-n", "2", "--ntk-gpus", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    seen = {p.name.split("-")[0]: p.read_text() for p in pytester.path.glob("gw*-*.txt")}
    assert seen == {"gw0": "0", "gw1": "1"}


def test_expect_applies_only_under_the_profiles_that_meet_the_source_conditions(pytester):
    """``expect_profiles``: the source's expectation is compared with the verdict only where the
    run's settings meet the source's conditions; elsewhere the claim has no ``expect`` (neither
    agreement nor contradiction), and its verdict is unchanged."""
    pytester.makepyfile(test_conditional="""
import pytest

@pytest.mark.claim("c.long_only", expect="fails", expect_profiles=["long", "paper"])
def test_long_only(claim):
    claim.at_most(0.5, 1.0)

@pytest.mark.claim("c.one_profile", expect="holds", expect_profiles="quick")
def test_one_profile(claim):
    claim.at_most(0.5, 1.0)
""")
    for profile, expect, agrees in (("quick", None, None), ("long", "fails", False)):
        _, report = run(pytester, f"--ntk-profile={profile}")
        claims = by_id(report)
        got = claims["c.long_only"]
        assert (got["verdict"], got["expect"], got["agrees_with_source"]) == ("HOLDS", expect, agrees), profile
        other = claims["c.one_profile"]
        assert other["expect"] == ("holds" if profile == "quick" else None), profile


@pytest.mark.parametrize("bad, message", [
    ('expect="holds", expect_profiles=[]', "expect_profiles must be"),
    ('expect="holds", expect_profiles=[1]', "expect_profiles must be"),
    ('expect_profiles=["long"]', "without expect"),
])
def test_malformed_expect_profiles_are_errors_naming_the_claim(pytester, bad, message):
    pytester.makepyfile(test_bad=f"""
import pytest

@pytest.mark.claim("c.bad", {bad})
def test_bad(claim):
    claim.at_most(0.5, 1.0)
""")
    result, report = run(pytester)
    result.assert_outcomes(errors=1)
    got = by_id(report)["c.bad"]
    assert got["verdict"] == "ERROR" and "'c.bad'" in got["message"] and message in got["message"]
