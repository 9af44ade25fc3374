"""The GitHub-flavoured Markdown summary: counts per verdict, the claims table, baseline changes.

Written with ``--ntk-markdown PATH`` and appended to ``$GITHUB_STEP_SUMMARY`` when that is set
(GitHub Actions shows it on the run's page). Tables a claim attaches (e.g. the Liu et al. RMSE
table) follow in collapsed ``<details>`` blocks.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..verdicts.model import ORDER, severity
from .baseline import decisive
from .fmt import num
from .jsonreport import atomic_write_text

__all__ = ["render", "write", "append_step_summary", "ORDER", "ICONS"]

ICONS = {"HOLDS": "✅", "FAILS": "❌", "INCONCLUSIVE": "❔", "ERROR": "💥", "SKIPPED": "⏭️"}


def _rank(c: dict) -> tuple:
    """Most severe first (ERROR, FAILS, INCONCLUSIVE, HOLDS), SKIPPED last, then by id."""
    v = c.get("verdict")
    return (1 if v == "SKIPPED" else 0, -severity(v), c.get("id", ""))


def cell(text) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, no newlines)."""
    s = "" if text is None else str(text)
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def _ci(ci) -> str:
    """``[lo, hi]``; a missing end (a non-finite bound, stored as null) reads -inf / inf."""
    if not ci or len(ci) != 2:
        return ""
    lo, hi = ci
    return f"[{num(lo, 3) if lo is not None else '-inf'}, {num(hi, 3) if hi is not None else 'inf'}]"


def _code(text: str) -> str:
    text = cell(text)
    return f"`{text}`" if text and "`" not in text else text


def _expect(c: dict) -> str:
    expect = c.get("expect")
    if not expect:
        return ""
    agrees = c.get("agrees_with_source")
    return f"{expect}" + ("" if agrees is None else (" ✓" if agrees else " ✗"))


def _rivals(c: dict) -> str:
    """``ruled out / named`` over the claim's measurements, or blank when it names none."""
    rivals = [r for m in c.get("measurements") or [] for r in m.get("rivals") or []]
    if not rivals:
        return ""
    out = sum(bool(r.get("ruled_out")) for r in rivals)
    standing = [r["name"] for r in rivals if not r.get("ruled_out")]
    return f"{out}/{len(rivals)}" + (f" (not: {', '.join(standing)})" if standing else "")


def counts_line(claims: list[dict]) -> str:
    counts = Counter(c.get("verdict") for c in claims)
    parts = [f"{ICONS[v]} **{counts[v]} {v}**" for v in ORDER if counts.get(v)]
    return " · ".join(parts) if parts else "no claims"


def _run_line(run: dict, complete: bool) -> str:
    profile = run.get("profile")
    profile = profile.get("name") if isinstance(profile, dict) else profile
    commit = run.get("git_commit")
    bits = [f"profile `{profile}`" if profile else None,
            f"commit `{commit[:10]}`" if commit else None,
            f"seed {run['seed']}" if run.get("seed") is not None else None,
            run.get("device"), run.get("time")]
    line = " · ".join(cell(b) for b in bits if b)
    if not complete:
        line += (" · " if line else "") + "**incomplete run (interrupted)**"
    return line


def _table(columns: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(cell(c) for c in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        out.append("| " + " | ".join(cell(num(v) if isinstance(v, float) else v) for v in row) + " |")
    return out


def render(report: dict, *, changes=None, title: str = "pytest-ntk claims") -> str:
    """The Markdown document for one run. ``changes``: baseline :class:`~.baseline.Change` list or None."""
    claims = sorted(report.get("claims", []), key=_rank)
    lines = [f"## {title}", "", counts_line(claims), ""]
    run_line = _run_line(report.get("run") or {}, report.get("complete", True))
    if run_line:
        lines += [run_line, ""]
    if changes is not None:
        if changes:
            lines.append(f"**Baseline gate: {len(changes)} verdict change{'s' if len(changes) != 1 else ''}**")
            lines.append("")
            for ch in changes:
                lines.append(f"- `{cell(ch.transition)}` {_code(ch.claim_id)}")
        else:
            lines.append("Baseline gate: no verdict changed.")
        lines.append("")
    if claims:
        lines.append("| claim | verdict | measured | predicted | gap / tolerance | margin | CI | rivals ruled out | source | expects |")
        lines.append("|---|---|--:|--:|--:|--:|---|--:|---|---|")
        for c in claims:
            m = decisive(c) or {}
            gap = f"{num(m.get('gap'))} / {num(m.get('tolerance'))}" if m.get("gap") is not None else ""
            verdict = c.get("verdict", "")
            lines.append("| " + " | ".join([
                _code(c.get("id", "")),
                f"{ICONS.get(verdict, '')} {verdict}",
                cell(num(m.get("measured"))),
                cell(num(m.get("predicted"))),
                cell(gap),
                cell(num(m.get("margin"))),
                cell(_ci(m.get("ci"))),
                cell(_rivals(c)),
                cell(c.get("source", "")),
                cell(_expect(c)),
            ]) + " |")
        lines.append("")
    problems = [c for c in claims if c.get("verdict") in ("ERROR", "FAILS", "INCONCLUSIVE") and c.get("message")]
    if problems:
        lines.append("<details><summary>Messages</summary>")
        lines.append("")
        for c in problems:
            lines.append(f"- **{c['verdict']}** {_code(c['id'])}: {cell(c['message'][:400])}")
        lines += ["", "</details>", ""]
    for c in claims:
        for art in c.get("artifacts") or []:
            if art.get("kind") == "table" and art.get("columns"):
                lines.append(f"<details><summary>{cell(c['id'])}: {cell(art.get('name', 'table'))}</summary>")
                lines.append("")
                lines += _table(list(art["columns"]), [list(r) for r in art.get("rows", [])])
                lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def write(path, report: dict, *, changes=None) -> Path:
    """Write the Markdown summary to ``path`` atomically."""
    atomic_write_text(path, render(report, changes=changes))
    return Path(path)


def append_step_summary(report: dict, *, changes=None, env=None) -> Path | None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY`` when it is set (GitHub Actions); else None."""
    target = (env if env is not None else os.environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(render(report, changes=changes) + "\n")
    return Path(target)
