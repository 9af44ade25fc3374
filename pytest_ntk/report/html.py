"""The self-contained HTML report: one file, inline CSS and SVG, a little vanilla JavaScript.

It opens without network access. At the top: the run (profile, commit, device, time) and the
count of claims per verdict; then the baseline gate's result, when one was compared; then a
table of claims, sortable by any column (click its header) and filterable by text and by verdict
(the view lives in the URL fragment, ``#q=liu&verdict=FAILS,ERROR&sort=-gap&open=all``, so
it can be linked; ``sort`` takes id, source, verdict, measured, predicted, gap, margin or history, ``-``
for descending; ``open`` takes claim ids or ``all``). Clicking a claim opens its details: statement, message, every measurement,
plots (measured +- CI against the allowed band; the fitted scaling line for slope claims; tables
such as the Liu et al. RMSE table as bars of mean +- SE), timings, attached tables and data, and,
with a history store, its verdicts and margins over the last runs.

The markup is in jinja2 templates (``report/templates``, autoescaped: every value from a report is
escaped unless the template marks it ``|safe``, which only the SVG of :mod:`.svg` and the page's own
stylesheet and script are); this module computes what they show. jinja2 is imported when a page is
rendered, not with the module. Writers read the verdict model's dicts (a JSON report) and nothing else.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

from ..verdicts.model import ORDER, severity
from . import svg
from .baseline import decisive
from .fmt import num
from .history import series
from .jsonreport import atomic_write_text

__all__ = ["ORDER", "bar_spec", "render", "write"]

_RANK = {v: (4 if v == "SKIPPED" else 3 - severity(v)) for v in ORDER}  # sort: ERROR first, SKIPPED last
_BLURB = {
    "HOLDS": "prediction met within tolerance",
    "FAILS": "prediction violated",
    "INCONCLUSIVE": "interval straddles the tolerance",
    "ERROR": "the computation broke",
    "SKIPPED": "did not run",
}
_COLUMNS = [("claim", "id", "text"), ("source", "source", "text"), ("verdict", "verdict", "num"),
            ("measured", "measured", "num"), ("predicted", "predicted", "num"),
            ("gap / tolerance", "gap", "num"), ("CI", "margin", "num")]  # (header, sort key, sort type)


def _ci(ci) -> str:
    """``[lo, hi]``; a missing end (a non-finite bound, stored as null) reads -inf / inf."""
    if not ci or len(ci) != 2:
        return ""
    lo, hi = ci
    return f"[{num(lo, 3) if lo is not None else '-inf'}, {num(hi, 3) if hi is not None else 'inf'}]"


def _data_text(data) -> str:
    """An attached data artifact as indented JSON, cut at 4000 characters."""
    text = json.dumps(data, indent=1)
    if len(text) > 4000:
        text = text[:4000] + "\n… (truncated; the full data is in the JSON report)"
    return text


# ---------------------------------------------------------------------------- tables -> bars
_SE = re.compile(r"(^|[^a-z])(se|sem|stderr|std\.? ?err(or)?|standard error|±)([^a-z]|$)", re.IGNORECASE)
_REF = re.compile(r"paper|published|reported|reference", re.IGNORECASE)
_MEAN = re.compile(r"mean|rmse|error|value|avg|average", re.IGNORECASE)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def bar_spec(artifact: dict) -> dict | None:
    """How to draw a table artifact as bars, or None when it has no label and value columns.

    Labels: the first column of strings. Values: the first numeric column named like a mean/RMSE
    (not a published one), else the first numeric non-SE column. Errors: a column named SE, SEM,
    stderr or "standard error". Reference: a numeric column named paper/published/reported.
    """
    cols = [str(c) for c in artifact.get("columns") or []]
    rows = [list(r) for r in artifact.get("rows") or []]
    if not cols or not rows:
        return None

    def column(j):
        return [r[j] if j < len(r) else None for r in rows]

    labels = next((j for j in range(len(cols)) if all(isinstance(v, str) for v in column(j))), None)
    numeric = [j for j in range(len(cols)) if j != labels
               and all(v is None or _is_num(v) for v in column(j)) and any(_is_num(v) for v in column(j))]
    if labels is None or not numeric:
        return None
    se = [j for j in numeric if _SE.search(cols[j])]
    plain = [j for j in numeric if j not in se]
    own = [j for j in plain if not _REF.search(cols[j])]
    value = next((j for j in own if _MEAN.search(cols[j])), own[0] if own else None)
    if value is None:
        return None
    err = next((j for j in se if not _REF.search(cols[j])), None)
    ref = next((j for j in plain if _REF.search(cols[j]) and j != value), None)
    return {
        "labels": [str(v) for v in column(labels)],
        "values": column(value),
        "errors": column(err) if err is not None else None,
        "reference": column(ref) if ref is not None else None,
        "value_name": cols[value],
        "error_name": cols[err] if err is not None else None,
        "reference_name": cols[ref] if ref is not None else None,
    }


# ---------------------------------------------------------------------------- per-claim pieces
def _band(m: dict):
    kind, pred, tol = m.get("kind"), m.get("predicted"), m.get("tolerance")
    if kind == "at_most":
        return (None, pred)
    if kind == "at_least":
        return (pred, None)
    if kind == "slope":
        allowed = (m.get("detail") or {}).get("allowed")
        if allowed:
            return tuple(allowed[:2])
    if _is_num(pred) and _is_num(tol):
        return (pred - tol, pred + tol)
    return (None, None)


def _gap_ratio(m: dict | None) -> float:
    """The sort key of the gap column: gap / tolerance (inf for a violated bound, -1 without numbers)."""
    if not m or not _is_num(m.get("gap")):
        return -1.0
    gap, tol = m["gap"], m.get("tolerance")
    if _is_num(tol) and tol > 0:
        return gap / tol
    return 0.0 if gap <= 0 else 1e300


def _row_verdict(ms: list[dict], label: str) -> str | None:
    """The verdict of the measurement recorded for a table row: named ``label`` or ``...[label]``."""
    for m in ms:
        name = str(m.get("name", ""))
        if name == label or name.endswith(f"[{label}]"):
            return m.get("verdict")
    return None


def _figures(c: dict) -> list[dict]:
    """The plots of a claim's details, in order: ``strips`` (every measurement against its allowed
    band), one ``slope`` per scaling fit, one ``bars`` per table artifact that :func:`bar_spec` reads.
    Each is ``{"kind", "svg", ...}`` with what its caption needs (``details.html.j2`` writes it)."""
    ms = [m for m in c.get("measurements") or [] if isinstance(m, dict)]
    slopes, strips, bars = [], [], []
    for m in ms:
        d = m.get("detail") or {}
        if m.get("kind") == "slope" and d.get("x") and d.get("y") and _is_num(m.get("measured")):
            slopes.append({"kind": "slope", "name": m.get("name"), "svg": svg.slope_plot(
                d["x"], d["y"], slope=m["measured"], intercept=d.get("intercept"), log=bool(d.get("log", True)),
                ci=m.get("ci"), allowed=d.get("allowed"), verdict=m.get("verdict"), name=m.get("name", "slope"),
                x_label=str(d.get("x_name") or "x"), y_label=str(d.get("y_name") or "y"))})
        elif _is_num(m.get("measured")) or _is_num(m.get("predicted")):
            strips.append({"name": m.get("name", ""), "verdict": m.get("verdict"), "measured": m.get("measured"),
                           "ci": m.get("ci"), "predicted": m.get("predicted"), "band": _band(m),
                           "rivals": m.get("rivals") or []})
    for art in c.get("artifacts") or []:
        spec = bar_spec(art) if art.get("kind") == "table" else None
        if spec:
            title = spec["value_name"] + (f" ± {spec['error_name']}" if spec["error_name"] else "")
            bars.append({"kind": "bars", "name": art.get("name"), "coloured": bool(ms), "svg": svg.bar_plot(
                spec["labels"], spec["values"], spec["errors"], reference=spec["reference"],
                reference_label=spec["reference_name"] or "reference", title=title,
                verdicts=[_row_verdict(ms, lab) for lab in spec["labels"]])})
    if strips:
        strips = [{"kind": "strips", "rivals": any(s["rivals"] for s in strips), "svg": svg.interval_rows(strips)}]
    return strips + slopes + bars


def _history_plots(hist: list[dict], big: bool = False) -> str:
    """A claim's past runs as SVG: the strip of verdicts (a tooltip per run) and the margin sparkline."""
    tips = [f"{h.get('time') or '?'} · {(h.get('git_commit') or '')[:8]} · {h.get('verdict') or 'not run'}"
            f"{' · margin ' + num(h['margin'], 3) if h.get('margin') is not None else ''}" for h in hist]
    verdicts = [h.get("verdict") for h in hist]
    return (svg.verdict_strip(verdicts, tips, size=11 if big else 8)
            + svg.sparkline([h.get("margin") for h in hist], verdicts, width=280 if big else 84,
                            height=44 if big else 20))


