"""The HTML report: self-contained, counts and rows right, escaped, plots where they help.

``sample_report`` builds claims with the real recorder (close, samples, slope, at_most, a table
artifact, an ERROR and a SKIPPED claim); the browser test loads it from this file too.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

import numpy as np
import pytest

from pytest_ntk.report import baseline, history, html
from pytest_ntk.report.jsonreport import build
from pytest_ntk.verdicts import ClaimError, ClaimFailed, Tolerance
from pytest_ntk.verdicts.recorder import ClaimRecorder

LIU_METHODS = ["NN1", "NN2", "NTKA1", "NTKA2", "NTKJ1", "NTKJ2", "NTKB1", "NTKB2", "GP1", "GP2", "LAPLACE"]
LIU_MEANS = [0.512, 0.498, 0.301, 0.287, 0.254, 0.249, 0.0412, 0.065, 0.288, 0.276, 0.402]
LIU_PAPER = [0.47, 0.46, 0.30, 0.29, 0.25, 0.25, 0.041, 0.064, 0.29, 0.28, 0.40]
LIU_SE = [0.012, 0.011, 0.006, 0.006, 0.005, 0.005, 0.0008, 0.0012, 0.006, 0.006, 0.008]


def _run(claim_id, body, *, source, statement, expect=None, nodeid=None, params=None, skipped=None):
    rec = ClaimRecorder(claim_id, Tolerance(rtol=0.05, atol=0.0, confidence=0.95))
    error = None
    if skipped is None:
        try:
            body(rec)
        except (ClaimFailed, ClaimError) as exc:
            error = exc
    base = claim_id.split("[")[0]
    return rec.finish(error=error, skipped=skipped, nodeid=nodeid or f"claims/test_demo.py::test_{base.split('.')[-1]}",
                      source=source, statement=statement, expect=expect, params=params or {}, base_id=base,
                      duration_s=1.5).to_dict()


def sample_claims(flip: bool = False) -> list[dict]:
    """Eight claims covering every verdict and plot kind; ``flip`` turns the first one from HOLDS to FAILS."""
    rng = np.random.default_rng(0)

    def constant(c):
        with c.stage("train"):
            pass
        c.close(1.3 if flip else 1.02, 1.0, name="kernel ratio")

    def scaling(c):
        w = np.repeat([64.0, 128.0, 256.0, 512.0, 1024.0], 3)
        c.slope(w, 3.0 * w ** -0.5 * np.exp(rng.normal(0, 0.05, w.size)), expected=-0.5, tol=0.1, name="gap vs width")

    def table(c):
        c.table("RMSE over 50 trials", ["method", "mean RMSE", "SE", "paper mean RMSE"],
                [list(r) for r in zip(LIU_METHODS, LIU_MEANS, LIU_SE, LIU_PAPER)])
        for m, a, p in zip(LIU_METHODS, LIU_MEANS, LIU_PAPER):
            try:
                c.close(a, p, rtol=0.05, name=f"rmse[{m}]")
            except ClaimFailed:
                pass

    return [
        _run("jacot2018.ntk_constant[width=4096]", constant, source="Jacot et al. 2018, Thm 2", expect="holds",
             statement="The empirical NTK stays constant during training of a wide network.", params={"width": 4096}),
        _run("lee2019.width_scaling", scaling, source="Lee et al. 2019, §2.4", expect="holds",
             statement="The gap between a trained network and NTK regression shrinks like width^-1/2."),
        _run("lee2019.linearization", lambda c: c.samples(rng.normal(0.108, 0.01, 12), predicted=0.1, rtol=0.1,
                                                          name="rmse gap"),
             source="Lee et al. 2019, Fig. 1", statement="The linearized network matches the trained one."),
        _run("liu2025.table", table, source="Liu et al. 2025, Table 1", expect="holds",
             statement="Mean test RMSE ± SE over 50 trials reproduces the published table."),
        _run("liu2025.gp_vs_ntk[depth=1]", lambda c: c.at_most(0.031, 0.05, name="rmse difference"),
             source="Liu et al. 2025, §4", statement="NNGP and NTK regression errors are close.", expect="holds",
             params={"depth": 1}),
        _run("liu2025.kernel_is_limit[kernel=NTKB1]", lambda c: c.close(float("nan"), 1.0),
             source="Liu et al. 2025, eq. (7)", expect="fails",
             statement="The published NTKB1 is the infinite-width NTK of the trained network."),
        _run("liu2025.depth_change[kernel=NTKA]", lambda c: c.close(-0.014, -0.13, atol=0.02, name="ΔRMSE depth 1→2"),
             source="Liu et al. 2025, §5", expect="fails",
             statement="Adding a layer changes the network's error as the NTK's error changes."),
        _run("oracle.nt_agreement", None, source="neural-tangents", statement="Our kernels match neural-tangents.",
             skipped="neural-tangents is not installed"),
    ]


def sample_report(flip: bool = False, time: str = "2025-06-09T12:00:00+00:00", commit: str = "3f9c2a1b7d") -> dict:
    run = {"time": time, "git_commit": commit, "python": "3.12", "versions": {"jax": "0.5.3", "numpy": "2.4"},
           "device": "cpu: cpu x1", "profile": {"name": "quick", "rtol": 0.05, "atol": 0.0, "confidence": 0.95},
           "seed": 0, "audit": True}
    return build(run, sample_claims(flip), complete=True)


def sample_page(**kwargs) -> tuple[str, dict]:
    """A page with 6 runs of history, a flipped claim and a removed one against the baseline."""
    runs = [sample_report(flip=(i % 3 == 1), time=f"2025-06-0{i + 1}T12:00:00+00:00", commit=f"c{i}")
            for i in range(6)]
    current = sample_report(flip=True)
    records = [history.record(r) for r in runs + [current]]
    base = baseline.build(runs[-1])
    base["claims"]["old.removed"] = {"verdict": "HOLDS", "nodeid": "claims/test_demo.py::test_removed",
                                     "measured": 1.0}
    changes = baseline.compare(base, current).changes
    return html.render(current, history=records, changes=changes, baseline_path="claims/baseline.json",
                       **kwargs), current


class Page(HTMLParser):
    """Collects claim bodies, summary cards, tags and attributes of a rendered page."""

    def __init__(self, text: str):
        super().__init__()
        self.bodies: list[dict] = []
        self.cards: dict[str, int] = {}
        self.tags = Counter()
        self.urls: list[str] = []
        self._card = None
        self._in_n = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] += 1
        for key in ("src", "href", "xlink:href"):
            if a.get(key):
                self.urls.append(a[key])
        cls = a.get("class") or ""
        if tag == "tbody" and "claim" in cls.split():
            self.bodies.append(a)
        if tag == "button" and "card" in cls.split():
            self._card = a["data-verdict"]
        if tag == "span" and cls == "n" and self._card:
            self._in_n = True

    def handle_data(self, data):
        if self._in_n:
            self.cards[self._card] = int(data)
            self._in_n, self._card = False, None


def test_counts_rows_and_order():
    text, rep = sample_page()
    page = Page(text)
    counts = Counter(c["verdict"] for c in rep["claims"])
    assert counts == {"HOLDS": 2, "FAILS": 3, "INCONCLUSIVE": 1, "ERROR": 1, "SKIPPED": 1}  # the sample's design
    assert page.cards == {v: counts.get(v, 0) for v in html.ORDER}
    ids = [b["data-id"] for b in page.bodies]
    assert sorted(ids) == sorted([c["id"] for c in rep["claims"]] + ["old.removed"])
    assert ids[0] == "old.removed" and page.bodies[0]["data-verdict"] == "MISSING"  # changes first
    assert [b["data-verdict"] for b in page.bodies[1:3]] == ["ERROR", "FAILS"]  # then worst first
    assert "<title>NTK claims: 2 HOLDS, 3 FAILS, 1 INCONCLUSIVE, 1 ERROR, 1 SKIPPED</title>" in text


def test_self_contained_no_network_no_framework():
    text, _ = sample_page()
    page = Page(text)
    assert page.tags["script"] == 1 and page.tags["link"] == 0 and page.tags["img"] == 0
    assert all(u.startswith("#") for u in page.urls), page.urls
    external = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert external <= {"http://www.w3.org/2000/svg"}


def test_plots_where_they_help():
    text, rep = sample_page()
    # measured vs band for every claim with a numeric measurement, a scaling plot for the slope claim,
    # bars for the RMSE table (one per method, coloured by that method's verdict)
    assert text.count('aria-label="measured value and confidence interval against the allowed band"') == 5
    assert len(re.findall(r'<svg class="plot"[^>]*aria-label="[^"]*fitted log-log slope', text)) == 1
    assert text.count('aria-label="mean RMSE ± SE"') == 1
    bars = re.search(r'<svg[^>]*aria-label="mean RMSE ± SE".*?</svg>', text, re.S).group(0)
    assert bars.count('height="14"') == len(LIU_METHODS)
    assert bars.count('fill="#cf222e"') == 2  # NN1 and NN2 miss the published numbers by > 5%


def test_history_column_and_baseline_banner():
    text, _ = sample_page()
    assert "history (last 7 runs)" in text
    assert text.count('class="strip"') == 2 * 8  # small and large strip per claim (not for the missing one)
    assert "Baseline gate failed against <code>claims/baseline.json</code>: 2 verdict changes" in text
    assert "HOLDS -&gt; FAILS" in text and "HOLDS -&gt; (missing)" in text
    assert text.count('class="tag changed"') == 2
    plain = html.render(sample_report())
    assert "history (last" not in plain and "Baseline gate" not in plain


def test_text_is_escaped():
    rep = sample_report()
    rep["claims"][0] = dict(rep["claims"][0], id="evil<script>alert(1)</script>", source='"><img src=x>',
                            message="<b>boom</b>")
    text = html.render(rep)
    page = Page(text)
    assert page.tags["script"] == 1 and page.tags["img"] == 0
    assert "evil&lt;script&gt;" in text and "&lt;b&gt;boom" in text and "<b>boom" not in text


def test_every_user_controlled_text_is_escaped():
    """Statements, measurement and rival names, stage names, table titles, headers and cells, attached
    data and warnings all come from claim files: none of them may inject markup."""
    evil = "<img src=x onerror=alert(1)>"

    def body(c):
        with c.stage(f"stage {evil}"):
            pass
        c.table(f"title {evil}", ["method", f"head {evil}"], [[f"cell {evil}", 1.0]])
        c.attach(f"data {evil}", {"key": f"value {evil}"})
        c.samples([1.0, 1.01, 0.99, 1.02], predicted=1.0, rtol=0.1, rivals={f"rival {evil}": 5.0},
                  name=f"measure {evil}")

    claim = _run("x.evil", body, source=f"source {evil}", statement=f"statement {evil}")
    rep = build({"time": "2025-06-09T12:00:00+00:00"}, [claim], complete=True)
    text = html.render(rep)
    page = Page(text)
    assert page.tags["img"] == 0, "an <img> tag from a claim's text reached the page"
    for where in ("stage", "title", "head", "cell", "data", "value", "rival", "measure", "source", "statement"):
        assert f"{where} &lt;img" in text, f"{where}: not shown escaped"


def test_bar_spec_reads_the_liu_table_and_refuses_tables_without_numbers():
    art = next(a for c in sample_claims() for a in c["artifacts"])
    spec = html.bar_spec(art)
    assert spec["labels"] == LIU_METHODS and spec["values"] == LIU_MEANS
    assert spec["errors"] == LIU_SE and spec["reference"] == LIU_PAPER
    assert html.bar_spec({"kind": "table", "columns": ["a", "b"], "rows": [["x", "y"]]}) is None
    spec = html.bar_spec({"kind": "table", "columns": ["kernel", "width", "gap"], "rows": [["k", 1, 0.5]]})
    assert spec["values"] == [1]  # no mean-like name: the first numeric column


def test_incomplete_and_empty_runs(tmp_path):
    rep = sample_report()
    rep["complete"] = False
    assert "Incomplete run" in html.render(rep)
    empty = html.render(build({}, [], complete=True))
    assert "No claims in this run." in empty
    out = html.write(tmp_path / "sub" / "r.html", sample_report())
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


@pytest.mark.parametrize("flip", [False, True])
def test_sample_claims_have_the_designed_verdicts(flip):
    verdicts = {c["id"]: c["verdict"] for c in sample_claims(flip)}
    assert verdicts["jacot2018.ntk_constant[width=4096]"] == ("FAILS" if flip else "HOLDS")
    assert verdicts["lee2019.width_scaling"] == "HOLDS" and verdicts["lee2019.linearization"] == "INCONCLUSIVE"


def test_odd_values_render_in_every_writer():
    """Nulls where numbers were non-finite, one-sided slopes, a two-point slope, setup-error payloads."""
    from pytest_ntk.report import markdown

    odd = [
        {"id": "nulls", "nodeid": "t.py::a", "verdict": "INCONCLUSIVE", "measurements": [
            {"name": "s", "kind": "slope", "verdict": "INCONCLUSIVE", "measured": -0.5, "predicted": -0.4, "gap": None,
             "tolerance": None, "margin": 0.1, "ci": [None, None], "gap_ci": None,
             "detail": {"x": [1.0, 2.0], "y": [1.0, 0.7], "intercept": 0.0, "log": True, "allowed": [None, -0.4]}},
            {"name": "c", "kind": "close", "verdict": "ERROR", "measured": None, "predicted": None, "gap": None,
             "tolerance": None, "margin": None, "ci": None}]},
        {"id": "setup-error", "nodeid": "t.py::b", "verdict": "ERROR", "message": "ClaimError: bad marker",
         "measurements": [], "artifacts": [{"kind": "data", "name": "d", "data": {"x": list(range(3000))}},
                                           {"kind": "table", "name": "empty", "columns": [], "rows": []}]},
    ]
    rep = build({}, odd, complete=True)
    text = html.render(rep, history=[history.record(rep)])
    assert "[-inf, inf]" in text and "allowed slopes [-inf, -0.4]" in text and "(truncated" in text
    md = markdown.render(rep)
    assert "`nulls`" in md and "`setup-error`" in md and "\n\n\n" not in md
    slope_only = dict(odd[0], measurements=odd[0]["measurements"][:1])
    assert "CI [-inf, inf]" in baseline.Change("nulls", "changed", baseline.key_numbers(slope_only), None).describe()
