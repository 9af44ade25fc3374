"""Verdicts that cannot lie: each class of hostile claim file, run as a real pytest session.

Every test writes claim files the way a user (or an adversary) would, runs pytest on them and
checks the JSON report -- not only the terminal: no false HOLDS, no claim missing, no
INTERNALERROR, and an exit status that follows the documented policy (README, "Exit status").
"""

from __future__ import annotations

import json
import textwrap

import pytest

INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:randomly")


def run(pytester: pytest.Pytester, source: str, *args: str, name: str = "test_hostile", subprocess: bool = False):
    pytester.makepyfile(**{name: textwrap.dedent(source)})
    path = pytester.path / "ntk.json"
    if path.exists():
        path.unlink()
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = runner(*INNER, f"--ntk-json={path}", *args)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str(), result.stdout.str()
    report = json.loads(path.read_text()) if path.exists() else None
    return result, report


def verdicts(report) -> dict[str, str]:
    ids = [c["id"] for c in report["claims"]]
    return {c["id"]: c["verdict"] for c in report["claims"]} if len(ids) == len(set(ids)) else {
        f"{c['id']}@{c['nodeid']}": c["verdict"] for c in report["claims"]}


def claim(report, cid):
    return next(c for c in report["claims"] if c["id"] == cid)


# ---------------------------------------------------------------------------- refusals are recorded
SWALLOWED = """
import numpy as np
import pytest
from pytest_ntk import ClaimError, ClaimFailed

CASES = {
    "empty": lambda c: c.close([], []),
    "none": lambda c: c.close(None, 1.0),
    "shape": lambda c: c.close([1.0, 2.0], [1.0, 2.0, 3.0]),
    "rtol_true": lambda c: c.close(1.0, 1.0, rtol=True),
    "rtol_str": lambda c: c.close(1.0, 1.0, rtol="0.95"),
    "atol_nan": lambda c: c.close(1.0, 1.0, atol=float("nan")),
    "slope_one_x": lambda c: c.slope([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], expected=1.0, tol=0.1),
    "samples_2d": lambda c: c.samples(np.ones((3, 4)), predicted=1.0),
    "masked": lambda c: c.samples(np.ma.masked_array([1.0, 2.0, 50.0], mask=[0, 0, 1]), predicted=1.5),
    "confidence": lambda c: c.samples([1.0, 1.1, 0.9], predicted=1.0, confidence=0.3),
    "table_row": lambda c: c.table("t", ["a", "b"], [[1]]),
    "attach": lambda c: c.attach("w", {"f": object()}),
    "rivals": lambda c: c.close(1.0, 1.0, rivals=[0.5]),
    "bad_name": lambda c: c.close(1.0, 1.0, name=["x"]),
    "nan": lambda c: c.close(float("nan"), 1.0),
}

@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.claim("sw.caught")
def test_caught(claim, case):
    try:
        CASES[case](claim)
    except ClaimError:
        pass
    claim.close(1.0, 1.0)  # a holding measurement after the swallowed refusal

@pytest.mark.claim("sw.failed_caught")
def test_failed_caught(claim):
    try:
        claim.close(2.0, 1.0)
    except ClaimFailed:
        pass
    claim.close(1.0, 1.0)
"""


