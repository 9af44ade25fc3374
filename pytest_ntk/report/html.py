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

Writers read the verdict model's dicts (a JSON report) and nothing else.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from collections import Counter
from html import escape
from pathlib import Path

from . import svg
from ..verdicts.model import ORDER, severity
from .baseline import decisive
from .fmt import num
from .history import series
from .jsonreport import atomic_write_text

__all__ = ["render", "write", "bar_spec", "ORDER"]

_RANK = {v: (4 if v == "SKIPPED" else 3 - severity(v)) for v in ORDER}  # sort: ERROR first, SKIPPED last
_BLURB = {
    "HOLDS": "prediction met within tolerance",
    "FAILS": "prediction violated",
    "INCONCLUSIVE": "interval straddles the tolerance",
    "ERROR": "the computation broke",
    "SKIPPED": "did not run",
}


def _e(x) -> str:
    return escape("" if x is None else str(x))


def _ci(ci) -> str:
    """``[lo, hi]``; a missing end (a non-finite bound, stored as null) reads -inf / inf."""
    if not ci or len(ci) != 2:
        return ""
    lo, hi = ci
    return f"[{num(lo, 3) if lo is not None else '-inf'}, {num(hi, 3) if hi is not None else 'inf'}]"


def _breakable(x) -> str:
    """Escaped text that may wrap after ``[ , . =`` (long parametrized claim ids), not mid-word."""
    return re.sub(r"([\[,.=])", r"\1<wbr>", _e(x))


def _attr(x) -> str:
    return escape("" if x is None else str(x), quote=True)


# ---------------------------------------------------------------------------- tables -> bars
_SE = re.compile(r"(^|[^a-z])(se|sem|stderr|std\.? ?err(or)?|standard error|±)([^a-z]|$)", re.I)
_REF = re.compile(r"paper|published|reported|reference", re.I)
_MEAN = re.compile(r"mean|rmse|error|value|avg|average", re.I)


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


def _plots(c: dict) -> list[str]:
    out = []
    ms = [m for m in c.get("measurements") or [] if isinstance(m, dict)]
    strips = []
    for m in ms:
        d = m.get("detail") or {}
        if m.get("kind") == "slope" and d.get("x") and d.get("y") and _is_num(m.get("measured")):
            out.append(
                f'<figure class="fig"><figcaption>{_e(m.get("name"))}: fitted scaling</figcaption>'
                + svg.slope_plot(d["x"], d["y"], slope=m["measured"], intercept=d.get("intercept"),
                                 log=bool(d.get("log", True)), ci=m.get("ci"), allowed=d.get("allowed"),
                                 verdict=m.get("verdict"), name=m.get("name", "slope"),
                                 x_label=str(d.get("x_name") or "x"), y_label=str(d.get("y_name") or "y"))
                + "</figure>"
            )
        elif _is_num(m.get("measured")) or _is_num(m.get("predicted")):
            strips.append({"name": m.get("name", ""), "verdict": m.get("verdict"), "measured": m.get("measured"),
                           "ci": m.get("ci"), "predicted": m.get("predicted"), "band": _band(m),
                           "rivals": m.get("rivals") or []})
    if strips:
        note = "; diamonds: rival predictions, hollow when ruled out" if any(s["rivals"] for s in strips) else ""
        out.insert(0, '<figure class="fig wide"><figcaption>measured (dot, with CI) against the allowed band '
                      f'(green; dashed: predicted{note})</figcaption>' + svg.interval_rows(strips) + "</figure>")
    for art in c.get("artifacts") or []:
        if art.get("kind") == "table":
            spec = bar_spec(art)
            if spec:
                title = spec["value_name"] + (f" ± {spec['error_name']}" if spec["error_name"] else "")
                out.append(
                    f'<figure class="fig wide"><figcaption>{_e(art.get("name"))}'
                    + (" (bar colour: the verdict of that row's measurement)" if ms else "") + "</figcaption>"
                    + svg.bar_plot(spec["labels"], spec["values"], spec["errors"], reference=spec["reference"],
                                   reference_label=spec["reference_name"] or "reference", title=title,
                                   verdicts=[_row_verdict(ms, lab) for lab in spec["labels"]])
                    + "</figure>"
                )
    return out


