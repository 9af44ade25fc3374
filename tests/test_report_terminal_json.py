"""The reports: the "NTK claims" terminal table, the JSON report (schema, atomic write) and xdist."""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import pytest

from pytest_ntk.report import jsonreport, terminal

# inner sessions need neither the cache nor hypothesis' plugin (which would re-import hypothesis,
# assertion-rewritten, in every in-process run: pytester drops modules a run imported)
INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str, name: str = "ntk.json"):
    path = pytester.path / name
    result = pytester.runpytest(*INNER, f"--ntk-json={path}", *args)
    return result, json.loads(path.read_text())


TABLE = """
import pytest

@pytest.mark.claim("tbl.holds", expect="holds")
def test_holds(claim):
    claim.close(1.04, 1.0)  # the gap is 0.040000000000000036 in binary

@pytest.mark.claim("tbl.fails", expect="holds")
def test_fails(claim):
    claim.close(1.0 / 3.0, 0.5, rtol=0.1)  # 0.3333333333333333 vs 0.5: gap 1/6

@pytest.mark.claim("tbl.samples")
def test_samples(claim):
    # mean 1.1, sd 0.1, n 3: 95% CI 1.1 -+ 4.3027 * 0.1 / sqrt(3) = [0.8516, 1.348]
    claim.samples([1.0, 1.2, 1.1], predicted=1.0)

@pytest.mark.claim("tbl.error")
def test_error(claim):
    raise ValueError("width must be positive, got -3")

@pytest.mark.claim("tbl.two")
def test_two(claim):
    claim.close(2.0, 2.0, name="train")  # margin 0.1: the decisive one
    claim.close(3.1, 3.0, rtol=0.1, name="test")  # margin 0.3 - 0.1 = 0.2
"""


def _table(result) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if re.match(r"^=+ NTK claims =+$", line))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("NTK claims:"))
    return lines[start : end + 1]


def test_terminal_table(pytester):
    pytester.makepyfile(test_table=TABLE)
    result, report = run(pytester)
    table = _table(result)
    assert re.split(r"\s{2,}", table[1].strip()) == [
        "claim", "verdict", "measured", "predicted", "gap", "tolerance", "margin", "CI", "rivals out", "source says"]
    rows = {re.split(r"\s{2,}", line.strip())[0]: re.split(r"\s{2,}", line.strip()) for line in table[2:]}
    # '0.05*': the profile's default tolerance (the claim gave none), explained under the table
    assert rows["tbl.holds"] == ["tbl.holds", "HOLDS", "1.04", "1", "0.04", "0.05*", "0.01", "holds (agrees)"]
    assert rows["tbl.fails"] == ["tbl.fails", "FAILS", "0.3333", "0.5", "0.1667", "0.05", "-0.1167",
                                 "holds (contradicts)"]
    assert rows["tbl.samples"] == ["tbl.samples", "INCONCLUSIVE", "1.1", "1", "0.1", "0.05*", "-0.05",
                                   "[0.852, 1.35]"]
    assert rows["tbl.error"] == ["tbl.error", "ERROR"]
    assert rows["tbl.two (train)"] == ["tbl.two (train)", "HOLDS", "2", "2", "0", "0.1*", "0.1"]
    assert "* tolerance from the profile's default (the claim gave none)" in table
    assert "ERROR tbl.error: ValueError: width must be positive, got -3" in table
    assert table[-1] == "NTK claims: 2 HOLDS, 1 FAILS, 1 INCONCLUSIVE, 1 ERROR"
    # readable numbers: no 17-digit floats anywhere in the table
    assert not any(re.search(r"\d\.\d{6,}", line) for line in table), table
    assert len(report["claims"]) == 5


def test_terminal_table_verbose_lists_every_measurement(pytester):
    pytester.makepyfile(test_table=TABLE)
    result, _ = run(pytester, "-v")
    table = _table(result)
    i = next(i for i, line in enumerate(table) if line.startswith("tbl.two"))
    first, second = (re.split(r"\s{2,}", line.strip()) for line in table[i : i + 2])
    assert first == ["tbl.two (train)", "HOLDS", "2", "2", "0", "0.1*", "0.1"]
    assert second == ["test", "HOLDS", "3.1", "3", "0.1", "0.3", "0.2"]


