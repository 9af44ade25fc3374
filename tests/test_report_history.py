"""The history store: records, appends (also from concurrent processes), torn lines, series."""

from __future__ import annotations

import json
import multiprocessing as mp

from pytest_ntk.report import history
from pytest_ntk.report.jsonreport import build
from pytest_ntk.verdicts import ClaimResult, Measurement, Verdict


def _report(time: str, verdict: str = "HOLDS", margin: float = 0.01) -> dict:
    m = Measurement("close", "close", Verdict(verdict), 1.0, 1.0, 0.05 - margin, 0.05, margin)
    c = ClaimResult(id="x.claim", nodeid="t.py::t", verdict=Verdict(verdict), measurements=[m]).to_dict()
    run = {"time": time, "git_commit": "c0ffee", "profile": {"name": "quick"}, "seed": 3}
    return build(run, [c], complete=True)


def test_record_has_time_commit_profile_and_per_claim_verdict_and_margin():
    rec = history.record(_report("2025-01-01T00:00:00+00:00", "FAILS", -0.2))
    assert rec["time"] == "2025-01-01T00:00:00+00:00" and rec["git_commit"] == "c0ffee"
    assert rec["profile"] == "quick" and rec["seed"] == 3 and rec["complete"] is True
    assert rec["claims"] == {"x.claim": {"verdict": "FAILS", "margin": -0.2}}


def test_append_and_read(tmp_path):
    d = tmp_path / "hist"
    assert history.read(d) == []
    for i in range(3):
        history.append(d, history.record(_report(f"2025-01-0{i + 1}T00:00:00+00:00", margin=0.01 * i)))
    recs = history.read(d)
    assert [r["time"][:10] for r in recs] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert [r["claims"]["x.claim"]["margin"] for r in recs] == [0.0, 0.01, 0.02]
    assert len(history.read(d, last=2)) == 2
    s = history.series(recs + [{"schema": 1, "time": "t", "claims": {}}], "x.claim", last=3)
    assert [p["verdict"] for p in s] == ["HOLDS", "HOLDS", None]  # None: the claim did not run


def test_a_torn_line_is_skipped_and_fenced_off(tmp_path):
    history.append(tmp_path, history.record(_report("2025-01-01T00:00:00+00:00")))
    with open(tmp_path / history.FILENAME, "a") as fh:
        fh.write('{"schema": 1, "time": "torn", "cla')  # a writer died mid-line
    history.append(tmp_path, history.record(_report("2025-01-02T00:00:00+00:00")))
    lines = (tmp_path / history.FILENAME).read_text().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("{")
    assert [r["time"][:10] for r in history.read(tmp_path)] == ["2025-01-01", "2025-01-02"]


def test_merge_deduplicates_runs():
    a = history.record(_report("2025-01-02T00:00:00+00:00"))
    b = history.record(_report("2025-01-01T00:00:00+00:00"))
    assert [r["time"][:10] for r in history.merge([a, b], [a])] == ["2025-01-01", "2025-01-02"]


def _writer(args):
    directory, worker, n = args
    for i in range(n):
        rec = {"schema": 1, "time": f"2025-01-01T00:00:{i:02d}+00:00", "git_commit": None, "profile": "quick",
               "writer": worker, "claims": {"x.claim": {"verdict": "HOLDS", "margin": worker + i / 100},
                                            "pad": {"verdict": "HOLDS", "margin": None, "note": "x" * 5000}}}
        history.append(directory, rec)  # lines longer than a pipe buffer: a torn write would show
    return n


def test_concurrent_appends_from_processes_leave_every_line_whole(tmp_path):
    writers, per_writer = 4, 20
    # separate processes with their own file handles and locks. Not plain fork: JAX's threads are
    # running in this process by now, and forking a multithreaded process can deadlock the child;
    # forkserver forks from a fresh single-threaded server that imports only this module's needs.
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(writers) as pool:
        assert sum(pool.map(_writer, [(str(tmp_path), w, per_writer) for w in range(writers)])) == 80
    raw = (tmp_path / history.FILENAME).read_text().splitlines()
    assert len(raw) == writers * per_writer
    parsed = [json.loads(line) for line in raw]  # every line is one whole record
    counts = {w: sum(1 for r in parsed if r["writer"] == w) for w in range(writers)}
    assert counts == {w: per_writer for w in range(writers)}
    assert len(history.read(tmp_path)) == 80
