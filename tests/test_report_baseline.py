"""The baseline gate: every kind of verdict change, the scope of missing claims, updates."""

from __future__ import annotations

import json

import pytest

from pytest_ntk.report import baseline
from pytest_ntk.report.jsonreport import build
from pytest_ntk.verdicts import ClaimResult, Measurement, Verdict


def claim(cid: str, verdict: str, *, measured=1.0, predicted=1.0, tol=0.05, nodeid=None, ms=None) -> dict:
    """A claim dict through the real verdict model (one ``close`` measurement by default)."""
    gap = abs(measured - predicted)
    if ms is None:
        ms = [Measurement(name="close", kind="close", verdict=Verdict(verdict) if verdict != "SKIPPED" else Verdict.HOLDS,
                          measured=measured, predicted=predicted, gap=gap, tolerance=tol, margin=tol - gap)]
    if verdict in ("ERROR", "SKIPPED"):
        ms = []
    return ClaimResult(id=cid, nodeid=nodeid or f"claims/test_a.py::test_{cid.replace('.', '_')}",
                       verdict=Verdict(verdict), measurements=ms, message=f"{cid} {verdict}").to_dict()


def report(*claims, complete=True, profile="quick") -> dict:
    run = {"time": "2025-01-01T00:00:00+00:00", "git_commit": "abc", "profile": {"name": profile}, "seed": 0}
    return build(run, list(claims), complete=complete)


BASE = report(
    claim("a.holds", "HOLDS", measured=1.01),
    claim("b.fails", "FAILS", measured=1.5),
    claim("c.inconclusive", "INCONCLUSIVE", measured=1.04),
    claim("d.error", "ERROR"),
    claim("e.gone", "HOLDS", nodeid="claims/sub/test_e.py::test_e"),
)


def kinds(comparison) -> dict[str, tuple[str, str]]:
    return {c.claim_id: (c.kind, c.transition) for c in comparison.changes}


def test_no_change_passes_and_numbers_drift_is_not_a_change():
    same = report(
        claim("a.holds", "HOLDS", measured=1.02),  # number moved, verdict did not
        claim("b.fails", "FAILS", measured=1.6),
        claim("c.inconclusive", "INCONCLUSIVE", measured=1.04),
        claim("d.error", "ERROR"),
        claim("e.gone", "HOLDS", nodeid="claims/sub/test_e.py::test_e"),
    )
    cmp = baseline.compare(baseline.build(BASE), same)
    assert cmp.changes == [] and not cmp.gate_failed
    assert cmp.unchanged == 5
    assert "passed" in cmp.notes("b.json")[0]


def test_every_kind_of_change_is_reported_with_both_numbers():
    now = report(
        claim("a.holds", "FAILS", measured=1.3),  # HOLDS -> FAILS
        claim("b.fails", "HOLDS", measured=1.0),  # FAILS -> HOLDS
        claim("c.inconclusive", "ERROR"),  # anything -> ERROR
        claim("d.error", "INCONCLUSIVE", measured=1.04),  # ERROR -> INCONCLUSIVE
        claim("f.new", "HOLDS"),  # new
        # e.gone missing
    )
    cmp = baseline.compare(baseline.build(BASE), now)
    assert kinds(cmp) == {
        "a.holds": ("changed", "HOLDS -> FAILS"),
        "b.fails": ("changed", "FAILS -> HOLDS"),
        "c.inconclusive": ("error", "INCONCLUSIVE -> ERROR"),
        "d.error": ("changed", "ERROR -> INCONCLUSIVE"),
        "e.gone": ("missing", "HOLDS -> (missing)"),
        "f.new": ("new", "(new) -> HOLDS"),
    }
    assert cmp.gate_failed
    notes = "\n".join(cmp.notes("claims/baseline.json"))
    assert "FAILED" in notes and "claims/baseline.json" in notes and "6 verdict changes" in notes
    line = next(n for n in cmp.notes() if "a.holds" in n)
    # both runs' numbers: the baseline's measured 1.01 (gap 0.01) and this run's 1.3 (gap 0.3)
    assert "measured 1.01" in line and "measured 1.3" in line and "gap 0.3" in line and "gap 0.01" in line


@pytest.mark.parametrize("before,after", [("HOLDS", "INCONCLUSIVE"), ("INCONCLUSIVE", "HOLDS"),
                                          ("FAILS", "INCONCLUSIVE"), ("HOLDS", "SKIPPED"), ("SKIPPED", "ERROR")])