def _artifact_tables(c: dict) -> list[str]:
    out = []
    for art in c.get("artifacts") or []:
        if art.get("kind") == "table":
            cols = art.get("columns") or []
            head = "".join(f"<th>{_e(col)}</th>" for col in cols)
            body = "".join(
                "<tr>" + "".join(f'<td class="{"num" if _is_num(v) else ""}">{_e(num(v) if _is_num(v) else v)}</td>'
                                 for v in row) + "</tr>"
                for row in art.get("rows") or []
            )
            out.append(f'<div class="art"><h4>{_e(art.get("name"))}</h4><table class="mini"><thead><tr>{head}'
                       f"</tr></thead><tbody>{body}</tbody></table></div>")
        elif art.get("kind") == "data":
            text = json.dumps(art.get("data"), indent=1)
            if len(text) > 4000:
                text = text[:4000] + "\n… (truncated; the full data is in the JSON report)"
            out.append(f'<details class="art"><summary>data: {_e(art.get("name"))}</summary><pre>{_e(text)}</pre>'
                       "</details>")
    return out


def _measurements_table(c: dict) -> str:
    ms = c.get("measurements") or []
    if not ms:
        return ""
    rows = []
    for m in ms:
        v = m.get("verdict", "")
        rows.append(
            "<tr>" + f"<td>{_e(m.get('name'))}</td><td>{_e(m.get('kind'))}</td>"
            f'<td><span class="badge b-{_attr(v)}">{_e(v)}</span></td>'
            + "".join(f'<td class="num">{_e(num(m.get(k)))}</td>'
                      for k in ("measured", "predicted", "gap", "tolerance", "margin"))
            + f'<td class="num">{_e(_ci(m.get("ci")))}</td><td class="num">{_e(m.get("n") or "")}</td></tr>'
        )
        for r in m.get("rivals") or []:
            rv = "ruled out" if r.get("ruled_out") else "not ruled out"
            rows.append(
                f'<tr class="rival"><td>&nbsp;&nbsp;rival: {_e(r.get("name"))}</td><td>rival</td>'
                f'<td><span class="badge b-{"HOLDS" if r.get("ruled_out") else "INCONCLUSIVE"}">{_e(rv)}</span></td>'
                f'<td></td><td class="num">{_e(num(r.get("predicted")))}</td><td class="num">{_e(num(r.get("gap")))}</td>'
                f'<td class="num">{_e(num(r.get("tolerance")))}</td><td class="num">{_e(num(r.get("margin")))}</td>'
                f'<td class="num">{_e(_ci(r.get("gap_ci")))}</td><td></td></tr>')
        for w in m.get("warnings") or []:
            rows.append(f'<tr class="warning"><td colspan="10">warning: {_e(w)}</td></tr>')
    return ('<table class="mini"><thead><tr><th>measurement</th><th>kind</th><th>verdict</th><th>measured</th>'
            "<th>predicted</th><th>gap</th><th>tolerance</th><th>margin</th><th>CI</th><th>n</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _history_cell(hist: list[dict], big: bool = False) -> str:
    if not hist:
        return ""
    tips = [f"{h.get('time') or '?'} · {(h.get('git_commit') or '')[:8]} · {h.get('verdict') or 'not run'}"
            f"{' · margin ' + num(h['margin'], 3) if h.get('margin') is not None else ''}" for h in hist]
    strip = svg.verdict_strip([h.get("verdict") for h in hist], tips, size=11 if big else 8)
    spark = svg.sparkline([h.get("margin") for h in hist], [h.get("verdict") for h in hist],
                          width=280 if big else 84, height=44 if big else 20)
    caption = ""
    if big:
        ms = [h["margin"] for h in hist if _is_num(h.get("margin"))]
        if ms:
            caption = (f'<span class="sub">latest margin {_e(num(ms[-1], 3))}; over these runs '
                       f'{_e(num(min(ms), 3))} … {_e(num(max(ms), 3))}</span>')
    return f'<div class="hist">{strip}{spark}{caption}</div>'


def _changed_tag(change) -> str:
    if change is None:
        return ""
    before = change.baseline["verdict"] if change.baseline else "new"
    return f'<span class="tag changed" title="baseline gate: {_attr(change.transition)}">was {_e(before)}</span>'


def _claim_body(c: dict, hist: list[dict] | None, change, ncols: int) -> str:
    verdict = c.get("verdict", "")
    m = decisive(c)
    ms = c.get("measurements") or []
    text = " ".join(str(c.get(k) or "") for k in ("id", "source", "statement", "message", "nodeid")).lower()
    expect = c.get("expect")
    agrees = c.get("agrees_with_source")
    expect_html = ""
    if expect:
        mark = "" if agrees is None else (' · <span class="ok">agrees</span>' if agrees
                                          else ' · <span class="no">contradicts</span>')
        expect_html = f'<div class="sub">expects <b>{_e(expect)}</b>{mark}</div>'
    sub = ""
    if m is not None and len(ms) > 1:
        sub = f'<div class="sub">decisive: {_e(m.get("name"))} · {len(ms)} measurements</div>'
    elif m is not None and m.get("name") not in (None, m.get("kind")):
        sub = f'<div class="sub">{_e(m.get("name"))}</div>'
    if verdict in ("ERROR", "SKIPPED") and c.get("message"):
        msg = c["message"]
        sub += f'<div class="sub msg">{_e(msg[:120])}{"…" if len(msg) > 120 else ""}</div>'
    gap_html = ""
    if m is not None and _is_num(m.get("gap")):
        if m.get("kind") in ("at_most", "at_least") or not _is_num(m.get("tolerance")):
            gap_text = f"margin {num(m.get('margin'), 3)}"  # a bound: no tolerance to compare the gap with
        else:
            gap_text = f"{num(m.get('gap'), 3)} / {num(m.get('tolerance'), 3)}"
        gap_html = (svg.gap_bar(m.get("gap"), m.get("tolerance"), m.get("gap_ci"), m.get("verdict"))
                    + f'<span class="gapnum">{_e(gap_text)}</span>')
    measured = m.get("measured") if m else None
    predicted = m.get("predicted") if m else None
    cells = [
        f'<td class="id" data-sort="{_attr(c.get("id"))}"><button class="chev" aria-label="details">▸</button>'
        f'<div class="cid">{_breakable(c.get("id"))}</div>{sub}</td>',
        f'<td class="src" data-sort="{_attr(c.get("source"))}">{_e(c.get("source"))}{expect_html}</td>',
        f'<td data-sort="{_RANK.get(verdict, 9)}"><span class="badge b-{_attr(verdict)}">{_e(verdict)}</span>'
        f"{_changed_tag(change)}</td>",
        f'<td class="num" data-sort="{_attr(measured if _is_num(measured) else "")}">{_e(num(measured))}</td>',
        f'<td class="num" data-sort="{_attr(predicted if _is_num(predicted) else "")}">{_e(num(predicted))}</td>',
        f'<td class="gap" data-sort="{_gap_ratio(m)!r}">{gap_html}</td>',
        f'<td class="num ci" data-sort="{_attr((m or {}).get("margin") if _is_num((m or {}).get("margin")) else "")}">'
        f'{_e(_ci((m or {}).get("ci")))}</td>',
    ]
    if hist is not None:
        last = hist[-1].get("margin") if hist else None
        cells.append(f'<td class="histcell" data-sort="{_attr(last if _is_num(last) else "")}">'
                     f"{_history_cell(hist)}</td>")
    detail = _details(c, hist, change)
    return (
        f'<tbody class="claim v-{_attr(verdict)}" data-verdict="{_attr(verdict)}" data-id="{_attr(c.get("id"))}" '
        f'data-text="{_attr(text)}"><tr class="row">{"".join(cells)}</tr>'
        f'<tr class="detail"><td colspan="{ncols}">{detail}</td></tr></tbody>'
    )


def _details(c: dict, hist: list[dict] | None, change) -> str:
    parts = []
    if c.get("statement"):
        parts.append(f'<p class="statement">{_e(c["statement"])}</p>')
    if change is not None:
        parts.append(f'<p class="changebox"><b>Baseline gate: {_e(change.transition)}</b><br>{_e(change.describe())}</p>')
    if c.get("message"):
        parts.append(f'<pre class="message">{_e(c["message"])}</pre>')
    plots = _plots(c)
    if plots:
        parts.append('<div class="figs">' + "".join(plots) + "</div>")
    mt = _measurements_table(c)
    if mt:
        parts.append(mt)
    parts += _artifact_tables(c)
    if hist:
        parts.append(f'<div class="histbig"><h4>last {len(hist)} runs (oldest left): verdict, and margin '
                     f"(dashed: margin 0)</h4>{_history_cell(hist, big=True)}</div>")
    facts = [("test", c.get("nodeid")), ("seed", c.get("seed")),
             ("duration", f"{num(c.get('duration_s'), 3)} s" if c.get("duration_s") is not None else None)]
    if c.get("params"):
        facts.append(("params", ", ".join(f"{k}={v}" for k, v in c["params"].items())))
    stages = c.get("stages") or []
    if stages:
        facts.append(("stages", " · ".join(f"{s.get('name')} {num(s.get('duration_s'), 3)} s"
                                            + ("" if s.get("status", "done") == "done" else f" ({s.get('status')})")
                                            for s in stages)))
    parts.append('<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts
                                                if v not in (None, "")) + "</dl>")
    return "".join(parts)


