"""Hand-written SVG plots for the HTML report: no matplotlib, no JavaScript, no network.

Every function returns one ``<svg>`` element as a string, sized in CSS pixels, with text
escaped. Inputs are plain numbers (from the verdict model's dicts); ``None`` means "absent".

- :func:`gap_bar` -- a claim's gap against its tolerance, ``gap / tolerance`` on a track where
  the tolerance sits at the middle (so up to twice the tolerance is drawn; beyond, an arrow).
- :func:`interval_rows` -- per measurement, the measured value with its confidence interval
  against the band the prediction allows (``predicted +- tolerance``, or a one-sided bound).
- :func:`slope_plot` -- a fitted scaling law: the points, the fitted line
  ``y = exp(intercept) * x**slope`` (log-log) or ``y = intercept + slope * x``, and the wedge of
  allowed slopes through the data's centroid.
- :func:`bar_plot` -- horizontal bars with +-error whiskers (e.g. mean RMSE +- SE per method).
- :func:`sparkline` -- a small line of margins over runs; the dashed line is margin 0.
- :func:`verdict_strip` -- one coloured square per run.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

from .fmt import num

__all__ = [
    "COLOURS",
    "BAND",
    "nice_ticks",
    "tick_label",
    "gap_bar",
    "interval_rows",
    "slope_plot",
    "bar_plot",
    "sparkline",
    "verdict_strip",
]

COLOURS = {
    "HOLDS": "#1a7f37",
    "FAILS": "#cf222e",
    "INCONCLUSIVE": "#bf8700",
    "ERROR": "#8250df",
    "SKIPPED": "#8c959f",
}
BAND = "#dafbe1"  # the region a prediction allows
INK = "#24292f"
MUTED = "#57606a"
GRID = "#d0d7de"
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


def _colour(verdict: str | None) -> str:
    return COLOURS.get(verdict or "", MUTED)


def _f(x: float) -> str:
    """A coordinate with two decimals (short SVG)."""
    return f"{x:.2f}".rstrip("0").rstrip(".") if math.isfinite(x) else "0"


def _finite(x) -> bool:
    return x is not None and not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def _svg(width: float, height: float, body: list[str], label: str, cls: str = "plot") -> str:
    return (
        f'<svg class="{cls}" xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" role="img" aria-label="{escape(label)}" style="{FONT}">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


def _text(x, y, s, *, size=11, anchor="start", fill=INK, weight=None) -> str:
    w = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{w}>'
            f"{escape(str(s))}</text>")


def _line(x1, y1, x2, y2, *, stroke=INK, width=1.0, dash=None, opacity=None) -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    o = f' stroke-opacity="{opacity}"' if opacity is not None else ""
    return (f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{stroke}" '
            f'stroke-width="{width}"{d}{o}/>')


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2 or 5 times a power of ten) inside ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while first + k * step <= hi + 1e-9 * step and k < 50:
        t = first + k * step
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        k += 1
    return ticks


def tick_label(t: float) -> str:
    """A tick value without exponent noise: 1000 not 1e+03; 1e+06 and 1e-05 where it is shorter."""
    a = abs(t)
    if t == 0:
        return "0"
    if 1e-3 <= a < 1e5:
        return f"{t:.4g}"
    return f"{t:.2g}"


def _range(values, pad=0.08) -> tuple[float, float]:
    vals = [float(v) for v in values if _finite(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi == lo:
        d = abs(lo) * 0.1 or 1.0
        return lo - d, hi + d
    d = (hi - lo) * pad
    return lo - d, hi + d


# ---------------------------------------------------------------------------- gap against tolerance
def gap_bar(gap, tolerance, gap_ci=None, verdict: str | None = None, *, width: int = 110, height: int = 14) -> str:
    """``gap / tolerance`` as a bar; the dark tick at the middle is the tolerance (ratio 1).

    A zero tolerance (a bound: ``at_most``/``at_least``) has ratio 0 when the bound holds and
    infinity when it is violated. ``gap_ci`` (the interval of the gap) is drawn as a whisker.
    """
    half = width / 2
    mid = height / 2

    def x_of(g) -> float:
        if not _finite(g):
            return width
        if _finite(tolerance) and tolerance > 0:
            return min(max(g / tolerance, 0.0), 2.0) * half
        return 0.0 if g <= 0 else width

    body = [
        f'<rect x="0" y="2" width="{_f(width)}" height="{_f(height - 4)}" rx="3" fill="#eaeef2"/>',
        f'<rect x="0" y="2" width="{_f(half)}" height="{_f(height - 4)}" rx="3" fill="{BAND}"/>',
    ]
    label = "no gap"
    if _finite(gap):
        xg = x_of(gap)
        body.append(f'<rect x="0" y="3.5" width="{_f(xg)}" height="{_f(height - 7)}" rx="2" '
                    f'fill="{_colour(verdict)}" fill-opacity="0.85"/>')
        if xg >= width - 0.01 and (not _finite(tolerance) or tolerance <= 0 or gap > 2 * tolerance):
            body.append(f'<path d="M{_f(width - 6)},1 L{_f(width)},{_f(mid)} L{_f(width - 6)},{_f(height - 1)} Z" '
                        f'fill="{_colour(verdict)}"/>')
        label = f"gap {num(gap)} vs tolerance {num(tolerance)}"
        if gap_ci and all(_finite(v) for v in gap_ci):
            x1, x2 = x_of(gap_ci[0]), x_of(gap_ci[1])
            body.append(_line(x1, mid, x2, mid, stroke=INK, width=1.2))
            body += [_line(x, mid - 3, x, mid + 3, stroke=INK, width=1.2) for x in (x1, x2)]
            label += f", CI of the gap [{num(gap_ci[0])}, {num(gap_ci[1])}]"
    body.append(_line(half, 0, half, height, stroke=INK, width=1.5))
    return _svg(width, height, body, label, cls="gapbar")


# ---------------------------------------------------------------------------- measured vs band
def interval_rows(rows: Sequence[dict], *, width: int = 560) -> str:
    """One strip per measurement: the allowed band (green), the prediction (dashed), the measured
    point (coloured by its verdict) with its confidence-interval whisker, and round ticks.

    Each row is a dict: ``name, verdict, measured, ci (lo, hi) or None, predicted,
    band (lo, hi)`` where a ``None`` band end is unbounded (one-sided bounds), and optionally
    ``rivals``: ``[{"name", "predicted", "ruled_out"}]``, drawn as diamonds (hollow when the
    measurement rules the rival out, filled amber when it cannot tell it apart).
    """
    label_w, right = 170, 16
    row_h = 50
    plot_w = width - label_w - right
    height = row_h * max(len(rows), 1) + 6
    body: list[str] = []
    for i, r in enumerate(rows):
        top = 6 + i * row_h
        axis_y = top + 24
        band = r.get("band") or (None, None)
        ci = r.get("ci") or (None, None)
        rivals = [rv for rv in r.get("rivals") or [] if _finite(rv.get("predicted"))]
        lo, hi = _range([band[0], band[1], r.get("measured"), r.get("predicted"), ci[0], ci[1],
                         *(rv["predicted"] for rv in rivals)], pad=0.12)

        def x_of(v, lo=lo, hi=hi) -> float:
            return label_w + (float(v) - lo) / (hi - lo) * plot_w

        name = str(r.get("name", ""))
        short = name if len(name) <= 22 else name[:21] + "\u2026"  # fits label_w at 12px; full name on hover
        body.append(f"<g><title>{escape(name)}</title>"
                    + _text(8, axis_y - 4, short, size=12, weight="600") + "</g>")
        body.append(_text(8, axis_y + 11, r.get("verdict", ""), size=10, fill=_colour(r.get("verdict")),
                          weight="600"))
        b0 = x_of(band[0]) if _finite(band[0]) else label_w
        b1 = x_of(band[1]) if _finite(band[1]) else label_w + plot_w
        if _finite(band[0]) or _finite(band[1]):
            body.append(f'<rect x="{_f(min(b0, b1))}" y="{_f(axis_y - 12)}" width="{_f(max(abs(b1 - b0), 1.5))}" '
                        f'height="20" fill="{BAND}" stroke="#4ac26b" stroke-width="0.8"/>')
        body.append(_line(label_w, axis_y + 8, label_w + plot_w, axis_y + 8, stroke=GRID))
        for t in nice_ticks(lo, hi, 5):
            xt = x_of(t)
            body.append(_line(xt, axis_y + 8, xt, axis_y + 11, stroke=MUTED))
            body.append(_text(xt, axis_y + 21, tick_label(t), size=9, anchor="middle", fill=MUTED))
        if _finite(r.get("predicted")):
            xp = x_of(r["predicted"])
            body.append(_line(xp, axis_y - 14, xp, axis_y + 8, stroke=INK, width=1.2, dash="3,2"))
        for rv in rivals:
            xr, yr = x_of(rv["predicted"]), axis_y - 2
            fill = "#fff" if rv.get("ruled_out") else "#bf8700"
            state = "ruled out" if rv.get("ruled_out") else "not ruled out"
            body.append(f"<g><title>rival {escape(str(rv.get('name', '')))}: {num(rv['predicted'])} ({state})</title>"
                        f'<path d="M{_f(xr)},{_f(yr - 6)} L{_f(xr + 5)},{_f(yr)} L{_f(xr)},{_f(yr + 6)} '
                        f'L{_f(xr - 5)},{_f(yr)} Z" fill="{fill}" stroke="#9a6700" stroke-width="1.3"/></g>')
        colour = _colour(r.get("verdict"))
        if _finite(ci[0]) and _finite(ci[1]):
            x1, x2 = x_of(ci[0]), x_of(ci[1])
            body.append(_line(x1, axis_y - 2, x2, axis_y - 2, stroke=colour, width=2))
            body += [_line(x, axis_y - 7, x, axis_y + 3, stroke=colour, width=2) for x in (x1, x2)]
        if _finite(r.get("measured")):
            xm = x_of(r["measured"])
            body.append(f'<circle cx="{_f(xm)}" cy="{_f(axis_y - 2)}" r="5" fill="{colour}" stroke="#fff" '
                        f'stroke-width="1.5"/>')
            anchor = "start" if xm < label_w + plot_w * 0.7 else "end"
            dx = 8 if anchor == "start" else -8
            body.append(_text(xm + dx, axis_y - 9, num(r["measured"]), size=10, anchor=anchor, fill=colour,
                              weight="600"))
        else:
            body.append(_text(label_w + 4, axis_y, "no measured value", size=10, fill=MUTED))
    return _svg(width, height, body, "measured value and confidence interval against the allowed band")


# ---------------------------------------------------------------------------- scaling laws
def _log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values (in data units) for a log10 axis spanning ``[lo, hi]`` (log10 units)."""
    decades = [10.0 ** k for k in range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)]
    if len(decades) >= 2:
        step = max(1, math.ceil(len(decades) / 5))
        return decades[::step]
    vals = [t for t in nice_ticks(10 ** lo, 10 ** hi, 5) if t > 0]
    return vals


