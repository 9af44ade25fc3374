"""The "NTK claims" table printed at the end of a pytest run."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from ..verdicts.model import ORDER, decisive
from .fmt import interval, num

__all__ = ["render", "COLOURS", "counts_line", "cache_line", "pytest_counts_line"]

COLOURS = {"HOLDS": "green", "FAILS": "red", "INCONCLUSIVE": "yellow", "ERROR": "red", "SKIPPED": "yellow"}
HEADER = ("claim", "verdict", "measured", "predicted", "gap", "tolerance", "margin", "CI", "rivals out", "source says")


def _source_says(c: dict) -> str:
    expect = c.get("expect")
    if not expect:
        return ""
    agrees = c.get("agrees_with_source")
    mark = "" if agrees is None else (" (agrees)" if agrees else " (contradicts)")
    return f"{expect}{mark}"


def rows(claims: Iterable[dict], all_measurements: bool = False) -> list[tuple[str, ...]]:
    """One row per claim (its decisive measurement), or also one per other measurement with
    ``all_measurements`` (the decisive one stays on the claim's row)."""
    out = []
    for c in claims:
        ms = c.get("measurements") or []
        if ms:
            # the claim's row carries the measurement that decided its verdict; with
            # all_measurements the others follow, each with its own verdict
            first = decisive(ms)
            ms = [first] + ([m for m in ms if m is not first] if all_measurements else [])
        if not ms:
            out.append((c["id"], c["verdict"], "", "", "", "", "", "", "", _source_says(c)))
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
                num(m.get("tolerance")) + ("*" if m.get("default_tolerance") else ""),
                num(m.get("margin")),
                interval(_unbounded(m.get("ci"))),
                _rivals_cell(m),
                _source_says(c) if i == 0 else "",
            ))
    return out


def _unbounded(ci):
    """A JSON interval's null ends are unbounded (one sample, a two-point slope): show them as -inf/inf."""
    if not ci:
        return ci
    lo, hi = ci
    return [float("-inf") if lo is None else lo, float("inf") if hi is None else hi]


def _rivals_cell(m: dict) -> str:
    """``ruled out / named`` for a measurement that names rivals, else blank."""
    rivals = m.get("rivals") or []
    if not rivals:
        return ""
    return f"{sum(bool(r.get('ruled_out')) for r in rivals)}/{len(rivals)}"


def counts_line(claims: Iterable[dict]) -> str:
    counts = Counter(c["verdict"] for c in claims)
    return ", ".join(f"{counts[v]} {v}" for v in ORDER if counts.get(v))


def render(claims: list[dict], write_line, *, all_measurements: bool = False, markup=None,
           audit: bool = False) -> None:
    """Write the table with ``write_line(text, **markup)`` (pytest's terminal writer)."""
    body = rows(claims, all_measurements)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(HEADER)]
    widths[0] = min(widths[0], 72)

    def fmt(r):
        label = r[0] if len(r[0]) <= widths[0] else r[0][: widths[0] - 1] + "…"
        cells = [label.ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [r[i].rjust(widths[i]) for i in range(2, 7)]
        cells += [r[7].ljust(widths[7]), r[8].rjust(widths[8]), r[9]]
        return "  ".join(cells).rstrip()

    write_line(fmt(HEADER), bold=True)
    for r in body:
        colour = COLOURS.get(r[1])
        write_line(fmt(r), **({colour: True} if colour else {}))
    if any(m.get("default_tolerance") for c in claims for m in c.get("measurements") or []):
        write_line("* tolerance from the profile's default (the claim gave none)")
    warned = [(c["id"], w) for c in claims for m in c.get("measurements") or [] for w in m.get("warnings") or []]
    for cid, w in warned:
        write_line(f"WARNING {cid}: {w}", yellow=True)
    problems = [c for c in claims if c["verdict"] in ("ERROR", "SKIPPED") and c.get("message")]
    if problems:
        write_line("")
        for c in problems:
            write_line(f"{c['verdict']} {c['id']}: {c['message'][:300]}", **{COLOURS[c['verdict']]: True})
    write_line("")
    write_line(f"NTK claims: {counts_line(claims) or 'none'}", bold=True)
    reconcile = pytest_counts_line(claims, audit=audit)
    if reconcile:
        write_line(reconcile)


def pytest_counts_line(claims: list[dict], *, audit: bool) -> str:
    """How pytest's outcome words count the claims (they differ from the verdicts by design).

    HOLDS passes; FAILS fails, except in an audit, when the source expects it or under an xfail
    marker, where it is an expected failure (xfailed); INCONCLUSIVE is xfailed; ERROR fails;
    SKIPPED is skipped. One line, e.g. ``in pytest's summary: 30 passed = 30 HOLDS; 42 xfailed =
    37 FAILS (findings of the audit) + 5 INCONCLUSIVE``.
    """
    groups: dict[str, Counter] = {}
    for c in claims:
        v = c.get("verdict")
        if v == "HOLDS":
            word = "passed"
        elif v == "FAILS":
            word = "xfailed" if (audit or c.get("expect") == "fails" or c.get("xfail")) else "failed"
        elif v == "INCONCLUSIVE":
            word = "xfailed"
        elif v == "ERROR":
            word = "failed or error"
        else:
            word = "skipped"
        groups.setdefault(word, Counter())[v] += 1
    if not groups or set(groups) == {"passed"}:
        return ""
    why = {"FAILS": " (findings of the audit)" if audit else " (expected by the source)"}
    parts = []
    for word in ("passed", "failed", "failed or error", "xfailed", "skipped"):
        if word in groups:
            n = sum(groups[word].values())
            detail = " + ".join(f"{k} {v}{why.get(v, '') if word == 'xfailed' else ''}"
                                for v, k in sorted(groups[word].items(), key=lambda t: ORDER.index(t[0])))
            parts.append(f"{n} {word} = {detail}")
    return "in pytest's summary line: " + "; ".join(parts)


def cache_line(stats: dict) -> str:
    """One line on the cache: what was computed (and how long it took), reused, and read from disk."""
    computed, memory, disk = stats.get("misses", 0), stats.get("memory_hits", 0), stats.get("disk_hits", 0)
    line = (f"ntk cache: {computed} value(s) computed ({stats.get('compute_s', 0.0):.1f}s of computing"
            f"{', summed over processes' if stats.get('processes', 1) > 1 else ''}), "
            f"{memory} reused within the run, {disk} read from disk")
    if disk:
        line += f" (they took {stats.get('saved_s', 0.0):.1f}s to compute when they were written)"
    if not stats.get("enabled", True):
        line += "; disabled by --ntk-no-cache"
    return line
