"""End to end through pytest: --ntk-html/--ntk-markdown/--ntk-history/--ntk-baseline on a tiny claim file."""

from __future__ import annotations

import json

import pytest

from pytest_ntk.report import baseline, history

CLAIMS = """
import os
import pytest

@pytest.mark.claim("demo.flip", source="a test", statement="flips with NTK_DEMO_VALUE")
def test_flip(claim):
    with claim.stage("train"):
        value = float(os.environ.get("NTK_DEMO_VALUE", "1.0"))
    claim.close(value, 1.0, rtol=0.05)

@pytest.mark.claim("demo.steady", source="a test", statement="always holds")
def test_steady(claim):
    claim.close(2.0, 2.0)
"""


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("NTK_DEMO_VALUE", raising=False)
    pytester.makepyfile(test_claims=CLAIMS)
    return pytester


def _opts(p, *extra):
    return ["-p", "no:cacheprovider", "--ntk-audit", "--ntk-html", str(p.path / "r.html"), "--ntk-markdown",
            str(p.path / "r.md"), "--ntk-history", str(p.path / "hist"), "--ntk-baseline",
            str(p.path / "baseline.json"), *extra]


def test_a_flipped_verdict_fails_the_gate_and_names_the_claim(project, monkeypatch):
    p = project
    first = p.runpytest(*_opts(p, "--ntk-baseline-update"))
    assert first.ret == 0, first.stdout.str()
    first.stdout.fnmatch_lines(["*baseline*baseline.json updated: 2 claims*", "*HTML report written to*r.html"])
    doc = baseline.load(p.path / "baseline.json")
    assert {k: v["verdict"] for k, v in doc["claims"].items()} == {"demo.flip": "HOLDS", "demo.steady": "HOLDS"}

    same = p.runpytest(*_opts(p))
    assert same.ret == 0, same.stdout.str()
    same.stdout.fnmatch_lines(["*baseline gate passed*2 claim verdicts as in the baseline*"])

    monkeypatch.setenv("NTK_DEMO_VALUE", "1.5")  # demo.flip now FAILS; --ntk-audit alone would exit 0
    flipped = p.runpytest(*_opts(p))
    assert flipped.ret != 0
    flipped.stdout.fnmatch_lines([
        "*baseline gate FAILED*1 verdict change*",
        "*HOLDS -> FAILS  demo.flip: baseline HOLDS*measured 1 *this run FAILS*measured 1.5*",
    ])
    # every report saw the change
    assert "HOLDS -&gt; FAILS" in (p.path / "r.html").read_text()
    assert "`HOLDS -> FAILS` `demo.flip`" in (p.path / "r.md").read_text()
    recs = history.read(p.path / "hist")
    assert [r["claims"]["demo.flip"]["verdict"] for r in recs] == ["HOLDS", "HOLDS", "FAILS"]
    assert "history (last 3 runs)" in (p.path / "r.html").read_text()
    # the baseline is untouched by a comparing run
    assert baseline.load(p.path / "baseline.json") == doc


def test_a_narrowed_run_does_not_call_unselected_claims_missing(project):
    p = project
    assert p.runpytest(*_opts(p, "--ntk-baseline-update")).ret == 0
    narrowed = p.runpytest(*_opts(p, "-k", "steady"))
    assert narrowed.ret == 0, narrowed.stdout.str()
    narrowed.stdout.fnmatch_lines(["*baseline gate passed*", "*1 baseline claim(s) not run here, not compared*"])
    # a claim whose test disappeared from a full run is missing
    p.makepyfile(test_claims=CLAIMS.split('@pytest.mark.claim("demo.steady"')[0])
    gone = p.runpytest(*_opts(p))
    assert gone.ret != 0
    gone.stdout.fnmatch_lines(["*HOLDS -> (missing)  demo.steady*"])


def test_a_new_claim_and_a_missing_baseline_fail_the_gate(project):
    p = project
    missing = p.runpytest(*_opts(p))
    assert missing.ret != 0
    missing.stdout.fnmatch_lines(["*baseline gate FAILED*does not exist; create it with --ntk-baseline-update*"])
    assert p.runpytest(*_opts(p, "--ntk-baseline-update")).ret == 0
    p.makepyfile(test_more="""
import pytest
@pytest.mark.claim("demo.added", source="s", statement="new")
def test_added(claim):
    claim.at_most(0.5, 1.0)
""")
    added = p.runpytest(*_opts(p))
    assert added.ret != 0
    added.stdout.fnmatch_lines(["*(new) -> HOLDS  demo.added*"])


def test_step_summary(project, monkeypatch):
    p = project
    summary = p.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = p.runpytest("-p", "no:cacheprovider")
    assert res.ret == 0
    text = summary.read_text()
    assert "## pytest-ntk claims" in text and "`demo.flip`" in text


@pytest.mark.parametrize("flag", ["--ntk-html", "--ntk-json", "--ntk-markdown", "--ntk-history"])
def test_unwritable_report_path_is_a_usage_error_before_any_claim_runs(project, flag):
    """A report that cannot be written is refused at start, not lost after an hour of claims."""
    p = project
    (p.path / "blocker").write_text("a file, not a folder")
    res = p.runpytest("-p", "no:cacheprovider", flag, str(p.path / "blocker" / "r.out"))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([f"*pytest-ntk: {flag} *blocker*r.out cannot be written*"])
    assert "demo.flip" not in res.stdout.str()  # no claim ran


def test_report_path_that_is_a_directory_is_a_usage_error(project):
    res = project.runpytest("-p", "no:cacheprovider", "--ntk-json", str(project.path))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--ntk-json*is a directory*"])


def test_progress_lines_with_verbose_and_output_capture(project):
    res = project.runpytest("-p", "no:cacheprovider", "-v")
    assert res.ret == 0
    res.stdout.fnmatch_lines(["*demo.flip: train done in *s*"])


def test_reports_under_xdist(project):
    pytest.importorskip("xdist")
    p = project
    res = p.runpytest("-p", "no:cacheprovider", "-n", "1", "-v", "--ntk-html", str(p.path / "r.html"),
                      "--ntk-history", str(p.path / "hist"))
    assert res.ret == 0, res.stdout.str()
    assert len(history.read(p.path / "hist")) == 1  # the controller appends once, the workers never
    text = (p.path / "r.html").read_text()
    assert 'data-id="demo.flip"' in text and 'data-id="demo.steady"' in text
    rec = json.loads((p.path / "hist" / history.FILENAME).read_text())
    assert set(rec["claims"]) == {"demo.flip", "demo.steady"}