# ---------------------------------------------------------------------------- page
def _run_meta(run: dict) -> str:
    profile = run.get("profile")
    pname = profile.get("name") if isinstance(profile, dict) else profile
    commit = run.get("git_commit")
    bits = [("profile", pname), ("commit", commit[:10] if commit else None), ("seed", run.get("seed")),
            ("device", run.get("device")), ("time", run.get("time"))]
    return " ".join(f'<span class="meta"><span class="k">{_e(k)}</span> {_e(v)}</span>'
                    for k, v in bits if v not in (None, ""))


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        else:
            out.append((key, "" if v is None else str(v)))
    return out


def _summary(claims: list[dict]) -> str:
    counts = Counter(c.get("verdict") for c in claims)
    total = len(claims)
    cards = []
    for v in ORDER:
        n = counts.get(v, 0)
        cards.append(
            f'<button class="card c-{v}{" zero" if not n else ""}" data-verdict="{v}" title="show only {v}">'
            f'<span class="n">{n}</span><span class="lbl">{v}</span><span class="blurb">{_BLURB[v]}</span></button>'
        )
    segs = "".join(f'<span class="seg s-{v}" style="flex:{counts[v]}" title="{counts[v]} {v}"></span>'
                   for v in ORDER if counts.get(v))
    return (f'<section class="summary"><div class="cards">{"".join(cards)}</div>'
            f'<div class="stack" aria-label="share of verdicts">{segs}</div>'
            f'<div class="total">{total} claim{"s" if total != 1 else ""}</div></section>')