def slope_plot(x, y, *, slope, intercept, log: bool = True, ci=None, allowed=None, verdict: str | None = None,
               name: str = "slope", width: int = 380, height: int = 250, x_label: str = "x",
               y_label: str = "y") -> str:
    """The points ``(x, y)``, the fitted line, and the allowed wedge of slopes through the centroid.

    With ``log``, the fit is ``ln y = intercept + slope * ln x`` and both axes are log10; else
    ``y = intercept + slope * x`` on linear axes. ``allowed = [lo, hi]`` (an end may be None:
    one-sided) is drawn as the wedge of lines with slopes in ``[lo, hi]`` through the centroid
    ``(mean u, mean v)`` of the transformed points ``u = ln x, v = ln y`` -- the point every
    least-squares line passes through. ``ci`` (the slope's interval) is drawn as dotted lines.
    """
    xs = [float(v) for v in x]
    ys = [float(v) for v in y]
    if log:
        pts = [(math.log(a), math.log(b)) for a, b in zip(xs, ys) if a > 0 and b > 0]
    else:
        pts = list(zip(xs, ys))
    if len(pts) < 2 or not _finite(slope) or not _finite(intercept):
        return _svg(width, 40, [_text(8, 24, "not enough points to plot", fill=MUTED)], name)
    scale = 1 / math.log(10) if log else 1.0  # fit units (ln) -> display units (log10)
    us = [p[0] for p in pts]
    vs = [p[1] for p in pts]
    um = sum(us) / len(us)
    vc = intercept + slope * um  # the centroid: every least-squares line passes through it
    u0, u1 = _range(us, pad=0.08)
    v_fit = [intercept + slope * u for u in (u0, u1)]
    v0, v1 = _range(vs + v_fit, pad=0.10)
    left, right, top, bottom = 54, 12, 34, 30
    pw, ph = width - left - right, height - top - bottom

    def px(u: float) -> float:
        return left + (u - u0) / (u1 - u0) * pw

    def py(v: float) -> float:
        return top + (1 - (v - v0) / (v1 - v0)) * ph

    colour = _colour(verdict)
    body = [f'<rect x="{left}" y="{top}" width="{_f(pw)}" height="{_f(ph)}" fill="#fff" stroke="{GRID}"/>']
    # ticks and grid
    if log:
        xt = [(math.log(t), t) for t in _log_ticks(u0 * scale, u1 * scale)]
        yt = [(math.log(t), t) for t in _log_ticks(v0 * scale, v1 * scale)]
    else:
        xt = [(t, t) for t in nice_ticks(u0, u1, 4)]
        yt = [(t, t) for t in nice_ticks(v0, v1, 4)]
    for u, t in xt:
        if u0 <= u <= u1:
            body.append(_line(px(u), top, px(u), top + ph, stroke="#eaeef2"))
            body.append(_text(px(u), top + ph + 14, tick_label(t), size=9, anchor="middle", fill=MUTED))
    for v, t in yt:
        if v0 <= v <= v1:
            body.append(_line(left, py(v), left + pw, py(v), stroke="#eaeef2"))
            body.append(_text(left - 4, py(v) + 3, tick_label(t), size=9, anchor="end", fill=MUTED))
    axes = "log scale" if log else "linear"
    body.append(_text(left + pw, height - 4, f"{x_label} ({axes})", size=9, anchor="end", fill=MUTED))
    body.append(f'<text x="10" y="{_f(top + ph / 2)}" font-size="9" fill="{MUTED}" text-anchor="middle" '
                f'transform="rotate(-90 10 {_f(top + ph / 2)})">{escape(y_label)} ({axes})</text>')
    # clipped drawing area: the wedge, the CI lines, the fitted line, the points
    inner = []
    steep = 50.0 * (v1 - v0) / (u1 - u0)
    a_lo, a_hi = (list(allowed) + [None, None])[:2] if allowed else (None, None)
    if _finite(a_lo) or _finite(a_hi):
        s_lo = float(a_lo) if _finite(a_lo) else -abs(slope) - steep
        s_hi = float(a_hi) if _finite(a_hi) else abs(slope) + steep
        poly = [(u0, vc + s_lo * (u0 - um)), (u1, vc + s_lo * (u1 - um)),
                (u1, vc + s_hi * (u1 - um)), (u0, vc + s_hi * (u0 - um))]
        inner.append('<polygon points="' + " ".join(f"{_f(px(u))},{_f(py(v))}" for u, v in poly)
                     + f'" fill="{BAND}" stroke="#4ac26b" stroke-width="0.8"/>')
    if ci and all(_finite(c) for c in ci):
        for s in ci:
            inner.append(_line(px(u0), py(vc + s * (u0 - um)), px(u1), py(vc + s * (u1 - um)),
                               stroke=colour, width=1, dash="2,3", opacity=0.8))
    inner.append(_line(px(u0), py(v_fit[0]), px(u1), py(v_fit[1]), stroke=colour, width=2.2))
    for u, v in pts:
        inner.append(f'<circle cx="{_f(px(u))}" cy="{_f(py(v))}" r="3.2" fill="{INK}" fill-opacity="0.75"/>')
    body.append(f'<svg x="{left}" y="{top}" width="{_f(pw)}" height="{_f(ph)}" '
                f'viewBox="{left} {top} {_f(pw)} {_f(ph)}">' + "".join(inner) + "</svg>")
    # legend
    fit_txt = f"fitted slope {num(slope, 3)}"
    if ci and all(_finite(c) for c in ci):
        fit_txt += f"  CI [{num(ci[0], 3)}, {num(ci[1], 3)}]"
    body.append(_text(left, 13, fit_txt, size=11, fill=colour, weight="600"))
    if _finite(a_lo) or _finite(a_hi):
        lo_s = num(a_lo, 3) if _finite(a_lo) else "-inf"
        hi_s = num(a_hi, 3) if _finite(a_hi) else "inf"
        body.append(_text(left, 27, f"allowed slopes [{lo_s}, {hi_s}] (green wedge)", size=10, fill="#1a7f37"))
    return _svg(width, height, body, f"{name}: fitted {'log-log' if log else 'linear'} slope {num(slope)} against "
                                     f"the allowed slopes")


