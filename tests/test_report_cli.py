"""``python -m pytest_ntk report`` (and the ``pytest-ntk`` console script) on saved JSON runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_ntk.__main__ import main
from pytest_ntk.report import baseline, history, jsonreport

HERE = Path(__file__).resolve().parent


def _sample():
    """``sample_report`` of test_report_html.py (loaded by path: works under any import mode)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_ntk_report_samples", HERE / "test_report_html.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.sample_report


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    sample_report = _sample()
    d = tmp_path_factory.mktemp("runs")
    paths = []
    for i, flip in enumerate([False, True, False]):
        path = d / f"run{i}.json"
        jsonreport.write(path, sample_report(flip=flip, time=f"2025-06-0{i + 1}T12:00:00+00:00", commit=f"c{i}"))
        paths.append(path)
    return paths


def test_renders_html_and_markdown_from_saved_runs(runs, tmp_path, capsys):
    # given out of order: the newest run (run2, by its recorded time) is the one shown
    rc = main(["report", str(runs[2]), str(runs[0]), str(runs[1]), "--html", str(tmp_path / "r.html"),
               "--markdown", str(tmp_path / "r.md")])
    assert rc == 0
    page = (tmp_path / "r.html").read_text()
    assert "2025-06-03T12:00:00+00:00" in page and "history (last 3 runs)" in page
    md = (tmp_path / "r.md").read_text()
    assert "2025-06-03T12:00:00+00:00" in md and "| claim | verdict |" in md
    assert "HTML report written to" in capsys.readouterr().out


def test_history_dir_is_read_not_written(runs, tmp_path):
    hist = tmp_path / "hist"
    for i in (0, 1):  # the store already holds runs 0 and 1 (as a pytest run would have appended them)
        history.append(hist, history.record(jsonreport.read(runs[i])))
    before = (hist / history.FILENAME).read_text()
    assert main(["report", str(runs[2]), "--history", str(hist), "--html", str(tmp_path / "r.html")]) == 0
    assert (hist / history.FILENAME).read_text() == before
    assert "history (last 3 runs)" in (tmp_path / "r.html").read_text()


def test_baseline_gate_and_stdout_summary(runs, tmp_path, capsys):
    b = tmp_path / "b.json"
    baseline.write(b, baseline.build(jsonreport.read(runs[0])))
    assert main(["report", str(runs[2]), "--baseline", str(b)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## pytest-ntk claims") and "baseline gate passed" in out
    assert main(["report", str(runs[1]), "--baseline", str(b)]) == 1
    err = capsys.readouterr().err
    assert "HOLDS -> FAILS  jacot2018.ntk_constant[width=4096]" in err


def test_bad_input_exits_2(tmp_path, capsys):
    (tmp_path / "x.json").write_text(json.dumps({"schema": 99}))
    assert main(["report", str(tmp_path / "x.json")]) == 2
    assert "not a pytest-ntk JSON report" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["report"])
    assert exc.value.code == 2


def test_python_dash_m(runs, tmp_path):
    out = subprocess.run([sys.executable, "-m", "pytest_ntk", "report", str(runs[0]), "--html", str(tmp_path / "r.html")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")


def test_baseline_scope_follows_the_runs_recorded_selection(runs, tmp_path, capsys):
    full = jsonreport.read(runs[0])
    b = tmp_path / "b.json"
    baseline.write(b, baseline.build(full))
    part = dict(full, claims=[c for c in full["claims"] if c["id"].startswith("lee2019")])
    part["run"] = dict(full["run"], selection={"paths": None, "narrowed_by": ["-k"]})
    jsonreport.write(tmp_path / "part.json", part)
    assert main(["report", str(tmp_path / "part.json"), "--baseline", str(b)]) == 0
    assert "not run here, not compared" in capsys.readouterr().out
    part["run"].pop("selection")  # no record of a selection: a complete run should have had them all
    jsonreport.write(tmp_path / "part.json", part)
    assert main(["report", str(tmp_path / "part.json"), "--baseline", str(b)]) == 1
    assert "(missing)" in capsys.readouterr().err