def test_any_verdict_transition_is_a_change(before, after):
    cmp = baseline.compare(baseline.build(report(claim("x", before))), report(claim("x", after)))
    assert [c.transition for c in cmp.changes] == [f"{before} -> {after}"]


def test_missing_claims_count_only_inside_the_runs_scope():
    b = baseline.build(BASE)
    partial = report(*[c for c in BASE["claims"] if c["id"] != "e.gone"])
    # the run was given claims/test_a.py only: e.gone (claims/sub/...) was never meant to run
    cmp = baseline.compare(b, partial, baseline.Scope(paths=("claims/test_a.py",)))
    assert cmp.changes == [] and cmp.not_compared == ["e.gone"]
    assert any("not compared" in n for n in cmp.notes())
    # given claims/ (or the whole project): e.gone is missing
    for scope in (baseline.Scope(paths=("claims",)), baseline.Scope(), baseline.Scope(paths=("",))):
        assert kinds(baseline.compare(b, partial, scope)) == {"e.gone": ("missing", "HOLDS -> (missing)")}
    # narrowed by -k: nothing can be called missing
    assert baseline.compare(b, partial, baseline.Scope(paths=None, narrowed_by=("-k",))).changes == []
    # an interrupted run: absent claims are not compared
    assert baseline.compare(b, report(*partial["claims"], complete=False)).changes == []


def test_scope_covers_paths_and_node_ids():
    s = baseline.Scope(paths=("claims/liu2025", "claims/test_x.py::test_a"))
    assert s.covers("claims/liu2025/test_table.py::test_table")
    assert s.covers("claims/test_x.py::test_a")
    assert s.covers("claims/test_x.py::test_a[width=4]")
    assert not s.covers("claims/test_x.py::test_ab")
    assert not s.covers("claims/liu2025x/test.py::t")
    assert not s.covers("claims/jacot/test.py::t")
    assert baseline.Scope.from_dict(s.to_dict()) == s


def test_profile_mismatch_warns():
    cmp = baseline.compare(baseline.build(report(claim("x", "HOLDS"), profile="paper")), report(claim("x", "HOLDS")))
    assert any("profile 'paper'" in n for n in cmp.notes())


def test_key_numbers_are_the_decisive_measurement():
    ms = [Measurement("ok", "close", Verdict.HOLDS, 1.0, 1.0, 0.0, 0.1, 0.1),
          Measurement("worst", "close", Verdict.FAILS, 2.0, 1.0, 1.0, 0.1, -0.9),
          Measurement("bad", "close", Verdict.FAILS, 1.5, 1.0, 0.5, 0.1, -0.4)]
    c = ClaimResult(id="m", nodeid="n", verdict=Verdict.FAILS, measurements=ms).to_dict()
    k = baseline.key_numbers(c)
    assert (k["measurement"], k["measured"], k["margin"]) == ("worst", 2.0, -0.9)


def test_write_load_roundtrip_and_errors(tmp_path):
    path = tmp_path / "b.json"
    doc = baseline.build(BASE)
    baseline.write(path, doc)
    assert baseline.load(path) == json.loads(json.dumps(doc))
    assert list(json.loads(path.read_text())["claims"]) == sorted(doc["claims"])  # stable order for review
    with pytest.raises(baseline.BaselineError, match="does not exist.*--ntk-baseline-update"):
        baseline.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(baseline.BaselineError, match="could not be read"):
        baseline.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"schema": 1, "claims": {"x": {}}}')
    with pytest.raises(baseline.BaselineError, match="'x' has no verdict"):
        baseline.load(tmp_path / "other.json")


def test_update_keeps_out_of_scope_entries_and_drops_deleted_ones():
    b = baseline.build(BASE)
    now = report(claim("a.holds", "FAILS", measured=1.3))
    # a run of claims/test_a.py only: e.gone (another folder) is kept, b/c/d (same file, gone) dropped
    new = baseline.updated(b, now, baseline.Scope(paths=("claims/test_a.py",)))
    assert set(new["claims"]) == {"a.holds", "e.gone"}
    assert new["claims"]["a.holds"]["verdict"] == "FAILS"
    # a -k run replaces what ran and keeps everything else
    new = baseline.updated(b, now, baseline.Scope(narrowed_by=("-k",)))
    assert set(new["claims"]) == set(b["claims"]) and new["claims"]["a.holds"]["verdict"] == "FAILS"
    with pytest.raises(ValueError, match="incomplete"):
        baseline.updated(b, report(claim("a.holds", "HOLDS"), complete=False))