# ---------------------------------------------------------------------------- tables as bars
def bar_plot(labels: Sequence[str], values: Sequence, errors: Sequence | None = None, *,
             reference: Sequence | None = None, reference_label: str = "reference", title: str = "",
             verdicts: Sequence | None = None, width: int = 520) -> str:
    """Horizontal bars ``values[i]`` with ``+- errors[i]`` whiskers, one row per label.

    ``reference`` (optional, e.g. the published numbers) is drawn as a diamond per row;
    ``verdicts`` (optional, per row) colours a bar by the verdict of that row's measurement.
    Rows whose value is not a finite number are listed with "n/a".
    """
    n = len(labels)
    row_h = 22
    label_w = min(max((max((len(str(s)) for s in labels), default=4) * 7) + 12, 60), 190)
    top, bottom, right = (26 if title else 8), 24, 60
    pw = width - label_w - right
    height = top + row_h * n + bottom
    errs = list(errors) if errors is not None else [None] * n
    refs = list(reference) if reference is not None else [None] * n
    ends = [0.0]
    for v, e, r in zip(values, errs, refs):
        if _finite(v):
            ends += [v + (e if _finite(e) else 0.0), v - (e if _finite(e) else 0.0)]
        if _finite(r):
            ends.append(r)
    lo, hi = min(ends), max(ends)
    lo, hi = (lo - (hi - lo) * 0.05 if lo < 0 else 0.0), hi + (hi - lo) * 0.08 if hi > lo else hi + 1.0

    def x_of(v) -> float:
        return label_w + (float(v) - lo) / (hi - lo) * pw

    body = []
    if title:
        body.append(_text(label_w, 16, title, size=12, weight="600"))
    for t in nice_ticks(lo, hi, 5):
        body.append(_line(x_of(t), top - 2, x_of(t), top + row_h * n, stroke="#eaeef2"))
        body.append(_text(x_of(t), top + row_h * n + 14, tick_label(t), size=9, anchor="middle", fill=MUTED))
    zero = x_of(0.0)
    for i, (lab, v) in enumerate(zip(labels, values)):
        y = top + i * row_h
        body.append(_text(label_w - 8, y + 15, lab, size=11, anchor="end"))
        if not _finite(v):
            body.append(_text(zero + 4, y + 15, "n/a", size=10, fill=MUTED))
            continue
        xv = x_of(v)
        verdict = verdicts[i] if verdicts is not None and i < len(verdicts) else None
        fill = COLOURS.get(verdict, "#54aeff") if verdict else "#54aeff"
        body.append(f'<rect x="{_f(min(zero, xv))}" y="{_f(y + 4)}" width="{_f(abs(xv - zero))}" height="14" '
                    f'rx="2" fill="{fill}" fill-opacity="{0.55 if verdict else 0.8}"/>')
        end = xv
        e = errs[i]
        if _finite(e) and e > 0:
            x1, x2 = x_of(v - e), x_of(v + e)
            body.append(_line(x1, y + 11, x2, y + 11, stroke=INK, width=1.3))
            body += [_line(x, y + 6, x, y + 16, stroke=INK, width=1.3) for x in (x1, x2)]
            end = max(end, x2)
        r = refs[i]
        if _finite(r):
            xr = x_of(r)
            body.append(f'<path d="M{_f(xr)},{_f(y + 5)} L{_f(xr + 5)},{_f(y + 11)} L{_f(xr)},{_f(y + 17)} '
                        f'L{_f(xr - 5)},{_f(y + 11)} Z" fill="#fff" stroke="{INK}" stroke-width="1.3"/>')
            end = max(end, xr + 5)
        body.append(_text(end + 5, y + 15, num(v, 4), size=10, fill=MUTED))
    body.append(_line(zero, top - 2, zero, top + row_h * n, stroke=MUTED))
    if reference is not None and any(_finite(r) for r in refs):
        body.append(f'<path d="M{_f(width - 150)},{_f(height - 9)} l4,-5 l4,5 l-4,5 Z" fill="#fff" '
                    f'stroke="{INK}" stroke-width="1.2"/>')
        body.append(_text(width - 138, height - 5, f"= {reference_label}", size=9, fill=MUTED))
    return _svg(width, height, body, title or "bar plot")