def _facts(c: dict) -> list[tuple[str, str]]:
    """The facts listed at the foot of a claim's details: test, seed, duration, params, stages."""
    facts = [("test", c.get("nodeid")), ("seed", c.get("seed")),
             ("duration", f"{num(c.get('duration_s'), 3)} s" if c.get("duration_s") is not None else None)]
    if c.get("params"):
        facts.append(("params", ", ".join(f"{k}={v}" for k, v in c["params"].items())))
    if c.get("stages"):
        facts.append(("stages", " · ".join(f"{s.get('name')} {num(s.get('duration_s'), 3)} s"
                                            + ("" if s.get("status", "done") == "done" else f" ({s.get('status')})")
                                            for s in c["stages"])))
    return [(k, v) for k, v in facts if v not in (None, "")]


def _claim_view(c: dict, hist: list[dict] | None, change) -> dict:
    """What ``claim.html.j2`` shows of one claim beyond its dict: the decisive measurement, sort
    keys, the text the filter searches, and the plots (SVG)."""
    m = decisive(c)
    has_gap = m is not None and _is_num(m.get("gap"))
    return {
        "claim": c, "m": m, "change": change, "hist": hist, "facts": _facts(c), "figures": _figures(c),
        "rank": _RANK.get(c.get("verdict", ""), 9),
        "gap_ratio": _gap_ratio(m),
        "gap_bar": svg.gap_bar(m.get("gap"), m.get("tolerance"), m.get("gap_ci"), m.get("verdict")) if has_gap else "",
        "text": " ".join(str(c.get(k) or "") for k in ("id", "source", "statement", "message", "nodeid")).lower(),
        "history": _history_plots(hist) if hist else "",
        "history_big": _history_plots(hist, big=True) if hist else "",
    }


