"""The "NTK claims" table printed at the end of a pytest run."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from .fmt import interval, num

__all__ = ["render", "COLOURS", "counts_line"]

COLOURS = {"HOLDS": "green", "FAILS": "red", "INCONCLUSIVE": "yellow", "ERROR": "red", "SKIPPED": "yellow"}
ORDER = ("HOLDS", "FAILS", "INCONCLUSIVE", "ERROR", "SKIPPED")
HEADER = ("claim", "verdict", "measured", "predicted", "gap", "tolerance", "margin", "CI", "source says")


def _source_says(c: dict) -> str:
    expect = c.get("expect")
    if not expect:
        return ""
    agrees = c.get("agrees_with_source")
    mark = "" if agrees is None else (" (agrees)" if agrees else " (contradicts)")
    return f"{expect}{mark}"


def rows(claims: Iterable[dict], all_measurements: bool = False) -> list[tuple[str, ...]]:
    """One row per claim (its decisive measurement), or per measurement with ``all_measurements``."""
    out = []
    for c in claims:
        ms = c.get("measurements") or []
        if not all_measurements and ms:
            ms = [_decisive(c)]
        if not ms:
            out.append((c["id"], c["verdict"], "", "", "", "", "", "", _source_says(c)))
            continue
        for i, m in enumerate(ms):
            label = c["id"] if i == 0 else f"  {m['name']}"
            if i == 0 and m.get("name") and (len(ms) > 1 or m.get("name") != m.get("kind")):
                label = f"{c['id']} ({m['name']})"
            out.append((
                label,
                c["verdict"] if i == 0 else m["verdict"],
                num(m.get("measured")),
                num(m.get("predicted")),
                num(m.get("gap")),
                num(m.get("tolerance")),
                num(m.get("margin")),
                interval(_unbounded(m.get("ci"))),
                _source_says(c) if i == 0 else "",
            ))
    return out


def _unbounded(ci):
    """A JSON interval's null ends are unbounded (one sample, a two-point slope): show them as -inf/inf."""
    if not ci:
        return ci
    lo, hi = ci
    return [float("-inf") if lo is None else lo, float("inf") if hi is None else hi]


def _decisive(c: dict) -> dict:
    severity = {"HOLDS": 0, "INCONCLUSIVE": 1, "FAILS": 2, "ERROR": 3}
    ms = c["measurements"]

    def key(m):
        margin = m.get("margin")
        return (-severity.get(m["verdict"], 0), margin if margin is not None else float("-inf"))

    return sorted(ms, key=key)[0]


def counts_line(claims: Iterable[dict]) -> str:
    counts = Counter(c["verdict"] for c in claims)
    return ", ".join(f"{counts[v]} {v}" for v in ORDER if counts.get(v))


def render(claims: list[dict], write_line, *, all_measurements: bool = False, markup=None) -> None:
    """Write the table with ``write_line(text, **markup)`` (pytest's terminal writer)."""
    body = rows(claims, all_measurements)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(HEADER)]
    widths[0] = min(widths[0], 72)

    def fmt(r):
        cells = [r[0][: widths[0]].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [r[i].rjust(widths[i]) for i in range(2, 7)]
        cells += [r[7].ljust(widths[7]), r[8]]
        return "  ".join(cells).rstrip()

    write_line(fmt(HEADER), bold=True)
    for r in body:
        colour = COLOURS.get(r[1])
        write_line(fmt(r), **({colour: True} if colour else {}))
    problems = [c for c in claims if c["verdict"] in ("ERROR", "SKIPPED") and c.get("message")]
    if problems:
        write_line("")
        for c in problems:
            write_line(f"{c['verdict']} {c['id']}: {c['message'][:300]}", **{COLOURS[c['verdict']]: True})
    write_line("")
    write_line(f"NTK claims: {counts_line(claims) or 'none'}", bold=True)