def test_no_table_without_claims(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result, report = run(pytester)
    assert "NTK claims" not in result.stdout.str()
    assert report["claims"] == [] and report["complete"] is True


def test_render_directly():
    lines = []
    claims = [{"id": "x", "verdict": "HOLDS", "measurements": [
        {"name": "close", "kind": "close", "verdict": "HOLDS", "measured": 123456.789, "predicted": 1e-12,
         "gap": 0.1 + 0.2, "tolerance": None, "margin": -2.5e-8, "ci": [0.1, None]}]}]
    terminal.render(claims, lambda text="", **kw: lines.append(text))
    row = re.split(r"\s{2,}", lines[1].strip())
    assert row[:4] == ["x", "HOLDS", "1.235e+05", "1e-12"]
    assert row[4] == "0.3" and row[5] == "-2.5e-08"  # empty tolerance cell collapses with the spacing
    assert row[6] == "[0.1, inf]"  # JSON null for an unbounded end of an interval
    assert lines[-1] == "NTK claims: 1 HOLDS"


def test_unbounded_interval_in_the_table(pytester):
    pytester.makepyfile(test_one_seed="""
import pytest

@pytest.mark.claim("one.seed")
def test_one_seed(claim):
    claim.samples([1.0], predicted=1.0)
""")
    result, report = run(pytester)
    assert report["claims"][0]["measurements"][0]["ci"] == [None, None]
    (row,) = [line for line in _table(result) if line.startswith("one.seed")]
    assert re.split(r"\s{2,}", row) == ["one.seed", "INCONCLUSIVE", "1", "1", "0", "0.05*", "0.05", "[-inf, inf]"]


# ---------------------------------------------------------------------------- JSON report
SCHEMA_CLAIMS = """
import pytest

@pytest.mark.claim("j.holds", source="arXiv:2501.10929", statement="GP within 5% of NTK", expect="holds")
@pytest.mark.parametrize("depth", [1])
def test_holds(depth, claim):
    claim.close(1.04, 1.0)
    claim.samples([1.0, 1.01, 0.99], predicted=1.0)

@pytest.mark.claim("j.error")
def test_error(claim):
    claim.close(float("inf"), 1.0)

@pytest.mark.claim("j.marker", bogus=1)
def test_marker(claim):
    claim.close(1.0, 1.0)
"""

CLAIM_KEYS = {"id", "nodeid", "params", "source", "statement", "expect", "verdict", "duration_s", "message",
              "measurements"}
MEASUREMENT_KEYS = {"name", "measured", "predicted", "rtol", "atol", "tolerance", "gap", "margin", "ci"}


def test_json_schema(pytester):
    pytester.makepyfile(test_schema=SCHEMA_CLAIMS)
    result, report = run(pytester, name="out/sub/report.json")  # parent folders are created
    assert set(report) == {"schema", "run", "complete", "claims", "not_run"}
    assert report["not_run"] == []
    assert report["schema"] == 1 and report["complete"] is True
    run_ = report["run"]
    assert {"time", "git_commit", "python", "versions", "device", "profile"} <= set(run_)
    assert {"jax", "numpy", "neural-tangents", "pytest"} <= set(run_["versions"])
    assert run_["git_commit"] is None  # pytester's folder is no git repository
    assert run_["profile"]["name"] == "quick" and run_["seed"] == 0
    assert abs(dt.datetime.fromisoformat(run_["time"]) - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(hours=1)
    claims = {c["id"]: c for c in report["claims"]}
    assert set(claims) == {"j.holds[depth=1]", "j.error", "j.marker"}
    for c in claims.values():
        assert CLAIM_KEYS <= set(c), set(c) ^ CLAIM_KEYS
        for m in c["measurements"]:
            assert MEASUREMENT_KEYS <= set(m)
    holds = claims["j.holds[depth=1]"]
    assert holds["params"] == {"depth": 1} and holds["expect"] == "holds" and holds["verdict"] == "HOLDS"
    assert holds["source"] == "arXiv:2501.10929" and holds["statement"] == "GP within 5% of NTK"
    assert holds["nodeid"] == "test_schema.py::test_holds[1]"
    assert isinstance(holds["duration_s"], float) and 0 <= holds["duration_s"] < 10
    close, samples = holds["measurements"]
    assert close["ci"] is None and close["rtol"] == 0.05
    assert samples["ci"][0] < 1.0 < samples["ci"][1] and samples["name"] == "samples"
    # complete even when claims error, at collection or at run time
    assert claims["j.error"]["verdict"] == claims["j.marker"]["verdict"] == "ERROR"
    assert "bogus" in claims["j.marker"]["message"]
    assert claims["j.marker"]["measurements"] == []
    # the file is strict JSON (no NaN/Infinity literals) and no temporary file is left behind
    text = (pytester.path / "out/sub/report.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert sorted(p.name for p in (pytester.path / "out/sub").iterdir()) == ["report.json"]


def test_relative_json_path_is_fixed_at_start_even_if_a_claim_changes_directory(pytester):
    pytester.makepyfile(test_chdir="""
import pytest

@pytest.mark.claim("cd.first")
def test_first(claim, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "marker").write_text("")
    claim.close(1.0, 1.0)

@pytest.mark.claim("cd.second")
def test_second(claim):
    claim.close(1.0, 1.0)
""")
    result = pytester.runpytest(*INNER, "--ntk-json=rel.json", "--basetemp=tmp")
    result.assert_outcomes(passed=2)
    assert len(json.loads((pytester.path / "rel.json").read_text())["claims"]) == 2
    (marker,) = (pytester.path / "tmp").rglob("marker")
    assert sorted(p.name for p in marker.parent.iterdir()) == ["marker"]  # no report written there


def test_json_params_with_non_finite_values_do_not_break_the_report(pytester):
    pytester.makepyfile(test_nan_param="""
import pytest

@pytest.mark.claim("np.case")
@pytest.mark.parametrize("scale", [float("nan"), 1.0])
def test_case(scale, claim):
    claim.close(1.0, 1.0)
""")
    result, report = run(pytester)
    result.assert_outcomes(passed=2)
    assert sorted(c["verdict"] for c in report["claims"]) == ["HOLDS", "HOLDS"]


def test_atomic_write_keeps_the_old_report_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    jsonreport.write(path, {"schema": 1, "claims": ["old"]})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(jsonreport.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        jsonreport.write(path, {"schema": 1, "claims": ["new"]})
    monkeypatch.undo()
    assert json.loads(path.read_text())["claims"] == ["old"]
    assert os.listdir(tmp_path) == ["report.json"]  # the temporary file was removed
    jsonreport.write(path, jsonreport.build({"seed": 0}, [], complete=False))
    assert jsonreport.read(path) == {"schema": 1, "run": {"seed": 0}, "complete": False, "claims": []}
    with pytest.raises(ValueError, match="not a pytest-ntk JSON report"):
        path.write_text('{"schema": 2, "claims": []}')
        jsonreport.read(path)


# ---------------------------------------------------------------------------- xdist
XDIST_CLAIMS = """
import os
import time
import pytest

@pytest.mark.claim("x.crash")
def test_crash(claim):
    claim.close(1.0, 1.0)
    if os.environ.get("NTK_TEST_CRASH") and os.environ.get("PYTEST_XDIST_WORKER"):
        os._exit(3)  # the worker dies mid-claim

@pytest.mark.claim("x.holds")
@pytest.mark.parametrize("k", [1, 2, 3])
def test_holds(k, claim):
    with claim.stage("work"):
        time.sleep(0.01)
    claim.attach("seed", claim.seed)
    claim.close(1.0 + 0.01 * k, 1.0)

@pytest.mark.claim("x.fails")
def test_fails(claim):
    claim.at_least([3.0, 0.5], 1.0)

@pytest.mark.claim("x.inconclusive")
def test_inconclusive(claim):
    claim.samples([0.9, 1.1, 1.0], predicted=1.0)

@pytest.mark.claim("x.error")
def test_error(claim):
    claim.slope([1.0, 2.0, 3.0], [1.0, float("nan"), 3.0], expected=1.0, tol=0.1)

@pytest.mark.claim("x.marker", expect="perhaps")
def test_marker(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("x.dup")
def test_dup_a(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("x.dup")
def test_dup_b(claim):
    claim.close(1.0, 1.0)
"""

WRITE_LOG = """
import os

if os.environ.get("NTK_TEST_LOG_WRITES"):
    from pytest_ntk.report import jsonreport

    _write = jsonreport.write

    def write(path, report):
        with open(os.environ["NTK_TEST_LOG_WRITES"], "a") as fh:
            fh.write(os.environ.get("PYTEST_XDIST_WORKER", "controller") + "\\n")
        _write(path, report)

    jsonreport.write = write
"""


def _comparable(report):
    out = {}
    for c in report["claims"]:
        c = dict(c)
        c.pop("duration_s")
        c["stages"] = [s["name"] for s in c["stages"]]
        out[c["nodeid"]] = c
    return out


def test_xdist_gives_the_serial_verdicts_and_one_report(pytester, monkeypatch):
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)  # this test may itself run in an xdist worker
    pytester.makepyfile(test_x=XDIST_CLAIMS)
    pytester.makeconftest(WRITE_LOG)
    serial_result, serial = run(pytester, name="serial.json")
    serial_result.assert_outcomes(passed=4, failed=2, xfailed=1, errors=3)

    log = pytester.path / "writes.log"
    monkeypatch.setenv("NTK_TEST_LOG_WRITES", str(log))
    monkeypatch.setenv("NTK_TEST_CRASH", "1")
    path = pytester.path / "xdist.json"
    result = pytester.runpytest_subprocess(*INNER, "-n", "2", f"--ntk-json={path}")
    result.assert_outcomes(passed=3, failed=3, xfailed=1, errors=3)
    parallel = json.loads(path.read_text())
    assert parallel["complete"] is True
    crashed, serial_crash = (r["claims"][0] for r in (parallel, serial))
    assert crashed["nodeid"] == serial_crash["nodeid"] == "test_x.py::test_crash"
    assert serial_crash["verdict"] == "HOLDS"
    # the worker died after the claim started: the PENDING announcement makes it an ERROR
    assert crashed["verdict"] == "ERROR" and "process broke" in crashed["message"], crashed
    del parallel["claims"][0], serial["claims"][0]
    a, b = _comparable(parallel), _comparable(serial)
    assert a.keys() == b.keys()
    for nodeid in a:
        assert a[nodeid] == b[nodeid], {k: (a[nodeid].get(k), b[nodeid].get(k)) for k in a[nodeid]
                                        if a[nodeid].get(k) != b[nodeid].get(k)}
    assert {c["id"]: c["verdict"] for c in parallel["claims"] if c["id"] != "x.dup"} == {
        "x.holds[k=1]": "HOLDS", "x.holds[k=2]": "HOLDS", "x.holds[k=3]": "HOLDS", "x.fails": "FAILS",
        "x.inconclusive": "INCONCLUSIVE", "x.error": "ERROR", "x.marker": "ERROR"}
    # one report, written by the controller only
    writers = set(log.read_text().split())
    assert writers == {"controller"}, writers
    # the controller prints the table with every claim
    result.stdout.fnmatch_lines(["*NTK claims: 3 HOLDS, 1 FAILS, 1 INCONCLUSIVE, 5 ERROR*"])


def test_verbose_rows_keep_the_deciding_measurement_on_the_claims_row():
    """With -v every measurement gets a row; the claim's row must show the numbers that decided its
    verdict, not those of its first measurement (a HOLDS number next to an INCONCLUSIVE verdict)."""
    held = {"name": "first", "kind": "close", "verdict": "HOLDS", "measured": 1.0, "predicted": 1.0}
    open_ = {"name": "second", "kind": "close", "verdict": "INCONCLUSIVE", "measured": 2.5, "predicted": 2.0}
    claim = {"id": "x.two", "verdict": "INCONCLUSIVE", "measurements": [held, open_]}
    for verbose in (False, True):
        first_row = terminal.rows([claim], all_measurements=verbose)[0]
        assert first_row[0] == "x.two (second)" and first_row[1] == "INCONCLUSIVE" and first_row[2] == "2.5"
    rows = terminal.rows([claim], all_measurements=True)
    assert len(rows) == 2 and rows[1][0].strip() == "first" and rows[1][1] == "HOLDS"