def _baseline_banner(changes, baseline_path) -> str:
    if changes is None:
        return ""
    where = f" against <code>{_e(baseline_path)}</code>" if baseline_path else ""
    if not changes:
        return f'<div class="banner ok">Baseline gate passed{where}: no verdict changed.</div>'
    items = "".join(
        f'<li><span class="trans">{_e(ch.transition)}</span> <a href="#open={_attr(ch.claim_id)}" '
        f'class="cl" data-open="{_attr(ch.claim_id)}">{_e(ch.claim_id)}</a></li>'
        for ch in changes)
    n = len(changes)
    return (f'<div class="banner bad"><b>Baseline gate failed{where}: {n} verdict change{"s" if n != 1 else ""}</b>'
            f"<ul>{items}</ul></div>")


def render(report: dict, *, history: list[dict] | None = None, changes=None, baseline_path: str | None = None,
           history_runs: int = 20, title: str = "NTK claims") -> str:
    """The HTML page for one run (a JSON report dict).

    ``history``: records of the history store (oldest first), or None for no history column;
    ``changes``: the baseline comparison's :class:`~.baseline.Change` list (None: no baseline).
    """
    run = report.get("run") or {}
    claims = sorted(report.get("claims", []), key=lambda c: (_RANK.get(c.get("verdict"), 9), c.get("id", "")))
    by_change = {ch.claim_id: ch for ch in (changes or [])}
    head = ["claim", "source", "verdict", "measured", "predicted", "gap / tolerance", "CI"]
    keys = ["id", "source", "verdict", "measured", "predicted", "gap", "margin"]
    types = ["text", "text", "num", "num", "num", "num", "num"]
    if history is not None:
        head.append(f"history (last {min(len(history), history_runs)} runs)")
        keys.append("history")
        types.append("num")
    ths = "".join(f'<th data-col="{i}" data-key="{k}" data-type="{t}" tabindex="0" title="sort by {k}">{_e(h)}</th>'
                  for i, (h, k, t) in enumerate(zip(head, keys, types)))
    bodies = []
    for c in claims:
        hist = series(history, c["id"], last=history_runs) if history is not None else None
        bodies.append(_claim_body(c, hist, by_change.get(c["id"]), len(head)))
    missing = [ch for ch in (changes or []) if ch.current is None]
    if missing:
        for ch in missing:
            bodies.insert(0,
                f'<tbody class="claim v-MISSING" data-verdict="MISSING" data-id="{_attr(ch.claim_id)}" '
                f'data-text="{_attr(ch.claim_id.lower())}"><tr class="row"><td class="id"><div class="cid">'
                f'{_e(ch.claim_id)}</div><div class="sub msg">in the baseline, not reported by this run</div></td>'
                f'<td></td><td data-sort="-1"><span class="badge b-MISSING">MISSING</span>{_changed_tag(ch)}</td>'
                f'<td colspan="{len(head) - 3}"></td></tr><tr class="detail"><td colspan="{len(head)}">'
                f"<p>{_e(ch.describe())}</p></td></tr></tbody>"
            )
    incomplete = "" if report.get("complete", True) else (
        '<div class="banner warn"><b>Incomplete run:</b> the session was interrupted; claims that did not '
        "finish are missing or ERROR.</div>")
    info_rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _flatten(run))
    counts = Counter(c.get("verdict") for c in claims)
    doc_title = f"{title}: " + (", ".join(f"{counts[v]} {v}" for v in ORDER if counts.get(v)) or "no claims")
    chips = "".join(f'<button class="chip c-{v}" data-verdict="{v}" aria-pressed="false">{v}</button>' for v in ORDER)
    table = (f'<table id="claims"><thead><tr>{ths}</tr></thead>{"".join(bodies)}</table>' if bodies
             else '<p class="empty">No claims in this run.</p>')
    return f"""<!doctype html>
<html lang="en" class="nojs">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(doc_title)}</title>
<style>{_asset("report.css")}</style>
</head>
<body>
<header>
<h1>{_e(title)} <span class="by">pytest-ntk report</span></h1>
<div class="runmeta">{_run_meta(run)}</div>
</header>
{_summary(claims)}
{incomplete}
{_baseline_banner(changes, baseline_path)}
<section class="controls">
<input id="q" type="search" placeholder="Filter by claim id, source, statement or message…" aria-label="filter claims">
<span class="chips">{chips}</span>
<button id="expand" type="button">Expand all</button>
<span id="shown" aria-live="polite"></span>
</section>
{table}
<details class="runinfo"><summary>Run info</summary><table class="mini">{info_rows}</table></details>
<footer>Generated by pytest-ntk. Click a column header to sort, a claim to see its measurements and plots.
The view is kept in the address (<code>#q=…&amp;verdict=FAILS,ERROR&amp;sort=-gap&amp;open=all</code>).</footer>
<script>{_asset("report.js")}</script>
</body>
</html>
"""


def write(path, report: dict, **kwargs) -> Path:
    """Write the page to ``path`` atomically; keyword arguments as :func:`render`."""
    atomic_write_text(path, render(report, **kwargs))
    return Path(path)


def _asset(name: str) -> str:
    """A file of ``pytest_ntk/report/assets`` (the page's stylesheet and script), read once."""
    if name not in _ASSETS:
        _ASSETS[name] = resources.files("pytest_ntk.report").joinpath("assets", name).read_text(encoding="utf-8")
    return _ASSETS[name]


_ASSETS: dict[str, str] = {}
