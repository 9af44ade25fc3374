"""A terminal that explains itself: pytest's counts reconciled with the verdicts, usage errors at the
user's line, long names cut with an ellipsis, long work shown while it runs, reports readable by others."""

from __future__ import annotations

import os
import re
import stat

import pytest

INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:randomly")

CLAIMS = """
import pytest

@pytest.mark.claim("u.fails")
def test_fails(claim):
    claim.close(2.0, 1.0)

@pytest.mark.claim("u.inconclusive")
def test_inconclusive(claim):
    claim.samples([0.9, 1.1, 1.0], predicted=1.0)

@pytest.mark.claim("u.holds")
def test_holds(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("u.usage", bogus=1)
def test_usage(claim):
    claim.close(1.0, 1.0)

@pytest.mark.claim("u.a.very.long.claim.identifier.that.goes.on.and.on.and.on.for.a.long.time.indeed")
def test_long(claim):
    claim.close(1.0, 1.0, name="and a long measurement name too")
"""


def test_pytest_counts_are_reconciled_with_the_verdicts(pytester):
    pytester.makepyfile(test_u=CLAIMS)
    result = pytester.runpytest(*INNER, "--ntk-audit")
    result.stdout.fnmatch_lines([
        "NTK claims: 2 HOLDS, 1 FAILS, 1 INCONCLUSIVE, 1 ERROR",
        "in pytest's summary line: 2 passed = 2 HOLDS; 1 failed or error = 1 ERROR; "
        "2 xfailed = 1 FAILS (findings of the audit) + 1 INCONCLUSIVE",
        "*2 passed, 2 xfailed, 1 error*",
    ])


def test_a_usage_error_shows_the_users_lines_not_the_plugins_frames(pytester):
    pytester.makepyfile(test_u=CLAIMS)
    result = pytester.runpytest(*INNER, "-k", "usage")
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "test_u.py:15: ClaimError: claim 'u.usage': unknown keyword(s) *bogus* in @pytest.mark.claim*",
        "*| @pytest.mark.claim(\"u.usage\", bogus=1)",
        "*| def test_usage(claim):",
    ])
    assert "pytest_ntk/" not in out.split("NTK claims")[0], out


def test_long_names_are_cut_with_an_ellipsis(pytester):
    pytester.makepyfile(test_u=CLAIMS)
    result = pytester.runpytest(*INNER, "-k", "long")
    row = next(line for line in result.stdout.lines if line.startswith("u.a.very"))
    assert "…" in row and len(row.split("  ")[0]) <= 72


def _run_with_stdout_to_file(pytester):
    """Run the inner pytest with file descriptor 1 sent to a file (the ticker writes to the real
    stdout, so not a terminal here); return the run's result and the file's text."""
    out_file = pytester.path / "out.txt"
    with open(out_file, "w") as fh:
        saved = os.dup(1)
        os.dup2(fh.fileno(), 1)
        try:
            result = pytester.runpytest(*INNER)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    return result, out_file.read_text()


def test_long_stages_print_plain_lines_when_output_is_not_a_terminal(pytester, monkeypatch):
    from pytest_ntk.harness import progress

    monkeypatch.setattr(progress, "PLAIN_AFTER_S", 0.3)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 100.0)
    monkeypatch.setattr(progress, "_TICK_S", 0.05)
    pytester.makepyfile(test_slow="""
        import time, pytest

        @pytest.mark.claim("slow.one")
        def test_slow(claim):
            with claim.stage("train the networks"):
                time.sleep(1.0)
            claim.close(1.0, 1.0)
    """)
    result, text = _run_with_stdout_to_file(pytester)
    assert result.ret == 0
    # the seconds shown depend on the machine's load; the lines themselves must be there
    assert re.search(r"\[pytest-ntk\] slow\.one: train the networks: running for \d+s", text), text
    assert re.search(r"\[pytest-ntk\] slow\.one: train the networks: done in \d+s", text), text


def test_parts_of_a_long_stage_show_the_count_and_an_estimate_of_what_is_left(pytester, monkeypatch):
    from pytest_ntk.harness import progress

    monkeypatch.setattr(progress, "PLAIN_AFTER_S", 0.2)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 100.0)
    monkeypatch.setattr(progress, "_TICK_S", 0.05)
    pytester.makepyfile(test_parts="""
        import time, pytest
        from pytest_ntk.harness.progress import advance

        @pytest.mark.claim("parts.one")
        def test_parts(claim):
            with claim.stage("train"):
                for k in range(3):
                    time.sleep(0.3)
                    advance(k + 1, 3, "chunks")
            claim.close(1.0, 1.0)
    """)
    result, text = _run_with_stdout_to_file(pytester)
    assert result.ret == 0
    # a line per part once the stage is long: the count, the time left (not after the last part), elapsed
    assert re.search(r"parts\.one: train: chunks 1/3, ~\d+s left \(elapsed \d+s\)", text), text
    assert re.search(r"parts\.one: train: chunks 2/3, ~\d+s left \(elapsed \d+s\)", text), text
    assert re.search(r"parts\.one: train: chunks 3/3 \(elapsed \d+s\)", text), text
    assert "lookup 1/1" not in text
    # -v: every part is a line of pytest's output
    result = pytester.runpytest(*INNER, "-v")
    result.stdout.fnmatch_lines(["*parts.one: train: chunks 1/3*", "*parts.one: train: chunks 3/3*"])


def test_advance_outside_a_session_does_nothing():
    from pytest_ntk.harness import progress

    progress.advance(1, 2, "anything")  # no session in this process's state, or one that ignores it


def test_reports_get_ordinary_permissions_and_no_lock_file_is_left(pytester):
    pytester.makepyfile(test_u="import pytest\n@pytest.mark.claim('p.c')\ndef test_c(claim):\n    claim.close(1.0, 1.0)\n")
    old = os.umask(0o022)
    try:
        result = pytester.runpytest(*INNER, "--ntk-json=r.json", "--ntk-html=r.html", "--ntk-markdown=r.md",
                                    "--ntk-history=hist")
    finally:
        os.umask(old)
    assert result.ret == 0
    for name in ("r.json", "r.html", "r.md", "hist/history.jsonl"):
        mode = stat.S_IMODE((pytester.path / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))
    assert sorted(p.name for p in (pytester.path / "hist").iterdir()) == ["history.jsonl"]


@pytest.mark.parametrize("marker", ['tolerance(rtol="0.1")', "tolerance(rtol=True)"])
def test_a_bad_tolerance_marker_is_a_usage_error_at_the_users_line(pytester, marker):
    pytester.makepyfile(test_t=f"import pytest\n@pytest.mark.{marker}\n@pytest.mark.claim('t.c')\n"
                               "def test_c(claim):\n    claim.close(1.0, 1.0)\n")
    result = pytester.runpytest(*INNER)
    result.stdout.fnmatch_lines(["test_t.py:2: ClaimError: claim 't.c': rtol must be a number*", "*| @pytest.mark.tol*"])
