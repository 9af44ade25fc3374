"""Hand-written SVG plots: well-formed XML whose geometry says what the numbers say."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from pytest_ntk.report import svg

NS = "{http://www.w3.org/2000/svg}"


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text)  # raises on malformed XML or unescaped text
    assert root.tag == NS + "svg"
    return root


def all_of(root, tag):
    return list(root.iter(NS + tag))


@pytest.mark.parametrize("lo,hi", [(0.013, 0.052), (-3.0, 7.0), (0.0, 1.0), (120.0, 121.0), (-1e-6, 3e-6)])
def test_nice_ticks_are_round_evenly_spaced_and_inside(lo, hi):
    ticks = svg.nice_ticks(lo, hi, 4)
    assert 2 <= len(ticks) <= 7
    assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5, 10))


def test_tick_labels():
    assert [svg.tick_label(t) for t in (1000.0, 0.25, 0.0, 1e6, 2e-5)] == ["1000", "0.25", "0", "1e+06", "2e-05"]


@pytest.mark.parametrize("gap,tol,expected_ratio", [(0.01, 0.05, 0.2), (0.05, 0.05, 1.0), (0.3, 0.05, 2.0),
                                                    (0.0, 0.0, 0.0), (0.1, 0.0, 2.0)])
def test_gap_bar_length_is_gap_over_tolerance_with_tolerance_at_the_middle(gap, tol, expected_ratio):
    width = 110
    root = parse(svg.gap_bar(gap, tol, verdict="FAILS", width=width))
    bar = all_of(root, "rect")[2]  # track, allowed half, gap bar
    assert float(bar.get("width")) == pytest.approx(expected_ratio * width / 2, abs=0.01)
    tol_line = all_of(root, "line")[-1]
    assert float(tol_line.get("x1")) == pytest.approx(width / 2)
    arrow = all_of(root, "path")
    assert bool(arrow) == (expected_ratio >= 2.0)  # beyond twice the tolerance: an arrow says "off scale"


def test_gap_bar_draws_the_gap_interval():
    root = parse(svg.gap_bar(0.02, 0.04, gap_ci=(0.01, 0.03), verdict="INCONCLUSIVE", width=100))
    whisker = all_of(root, "line")[0]
    assert float(whisker.get("x1")) == pytest.approx(0.01 / 0.04 * 50)
    assert float(whisker.get("x2")) == pytest.approx(0.03 / 0.04 * 50)


def test_interval_rows_place_point_band_and_prediction_consistently():
    rows = [{"name": "k<1>", "verdict": "FAILS", "measured": 2.0, "ci": (1.8, 2.2), "predicted": 1.0, "band": (0.9, 1.1)},
            {"name": "bound", "verdict": "HOLDS", "measured": 0.5, "ci": None, "predicted": 1.0, "band": (None, 1.0)}]
    root = parse(svg.interval_rows(rows))
    texts = [t.text for t in all_of(root, "text")]
    assert "k<1>" in texts  # escaped on the way in, intact on the way out
    circles = all_of(root, "circle")
    rects = all_of(root, "rect")
    assert len(circles) == 2 and len(rects) == 2
    # row 1: the point (2.0) is right of the band [0.9, 1.1]; pixel positions are affine in value
    band_lo, band_hi = float(rects[0].get("x")), float(rects[0].get("x")) + float(rects[0].get("width"))
    x_point = float(circles[0].get("cx"))
    scale = (band_hi - band_lo) / 0.2
    assert x_point - band_lo == pytest.approx((2.0 - 0.9) * scale, rel=1e-3)
    # row 2: a one-sided band (at_most 1.0) starts at the plot's left edge and contains the point
    assert float(rects[1].get("x")) <= float(circles[1].get("cx")) <= float(rects[1].get("x")) + float(rects[1].get("width"))


def test_slope_plot_draws_the_least_squares_line_of_its_points():
    rng = np.random.default_rng(1)
    x = np.repeat([16.0, 64.0, 256.0, 1024.0], 3)
    y = 2.0 * x ** -0.5 * np.exp(rng.normal(0, 0.1, x.size))
    s, a = np.polyfit(np.log(x), np.log(y), 1)
    root = parse(svg.slope_plot(x, y, slope=s, intercept=a, log=True, ci=(s - 0.1, s + 0.1), allowed=(-0.6, -0.4),
                                verdict="HOLDS"))
    pts = np.array([[float(c.get("cx")), float(c.get("cy"))] for c in all_of(root, "circle")])
    assert len(pts) == x.size
    fitted = [ln for ln in all_of(root, "line") if ln.get("stroke-width") == "2.2"]
    assert len(fitted) == 1
    x1, y1, x2, y2 = (float(fitted[0].get(k)) for k in ("x1", "y1", "x2", "y2"))
    # axes are affine in (ln x, ln y), so the least-squares line of the pixels is the drawn line
    b, c = np.polyfit(pts[:, 0], pts[:, 1], 1)
    assert (y2 - y1) / (x2 - x1) == pytest.approx(b, rel=1e-3)
    assert y1 == pytest.approx(b * x1 + c, abs=0.05)
    assert len(all_of(root, "polygon")) == 1  # the wedge of allowed slopes
    assert any("-0.6" in (t.text or "") for t in all_of(root, "text"))


def test_slope_plot_with_too_few_points_says_so():
    assert "not enough points" in svg.slope_plot([1.0], [1.0], slope=1.0, intercept=0.0)


def test_bar_plot_bar_lengths_are_proportional_to_values():
    root = parse(svg.bar_plot(["NN1", "GP<2>", "NaN row"], [0.5, 0.25, None], [0.01, 0.02, None],
                              reference=[0.47, None, None], title="mean RMSE ± SE", verdicts=["FAILS", "HOLDS", None]))
    bars = [r for r in all_of(root, "rect") if r.get("height") == "14"]
    assert len(bars) == 2
    assert float(bars[0].get("width")) / float(bars[1].get("width")) == pytest.approx(2.0, rel=1e-3)
    assert bars[0].get("fill") == svg.COLOURS["FAILS"]
    texts = [t.text for t in all_of(root, "text")]
    assert "GP<2>" in texts and "n/a" in texts
    assert len(all_of(root, "path")) == 2  # one reference diamond and its legend


def test_sparkline_breaks_at_missing_margins_and_colours_by_verdict():
    root = parse(svg.sparkline([0.1, -0.2, None, 0.3], ["HOLDS", "FAILS", None, "HOLDS"]))
    circles = all_of(root, "circle")
    assert [c.get("fill") for c in circles] == [svg.COLOURS["HOLDS"], svg.COLOURS["FAILS"], svg.COLOURS["HOLDS"]]
    assert len(all_of(root, "polyline")) == 1  # the lone last point is not joined across the gap
    ys = [float(c.get("cy")) for c in circles]
    zero_y = float(all_of(root, "line")[0].get("y1"))
    assert ys[0] < zero_y < ys[1]  # positive margins above the zero line, negative below
    assert "no margins" in svg.sparkline([None, None])


def test_verdict_strip():
    root = parse(svg.verdict_strip(["HOLDS", None, "ERROR"], ["run 1", "run 2", "run 3"]))
    rects = all_of(root, "rect")
    assert [r.get("fill") for r in rects] == [svg.COLOURS["HOLDS"], "none", svg.COLOURS["ERROR"]]


def test_interval_rows_clip_long_names_and_keep_them_as_tooltips():
    name = "GP1: engine mean RMSE vs reference (atol = 1 SE)"
    out = svg.interval_rows([{"name": name, "verdict": "HOLDS", "measured": 1.0, "ci": None,
                              "band": (0.5, 1.5), "predicted": 1.0}])
    assert f"<title>{name}</title>" in out
    assert f">{name[:21]}\u2026</text>" in out and len(name[:21]) == 21
    assert f">{name}</text>" not in out