def test_a_refused_input_is_never_swallowed_into_holds(pytester):
    result, report = run(pytester, SWALLOWED)
    v = verdicts(report)
    caught = {k: x for k, x in v.items() if k.startswith("sw.caught")}
    assert len(caught) == 15 and set(caught.values()) == {"ERROR"}, caught
    assert v["sw.failed_caught"] == "FAILS"
    c = claim(report, "sw.caught[case=rtol_str]")
    assert c["measurements"][0]["verdict"] == "ERROR" and "'0.95'" in c["measurements"][0]["message"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------------------- the claim's lifecycle
LIFECYCLE = """
import threading
import pytest

@pytest.fixture
def late_in_teardown(claim):
    yield
    claim.close(1.0, 1.0, name="from teardown")

@pytest.fixture
def broken_teardown():
    yield
    raise OSError("could not release the GPU")

@pytest.mark.claim("life.finalizer")
def test_finalizer(claim, request):
    claim.close(1.0, 1.0)
    request.addfinalizer(lambda: claim.close(2.0, 2.0, name="from a finalizer"))

@pytest.mark.claim("life.fixture")
def test_fixture(claim, late_in_teardown):
    claim.close(1.0, 1.0)

@pytest.mark.claim("life.teardown_error")
def test_teardown_error(claim, broken_teardown):
    claim.close(1.0, 1.0)

GO, THREADS = threading.Event(), []

@pytest.mark.claim("life.thread")
def test_thread(claim):
    claim.close(1.0, 1.0)
    def later():  # records once a later test says so: after this claim returned, before the session ends
        GO.wait(30)
        try:
            claim.close(5.0, 5.0, name="from a thread")
        except Exception:
            pass
    THREADS.append(threading.Thread(target=later, daemon=True))
    THREADS[-1].start()

@pytest.mark.claim("life.thread_during")
def test_thread_during(claim):
    t = threading.Thread(target=lambda: claim.close(1.0, 1.0, name="from a thread, joined"))
    t.start(); t.join()

def test_wait():
    GO.set()
    for t in THREADS:
        t.join(30)
"""


def test_a_record_after_the_call_or_a_teardown_error_is_an_error_everywhere(pytester):
    result, report = run(pytester, LIFECYCLE)
    v = verdicts(report)
    assert v == {"life.finalizer": "ERROR", "life.fixture": "ERROR", "life.teardown_error": "ERROR",
                 "life.thread": "ERROR", "life.thread_during": "HOLDS"}, v
    for cid in ("life.finalizer", "life.fixture", "life.thread"):
        assert "recorded after the test returned" in claim(report, cid)["message"]
    assert "could not release the GPU" in claim(report, "life.teardown_error")["message"]
    table = result.stdout.str()
    assert "NTK claims: 1 HOLDS, 4 ERROR" in table
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["complete"] is True


def test_teardown_error_is_error_in_the_baseline_gate(pytester):
    pytester.makepyfile(test_t=textwrap.dedent("""
        import pytest
        @pytest.fixture
        def broken():
            yield
            raise OSError("teardown")
        @pytest.mark.claim("bt.claim")
        def test_claim(claim, broken):
            claim.close(1.0, 1.0)
    """))
    base = pytester.path / "baseline.json"
    base.write_text(json.dumps({"schema": 1, "kind": "pytest-ntk baseline", "run": {},
                                "claims": {"bt.claim": {"verdict": "HOLDS", "nodeid": "test_t.py::test_claim"}}}))
    result = pytester.runpytest(*INNER, f"--ntk-baseline={base}")
    result.stdout.fnmatch_lines(["*baseline gate FAILED*", "*HOLDS -> ERROR*bt.claim*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------------------- nothing turns FAILS/ERROR into exit 0
HIDING = """
import pytest
from pytest_ntk import ClaimFailed, ClaimError

@pytest.mark.claim("hide.skip_after_fails")
def test_skip(claim):
    try:
        claim.close(2.0, 1.0)
    except ClaimFailed:
        pytest.skip("never mind")

@pytest.mark.claim("hide.xfail_after_fails")
def test_xfail(claim):
    try:
        claim.close(2.0, 1.0)
    except ClaimFailed:
        pytest.xfail("known")

@pytest.mark.claim("hide.skip_after_error")
def test_skip_error(claim):
    try:
        claim.close(float("nan"), 1.0)
    except ClaimError:
        pytest.skip("never mind")

@pytest.mark.xfail(reason="expected to break")
@pytest.mark.claim("hide.xfail_marker_error")
def test_marker_error(claim):
    raise RuntimeError("the kernel blew up")

@pytest.mark.xfail(reason="the source says it fails")
@pytest.mark.claim("hide.xfail_marker_fails")
def test_marker_fails(claim):
    claim.close(2.0, 1.0)

@pytest.mark.claim("hide.skip_before")
def test_skip_before(claim):
    claim.close(1.0, 1.0)
    pytest.skip("data set unavailable")
"""


def test_skip_and_xfail_never_hide_a_recorded_failure(pytester):
    result, report = run(pytester, HIDING)
    v = verdicts(report)
    assert v == {"hide.skip_after_fails": "FAILS", "hide.xfail_after_fails": "FAILS",
                 "hide.skip_after_error": "ERROR", "hide.xfail_marker_error": "ERROR",
                 "hide.xfail_marker_fails": "FAILS", "hide.skip_before": "SKIPPED"}, v
    outcomes = result.parseoutcomes()
    # two FAILS not expected by anyone, two ERRORs: failed; the xfail-marked FAILS is an expected failure
    assert outcomes.get("failed") == 4 and outcomes.get("xfailed") == 1 and outcomes.get("skipped") == 1, outcomes
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert claim(report, "hide.xfail_marker_fails")["xfail"] == "the source says it fails"


def test_audit_mode_still_fails_on_error_after_skip(pytester):
    result, report = run(pytester, HIDING, "--ntk-audit", "-k", "skip_error or skip_before")
    assert verdicts(report) == {"hide.skip_after_error": "ERROR", "hide.skip_before": "SKIPPED"}
    assert result.ret == pytest.ExitCode.TESTS_FAILED


EXIT = """
import pytest
from pytest_ntk import ClaimFailed

@pytest.mark.claim("exit.first")
def test_first(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("exit.mid")
def test_mid(claim):
    try:
        claim.close(3.0, 1.0)
    except ClaimFailed:
        pass
    pytest.exit("stop here", returncode=0)

@pytest.mark.claim("exit.never")
def test_never(claim):
    claim.close(1.0, 1.0)
"""


def test_pytest_exit_zero_mid_claim_does_not_exit_zero(pytester):
    result, report = run(pytester, EXIT, subprocess=True)
    v = verdicts(report)
    assert v == {"exit.first": "HOLDS", "exit.mid": "ERROR"}, v
    mid = claim(report, "exit.mid")
    assert [m["verdict"] for m in mid["measurements"]] == ["FAILS"]  # what it recorded stays
    assert report["complete"] is False and report["not_run"] == ["exit.never"]
    assert result.ret != 0


# ---------------------------------------------------------------------------- one claim, one id
IDS = """
import pytest

@pytest.mark.parametrize("x", [1, "1"])
@pytest.mark.claim("ids.text")
def test_text(claim, x):
    claim.close(1.0, 1.0)

@pytest.mark.parametrize("f", [lambda v: v, lambda v: 2 * v])
@pytest.mark.claim("ids.lambdas")
def test_lambdas(claim, f):
    claim.close(f(1.0), f(1.0))

@pytest.mark.parametrize("x", [1])
@pytest.mark.claim("ids.lit")
def test_param(claim, x):
    claim.close(1.0, 1.0)

@pytest.mark.claim("ids.lit[x=1]")
def test_literal(claim):
    claim.close(1.0, 1.0)

@pytest.mark.parametrize("x", [1, 2])
@pytest.mark.claim("ids.fine")
def test_fine(claim, x):
    claim.close(1.0, 1.0)
"""


def test_colliding_claim_ids_are_errors_naming_both_tests(pytester):
    result, report = run(pytester, IDS)
    by_node = {c["nodeid"]: c for c in report["claims"]}
    assert len(by_node) == 8
    for node, c in by_node.items():
        if "test_fine" in node:
            assert c["verdict"] == "HOLDS"
            continue
        assert c["verdict"] == "ERROR", (node, c)
        assert "test_hostile.py::" in c["message"] and c["message"].count("test_hostile.py::") >= 2, c["message"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_baseline_gate_refuses_two_claims_with_one_id():
    from pytest_ntk.report import baseline

    report = {"claims": [{"id": "a", "nodeid": "t.py::x", "verdict": "HOLDS", "measurements": []},
                         {"id": "a", "nodeid": "t.py::y", "verdict": "FAILS", "measurements": []}]}
    cmp = baseline.compare({"claims": {"a": {"verdict": "HOLDS", "nodeid": "t.py::x"}}}, report)
    assert cmp.gate_failed and "reported by two tests" in " ".join(cmp.notes())


# ---------------------------------------------------------------------------- statistics read valid evidence
STATS = """
import numpy as np
import pytest

@pytest.mark.claim("st.axis")
def test_axis(claim):
    per_point = np.array([[1.0, 1.2], [0.9, 1.1], [1.05, 0.95], [1.0, 1.0]])  # 4 seeds x 2 points
    m = claim.samples(per_point, predicted=1.0, rtol=0.2, axis=0)
    assert m.n == 4

@pytest.mark.claim("st.constant")
def test_constant(claim):
    claim.samples([1.0, 1.0, 1.0, 1.0], predicted=1.0)

@pytest.mark.claim("st.slope_constant")
def test_slope_constant(claim):
    x = [1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    claim.slope(x, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25], expected=-1.0, tol=0.1)

@pytest.mark.claim("st.high_confidence")
@pytest.mark.tolerance(confidence=0.9999)
def test_confidence(claim):
    claim.close(1.0, 1.0)
"""


def test_statistics_refuse_or_reduce_explicitly_and_warn_on_zero_variance(pytester):
    result, report = run(pytester, STATS)
    v = verdicts(report)
    assert v == {"st.axis": "HOLDS", "st.constant": "HOLDS", "st.slope_constant": "HOLDS",
                 "st.high_confidence": "ERROR"}, v
    axis = claim(report, "st.axis")["measurements"][0]
    assert axis["n"] == 4 and "axis 0" in axis["detail"]["reduced"]
    assert "zero variance across 4 seeds" in claim(report, "st.constant")["measurements"][0]["warnings"][0]
    assert "are the seeds used" in claim(report, "st.slope_constant")["measurements"][0]["warnings"][0]
    assert "confidence must lie in [0.5, 0.999]" in claim(report, "st.high_confidence")["message"]
    result.stdout.fnmatch_lines(["*WARNING st.constant: zero variance across 4 seeds*"])


# ---------------------------------------------------------------------------- exact numbers stay exact
EXACT = """
import decimal, fractions
import numpy as np
import pytest
from pytest_ntk import ClaimError

CASES = {
    "big_int": lambda c: c.at_most(0, 2**53 + 1),
    "int64": lambda c: c.close(np.int64(2**62 + 1), 2.0**62, rtol=0.0),
    "decimal": lambda c: c.close(decimal.Decimal("0.1"), 0.1, rtol=0.0),
    "fraction": lambda c: c.close(fractions.Fraction(1, 3), 1 / 3, rtol=0.0),
    "uint64": lambda c: c.close(np.array([2**64 - 1], dtype=np.uint64), [2.0**64], rtol=0.0),
}

@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.claim("ex.refused")
def test_refused(claim, case):
    CASES[case](claim)

@pytest.mark.claim("ex.longdouble")
def test_longdouble(claim):
    x = np.longdouble(1) / np.longdouble(3)
    if np.finfo(np.longdouble).nmant <= 52:
        pytest.skip("longdouble is float64 here")
    claim.close(x, 1 / 3, rtol=0.0)

@pytest.mark.claim("ex.accepted")
def test_accepted(claim):
    claim.close(decimal.Decimal("0.5"), 0.5, rtol=0.0, name="an exact Decimal")
    claim.close(fractions.Fraction(3, 4), 0.75, rtol=0.0, name="an exact Fraction")
    claim.at_most(2**60, 2.0**61, name="a big int that float64 holds")

@pytest.mark.claim("ex.bfloat16")
def test_bfloat16(claim):
    import jax.numpy as jnp
    claim.close(jnp.asarray([1.0, 2.0], dtype=jnp.bfloat16), [1.0, 2.0], rtol=0.0)

@pytest.mark.tolerance(rtol=True)
@pytest.mark.claim("ex.marker_bool")
def test_marker_bool(claim):
    claim.close(1.5, 1.0)

@pytest.mark.tolerance(rtol="0.95")
@pytest.mark.claim("ex.marker_str")
def test_marker_str(claim):
    claim.close(1.5, 1.0)
"""


def test_exact_numbers_are_compared_exactly_or_refused(pytester):
    result, report = run(pytester, EXACT)
    v = verdicts(report)
    refused = {k: x for k, x in v.items() if k.startswith("ex.refused")}
    assert set(refused.values()) == {"ERROR"} and len(refused) == 5, refused
    assert "exactly" in claim(report, "ex.refused[case=fraction]")["message"]
    assert v["ex.longdouble"] in ("ERROR", "SKIPPED")
    assert v["ex.accepted"] == "HOLDS" and v["ex.bfloat16"] == "HOLDS"
    assert v["ex.marker_bool"] == "ERROR" and "True" in claim(report, "ex.marker_bool")["message"]
    assert v["ex.marker_str"] == "ERROR" and "'0.95'" in claim(report, "ex.marker_str")["message"]


# ---------------------------------------------------------------------------- no INTERNALERROR, no lost claim
ODD = """
import numpy as np
import pytest

@pytest.mark.claim("odd.numpy_names")
def test_numpy_names(claim):
    with claim.stage(np.int64(3)):
        pass
    claim.table(np.int64(1), [np.str_("w"), "v"], [[np.int64(2), np.float32(0.5)], [3, float("nan")]])
    claim.attach("d", {np.int64(4): np.float64(1.5), "arr": np.arange(2)})
    claim.close(np.float32(1.0), 1.0, name=np.int64(7))
"""


def test_numpy_names_and_nan_cells_reach_the_report(pytester):
    result, report = run(pytester, ODD, "--ntk-html", "r.html", "--ntk-markdown", "r.md")
    c = claim(report, "odd.numpy_names")
    assert c["verdict"] == "HOLDS"
    assert c["stages"][0]["name"] == "3" and c["measurements"][0]["name"] == "7"
    table = c["artifacts"][0]
    assert table["name"] == "1" and table["rows"] == [[2, 0.5], [3, "NaN"]]
    assert (pytester.path / "r.html").exists() and (pytester.path / "r.md").exists()
    assert result.ret == 0


@pytest.mark.parametrize("entry, word", [
    ({"verdict": 3}, "verdict 3"),
    ({"verdict": "HOLDS", "nodeid": 7}, "nodeid 7"),
    ({"verdict": "HOLDS", "gap": "small"}, "gap 'small'"),
    ({"verdict": "HOLDS", "ci": [1]}, "has ci"),
    ({"verdict": "MAYBE"}, "verdict 'MAYBE'"),
])
def test_baseline_with_wrong_types_is_a_clear_gate_error(pytester, entry, word):
    pytester.makepyfile(test_b="import pytest\n@pytest.mark.claim('b.c')\ndef test_c(claim):\n    claim.close(1.0, 1.0)\n")
    base = pytester.path / "baseline.json"
    base.write_text(json.dumps({"schema": 1, "claims": {"b.c": entry}}))
    result = pytester.runpytest(*INNER, f"--ntk-baseline={base}")
    result.stdout.fnmatch_lines([f"*baseline gate FAILED*{word}*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_worker_dying_in_a_fixture_setup_still_reports_the_claim(pytester):
    pytest.importorskip("xdist")
    source = """
        import os
        import pytest

        @pytest.fixture
        def dies():
            os._exit(3)

        @pytest.mark.claim("die.setup")
        def test_dies(claim, dies):
            claim.close(1.0, 1.0)

        @pytest.mark.claim("die.fine")
        def test_fine(claim):
            claim.close(1.0, 1.0)
    """
    result, report = run(pytester, source, "-n", "1")
    v = verdicts(report)
    assert v["die.setup"] == "ERROR" and "crashed" in claim(report, "die.setup")["message"]
    assert result.ret != 0


# ---------------------------------------------------------------------------- seeds do not alias
@pytest.mark.parametrize("seed", ["4294967296", "-1", "18446744073709551616"])
def test_seed_outside_32_bits_is_a_usage_error(pytester, seed):
    pytester.makepyfile(test_s="def test_s():\n    pass\n")
    result = pytester.runpytest(*INNER, f"--ntk-seed={seed}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ntk-seed must lie in [[]0, 2**32 - 1]*"])


def test_seed_range_edges_give_distinct_seeds():
    from pytest_ntk.verdicts import derive_seed

    assert len({derive_seed(s, "a") for s in (0, 1, 2**32 - 1)}) == 3
    with pytest.raises(ValueError, match="2\\*\\*32"):
        derive_seed(2**32, "a")
