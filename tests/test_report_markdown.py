"""The Markdown summary: counts, the GitHub table, escaping, tables, $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

from collections import Counter

from pytest_ntk.report import baseline, markdown
from pytest_ntk.report.jsonreport import build
from pytest_ntk.verdicts import ClaimResult, Measurement, Verdict


def _claims():
    def c(cid, verdict, measured=1.0, **kw):
        ms = [] if verdict in ("ERROR", "SKIPPED") else [
            Measurement("close", "close", Verdict(verdict), measured, 1.0, abs(measured - 1.0), 0.05,
                        0.05 - abs(measured - 1.0), ci=(measured - 0.01, measured + 0.01))]
        return ClaimResult(id=cid, nodeid=f"t.py::{cid}", verdict=Verdict(verdict), measurements=ms,
                           message=f"msg of {cid}", **kw).to_dict()

    table = ClaimResult(id="liu.table", nodeid="t.py::table", verdict=Verdict.HOLDS, measurements=[
        Measurement("rmse[NN1]", "close", Verdict.HOLDS, 0.5, 0.5, 0.0, 0.05, 0.05)],
        artifacts=[{"kind": "table", "name": "RMSE", "columns": ["method", "mean RMSE", "SE"],
                    "rows": [["NN1", 0.5, 0.01], ["GP|1", 0.25, 0.02]]}]).to_dict()
    return [c("a", "HOLDS", 1.01, source="Jacot et al. | 2018", expect="holds"), c("b", "FAILS", 1.5, expect="holds"),
            c("c", "INCONCLUSIVE", 1.04), c("d", "ERROR"), c("e", "SKIPPED"), c("f", "HOLDS"), table]


def _report():
    run = {"time": "2025-01-01T00:00:00+00:00", "git_commit": "0123456789abcdef", "profile": {"name": "quick"},
           "seed": 0, "device": "cpu: cpu x1"}
    return build(run, _claims(), complete=True)


def _table_rows(text: str) -> list[list[str]]:
    """Data rows of the claims table (header 'claim | verdict ...'), split on unescaped pipes."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| claim |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = line.replace("\\|", "\x00").strip("|").split("|")
        rows.append([cell.strip().replace("\x00", "|") for cell in cells])
    return rows


def test_counts_and_one_row_per_claim_with_its_numbers():
    rep = _report()
    text = markdown.render(rep)
    counts = Counter(c["verdict"] for c in rep["claims"])
    assert counts["HOLDS"] == 3
    for v, n in counts.items():
        assert f"**{n} {v}**" in text
    rows = _table_rows(text)
    assert len(rows) == len(rep["claims"])
    assert all(len(r) == 10 for r in rows)  # the pipe in a source did not split a cell
    by_id = {r[0].strip("`"): r for r in rows}
    assert by_id["b"][1].endswith("FAILS") and by_id["b"][2] == "1.5" and by_id["b"][4] == "0.5 / 0.05"
    assert by_id["a"][8] == "Jacot et al. | 2018" and by_id["a"][9] == "holds ✓" and by_id["b"][9] == "holds ✗"
    assert [r[0] for r in rows][:2] == ["`d`", "`b`"]  # worst first: ERROR, then FAILS
    assert "profile `quick`" in text and "commit `0123456789`" in text


def test_tables_and_messages_and_baseline_changes():
    rep = _report()
    before = baseline.build(build(rep["run"], [dict(c, verdict="HOLDS") if c["id"] == "b" else c
                                               for c in rep["claims"]], complete=True))
    changes = baseline.compare(before, rep).changes
    text = markdown.render(rep, changes=changes)
    assert "Baseline gate: 1 verdict change" in text and "`HOLDS -> FAILS` `b`" in text
    assert "| NN1 | 0.5 | 0.01 |" in text and "| GP\\|1 | 0.25 | 0.02 |" in text
    assert "msg of d" in text and "msg of b" in text
    assert "no verdict changed" in markdown.render(rep, changes=[])


def test_write_and_step_summary(tmp_path):
    rep = _report()
    out = markdown.write(tmp_path / "r.md", rep)
    assert out.read_text() == markdown.render(rep)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    assert markdown.append_step_summary(rep, env={"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    assert summary.read_text().startswith("earlier step\n## pytest-ntk claims")  # appended, not replaced
    assert markdown.append_step_summary(rep, env={}) is None


def test_incomplete_run_is_flagged():
    rep = _report()
    rep["complete"] = False
    assert "incomplete run" in markdown.render(rep)
