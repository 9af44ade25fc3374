"""The suite helper (pytest_ntk.Suite) in real pytest sessions: settings per profile, seed streams,
cached computations, settings noted on each claim, statements that follow the active profile."""

from __future__ import annotations

import json
import textwrap

import pytest

INNER = ("-p", "no:hypothesispytest", "-p", "no:randomly")

CONFTEST = """
import numpy as np
from pytest_ntk import Suite

SETTINGS = {"quick": {"widths": [4, 8], "seeds": 3, "other": 1}, "paper": {"widths": [100], "seeds": 5, "other": 1}}
suite = Suite("toy", __file__, SETTINGS)
settings, _record = suite.fixtures()
LOG = []

@suite.computation(uses=("widths", "seeds"))
def table(run):
    LOG.append("table")
    with open("computed.log", "a") as f:
        f.write("table\\n")
    return {w: np.array(run.seeds(f"w={w}", run.settings["seeds"])) for w in run.settings["widths"]}

@suite.computation
def scaled(run, factor):
    with open("computed.log", "a") as f:
        f.write(f"scaled {factor}\\n")
    return np.arange(3.0) * factor
"""

CLAIMS = """
import pytest

@pytest.mark.claim("toy.widths", statement="at widths ${widths} with ${seeds} seeds (${profile} profile), e^{-t}")
def test_widths(claim, settings, table):
    assert list(table) == settings["widths"]
    claim.close(float(len(table)), float(len(settings["widths"])))

@pytest.mark.claim("toy.scaled")
def test_scaled(claim, scaled):
    claim.close(scaled(2.0).sum(), 6.0)
    claim.close(scaled(2.0).sum(), 6.0, name="again (a memory hit)")

@pytest.mark.claim("toy.bad_statement", statement="width ${nonexistent}")
def test_bad(claim):
    claim.close(1.0, 1.0)
"""


@pytest.fixture
def toy(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_toy=CLAIMS)
    return pytester


def _run(pytester, *args):
    path = pytester.path / "r.json"
    result = pytester.runpytest_subprocess(*INNER, f"--ntk-json={path}", *args)
    return result, json.loads(path.read_text())


def test_settings_statements_and_cache(toy):
    result, report = _run(toy)
    claims = {c["id"]: c for c in report["claims"]}
    widths = claims["toy.widths"]
    assert widths["verdict"] == "HOLDS"
    assert widths["statement"] == "at widths 4, 8 with 3 seeds (quick profile), e^{-t}"
    assert widths["settings"] == {"toy": {"widths": [4, 8], "seeds": 3, "other": 1}}
    assert widths["profile"] == "quick"
    assert claims["toy.scaled"]["verdict"] == "HOLDS"
    bad = claims["toy.bad_statement"]
    assert bad["verdict"] == "ERROR" and "${nonexistent}" in bad["message"]
    log = (toy.path / "computed.log").read_text().split("\n")
    assert log.count("table") == 1 and log.count("scaled 2.0") == 1
    # a second run reads both from disk
    (toy.path / "computed.log").unlink()
    result, again = _run(toy)
    assert not (toy.path / "computed.log").exists()
    assert {c["id"]: c["verdict"] for c in again["claims"]} == {c["id"]: c["verdict"] for c in report["claims"]}


def test_another_profile_and_an_override(toy):
    toy.makefile(".toml", pyproject=textwrap.dedent("""
        [tool.pytest_ntk.profiles.medium]
        base = "quick"
        [tool.pytest_ntk.profiles.medium.toy]
        widths = [4, 8, 16]
    """))
    _, report = _run(toy, "--ntk-profile", "paper")
    widths = next(c for c in report["claims"] if c["id"] == "toy.widths")
    assert widths["statement"].startswith("at widths 100 with 5 seeds (paper profile)")
    _, report = _run(toy, "--ntk-profile", "medium")
    widths = next(c for c in report["claims"] if c["id"] == "toy.widths")
    assert widths["statement"].startswith("at widths 4, 8, 16 with 3 seeds (medium profile)")


def test_editing_an_unused_setting_keeps_the_cached_value(toy):
    _run(toy)
    (toy.path / "computed.log").unlink()
    toy.makefile(".toml", pyproject=textwrap.dedent("""
        [tool.pytest_ntk.profiles.quick.toy]
        other = 2
    """))
    _run(toy)
    log = (toy.path / "computed.log").read_text().split("\n")
    assert "table" not in log  # `table` uses widths and seeds only
    assert "scaled 2.0" in log  # `scaled` uses every setting


def test_seed_streams_are_distinct_and_follow_the_base_seed():
    from pytest_ntk.harness.suite import Suite, SuiteRun

    suite = Suite("s", __file__, {"quick": {}})
    a = SuiteRun(suite, {}, profile="quick", base_seed=0, cache=None)
    b = SuiteRun(suite, {}, profile="quick", base_seed=1, cache=None)
    assert len({a.seed("x", 0), a.seed("x", 1), a.seed("y", 0), b.seed("x", 0)}) == 4
    assert a.seeds("x", 2) == [a.seed("x", 0), a.seed("x", 1)]


def test_bad_suite_definitions_are_refused():
    from pytest_ntk.harness.suite import Suite

    with pytest.raises(ValueError, match="name"):
        Suite("a b", __file__, {"quick": {}})
    with pytest.raises(ValueError, match="settings"):
        Suite("ok", __file__, {"quick": 3})


def test_the_recipe_digest_follows_code_not_comments_or_docstrings(tmp_path):
    from pytest_ntk import Suite
    """Editing a docstring or a comment of a suite's conftest keeps its cache; editing code does not."""
    conftest = tmp_path / "conftest.py"
    source = '''"""A suite."""
# settings
SETTINGS = {"quick": {"n": 3}}


def compute(x):
    """Square it."""
    return x * x
'''
    conftest.write_text(source)
    first = Suite("toy", conftest, {"quick": {}}).recipe
    conftest.write_text(source.replace("A suite.", "A suite, documented at length.")
                        .replace("# settings", "# the settings, per profile").replace("Square it.", "x^2."))
    assert Suite("toy", conftest, {"quick": {}}).recipe == first
    conftest.write_text(source.replace("x * x", "x * x * x"))
    assert Suite("toy", conftest, {"quick": {}}).recipe != first
    conftest.write_text(source.replace('"n": 3', '"n": 4'))  # a string or number in code is code
    assert Suite("toy", conftest, {"quick": {}}).recipe != first
    data = tmp_path / "table.csv"  # a non-Python recipe file: its bytes
    data.write_text("a,b\n")
    one = Suite("toy", [conftest, data], {"quick": {}}).recipe
    data.write_text("a, b\n")
    assert Suite("toy", [conftest, data], {"quick": {}}).recipe != one