# ---------------------------------------------------------------------------- page
def _run_meta(run: dict) -> list[tuple[str, object]]:
    profile = run.get("profile")
    commit = run.get("git_commit")
    bits = [("profile", profile.get("name") if isinstance(profile, dict) else profile),
            ("commit", commit[:10] if commit else None), ("seed", run.get("seed")),
            ("device", run.get("device")), ("time", run.get("time"))]
    return [(k, v) for k, v in bits if v not in (None, "")]


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        else:
            out.append((key, "" if v is None else str(v)))
    return out


def render(report: dict, *, history: list[dict] | None = None, changes=None, baseline_path: str | None = None,
           history_runs: int = 20, title: str = "NTK claims") -> str:
    """The HTML page for one run (a JSON report dict).

    ``history``: records of the history store (oldest first), or None for no history column;
    ``changes``: the baseline comparison's :class:`~.baseline.Change` list (None: no baseline).
    """
    run = report.get("run") or {}
    claims = sorted(report.get("claims", []), key=lambda c: (_RANK.get(c.get("verdict"), 9), c.get("id", "")))
    by_change = {ch.claim_id: ch for ch in (changes or [])}
    columns = list(_COLUMNS)
    if history is not None:
        columns.append((f"history (last {min(len(history), history_runs)} runs)", "history", "num"))
    rows = [_claim_view(c, series(history, c["id"], last=history_runs) if history is not None else None,
                        by_change.get(c["id"])) for c in claims]
    return _environment().get_template("report.html.j2").render(
        title=title, run_meta=_run_meta(run), run_info=_flatten(run), complete=report.get("complete", True),
        verdicts=ORDER, blurbs=_BLURB, counts=Counter(c.get("verdict") for c in claims), total=len(claims),
        changes=changes, baseline_path=baseline_path, missing=[ch for ch in changes or [] if ch.current is None],
        columns=columns, rows=rows, css=_asset("report.css"), js=_asset("report.js"))


def write(path, report: dict, **kwargs) -> Path:
    """Write the page to ``path`` atomically; keyword arguments as :func:`render`."""
    atomic_write_text(path, render(report, **kwargs))
    return Path(path)


@functools.cache
def _environment():
    """The templates of ``pytest_ntk/report/templates`` (package data), autoescaped, built once.

    Filters: ``num`` (:func:`.fmt.num`), ``ci`` (``[lo, hi]``), ``data_text`` (a data artifact as
    JSON), ``breakable`` (escaped text that may wrap after ``[ , . =``: long parametrized claim ids);
    test: ``numeric`` (an int or float, not a bool). A value is written '' for None, and a key missing
    from a report's dict reads as None in the filters, as ``dict.get`` would.
    """
    import jinja2
    from markupsafe import Markup, escape

    def given(x):
        return None if isinstance(x, jinja2.Undefined) else x

    env = jinja2.Environment(loader=jinja2.PackageLoader("pytest_ntk.report", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             finalize=lambda x: "" if x is None else x)
    env.filters.update(
        num=lambda x, digits=4: num(given(x), digits),
        ci=lambda ci: _ci(given(ci)),
        data_text=lambda data: _data_text(given(data)),
        breakable=lambda x: Markup(re.sub(r"([\[,.=])", r"\1<wbr>", str(escape("" if given(x) is None else x)))),
    )
    env.tests["numeric"] = _is_num
    return env


def _asset(name: str) -> str:
    """A file of ``pytest_ntk/report/assets`` (the page's stylesheet and script), read once."""
    if name not in _ASSETS:
        _ASSETS[name] = resources.files("pytest_ntk.report").joinpath("assets", name).read_text(encoding="utf-8")
    return _ASSETS[name]


_ASSETS: dict[str, str] = {}