# ---------------------------------------------------------------------------- history
def sparkline(margins: Sequence, verdicts: Sequence[str] | None = None, *, width: int = 96,
              height: int = 22) -> str:
    """Margins over runs (oldest left). Above the dashed zero line the point estimate is within
    tolerance; the dots are coloured by that run's verdict. Missing margins break the line."""
    n = len(margins)
    verdicts = list(verdicts) if verdicts is not None else [None] * n
    vals = [float(m) for m in margins if _finite(m)]
    if not vals:
        return _svg(width, height, [_text(2, height - 7, "no margins", size=9, fill=MUTED)], "no margin history",
                    cls="spark")
    lo, hi = min(vals + [0.0]), max(vals + [0.0])
    if hi == lo:
        hi, lo = hi + 1.0, lo - 1.0
    pad = 3

    def xy(i, m):
        x = pad + (i / (n - 1) if n > 1 else 0.5) * (width - 2 * pad)
        y = pad + (1 - (m - lo) / (hi - lo)) * (height - 2 * pad)
        return x, y

    body = [_line(pad, xy(0, 0.0)[1], width - pad, xy(0, 0.0)[1], stroke=MUTED, width=0.8, dash="2,2")]
    segment: list[str] = []
    segments = []
    for i, m in enumerate(margins):
        if _finite(m):
            x, y = xy(i, float(m))
            segment.append(f"{_f(x)},{_f(y)}")
        elif segment:
            segments.append(segment)
            segment = []
    if segment:
        segments.append(segment)
    for seg in segments:
        if len(seg) > 1:
            body.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{MUTED}" stroke-width="1.2"/>')
    for i, m in enumerate(margins):
        if _finite(m):
            x, y = xy(i, float(m))
            r = 2.6 if i == n - 1 else 1.9
            body.append(f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r}" fill="{_colour(verdicts[i])}"/>')
    label = "margins over the last runs: " + ", ".join(num(m, 3) if _finite(m) else "n/a" for m in margins)
    return _svg(width, height, body, label, cls="spark")


def verdict_strip(verdicts: Sequence[str], titles: Sequence[str] | None = None, *, size: int = 9,
                  gap: int = 2) -> str:
    """One square per run (oldest left), coloured by verdict; a hollow square for "not run"."""
    titles = list(titles) if titles is not None else [""] * len(verdicts)
    body = []
    for i, v in enumerate(verdicts):
        x = i * (size + gap)
        tip = f"<title>{escape(titles[i] or (v or 'not run'))}</title>"
        if v:
            body.append(f'<rect x="{x}" y="1" width="{size}" height="{size}" rx="2" fill="{_colour(v)}">{tip}</rect>')
        else:
            body.append(f'<rect x="{x + 0.5}" y="1.5" width="{size - 1}" height="{size - 1}" rx="2" fill="none" '
                        f'stroke="{GRID}">{tip}</rect>')
    width = max(len(verdicts) * (size + gap) - gap, 1)
    return _svg(width, size + 2, body, "verdicts over the last runs: " + ", ".join(v or "not run" for v in verdicts),
                cls="strip")
