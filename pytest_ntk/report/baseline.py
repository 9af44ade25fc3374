"""The baseline gate: compare each claim's verdict with a committed baseline file.

The baseline is JSON, sorted and indented so that it diffs well in review::

    {"schema": 1, "kind": "pytest-ntk baseline",
     "run": {"time": ..., "git_commit": ..., "profile": "quick", "seed": 0},
     "claims": {"<claim id>": {"verdict": "HOLDS", "nodeid": "...", "measurement": "<name>",
                               "measured": ..., "predicted": ..., "gap": ..., "tolerance": ...,
                               "margin": ..., "ci": [lo, hi] or null}, ...}}

The numbers are those of the claim's *decisive* measurement (the most severe verdict; on ties
the smallest margin) -- the same one the terminal table shows.

**What is a change.** The gate fires (``gate_failed``) on any of:

- a verdict that differs from the baseline's (HOLDS->FAILS, FAILS->HOLDS, anything->ERROR,
  INCONCLUSIVE->anything or anything->INCONCLUSIVE, SKIPPED<->anything);
- a claim that the run reports and the baseline does not know (``new``);
- a baseline claim that the run should have reported and did not (``missing``).

Numbers that move while the verdict stays are not changes (margins drift with seeds and
versions; the history store shows them).

**Which missing claims count.** A run may be narrowed on purpose. A baseline claim absent from
the run is a ``missing`` change only when all of these hold, and otherwise it is only counted in
a note ("not run, not compared"):

1. the run is complete (not interrupted: the report's ``complete`` flag);
2. the run was not narrowed by a selection option (``-k``, ``-m``, ``--deselect``, ``--lf``,
   ``--sw``...): see :class:`Scope` ``narrowed_by``;
3. the claim's test lies under one of the paths the run was given (``pytest claims/liu2025``
   compares the claims under ``claims/liu2025`` only; ``pytest claims/`` all of them, so a claim
   whose test was deleted or renamed is reported missing).

**Updating** (``--ntk-baseline-update``) rewrites the file atomically from the run, keeping the
entries of baseline claims outside the run's scope (so updating after ``pytest claims/liu2025``
does not drop the other suites), and dropping in-scope claims the run no longer has. An
incomplete (interrupted) run never updates the baseline.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..verdicts.model import ORDER
from ..verdicts.model import decisive as _decisive
from .fmt import num
from .jsonreport import atomic_write_text

__all__ = [
    "SCHEMA",
    "KIND",
    "Scope",
    "Change",
    "Comparison",
    "BaselineError",
    "decisive",
    "key_numbers",
    "entries",
    "build",
    "load",
    "write",
    "compare",
    "updated",
]

SCHEMA = 1
KIND = "pytest-ntk baseline"
_NUMBERS = ("measured", "predicted", "gap", "tolerance", "margin")


class BaselineError(ValueError):
    """The baseline file is missing, unreadable or not a pytest-ntk baseline."""


def decisive(claim: dict) -> dict | None:
    """The measurement that decided the claim's verdict (:func:`pytest_ntk.verdicts.decisive`)."""
    return _decisive(m for m in claim.get("measurements") or [] if isinstance(m, dict))


def _round(x):
    """Six significant digits: the baseline is for reading and diffing, not for recomputation."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def key_numbers(claim: dict) -> dict[str, Any]:
    """``{"verdict", "nodeid", "measurement", measured, predicted, gap, tolerance, margin, ci}`` of a claim."""
    m = decisive(claim) or {}
    ci = m.get("ci")
    rivals = {r["name"]: r.get("verdict") for mm in claim.get("measurements") or [] for r in mm.get("rivals") or []}
    out = {
        "verdict": claim.get("verdict"),
        "nodeid": claim.get("nodeid", ""),
        "measurement": m.get("name"),
        **{k: _round(m.get(k)) for k in _NUMBERS},
        "ci": [_round(v) for v in ci] if ci else None,
    }
    if rivals:
        out["rivals"] = dict(sorted(rivals.items()))
    return out


def entries(report: dict) -> dict[str, dict]:
    """Claim id -> key numbers, for every claim in a JSON report.

    Two claims with one id would share one entry and the gate could not see one of them change:
    that is a :class:`BaselineError` naming both node ids (the claims themselves are ERROR already).
    """
    out: dict[str, dict] = {}
    for c in report.get("claims", []):
        cid = c["id"]
        if cid in out:
            raise BaselineError(f"claim id {cid!r} is reported by two tests ({out[cid]['nodeid']} and "
                                f"{c.get('nodeid', '')}); one baseline entry cannot stand for both")
        out[cid] = key_numbers(c)
    return out


def _run_summary(report: dict) -> dict:
    run = report.get("run") or {}
    profile = run.get("profile")
    return {
        "time": run.get("time"),
        "git_commit": run.get("git_commit"),
        "profile": profile.get("name") if isinstance(profile, dict) else profile,
        "seed": run.get("seed"),
    }


def build(report: dict, claims: dict[str, dict] | None = None) -> dict:
    """A baseline document from a run (or from the given claim entries, with the run's info)."""
    return {
        "schema": SCHEMA,
        "kind": KIND,
        "run": _run_summary(report),
        "claims": dict(sorted((claims if claims is not None else entries(report)).items())),
    }


def load(path) -> dict:
    """Read a baseline file; :class:`BaselineError` naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"baseline {path} does not exist; create it with --ntk-baseline-update")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaselineError(f"baseline {path} could not be read: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("claims"), dict):
        raise BaselineError(f"baseline {path} is not a pytest-ntk baseline of schema {SCHEMA}")
    run = data.get("run", {})
    if run is not None and not isinstance(run, dict):
        raise BaselineError(f"baseline {path}: 'run' must be an object, got {type(run).__name__}")
    for cid, entry in data["claims"].items():
        if not isinstance(entry, dict) or "verdict" not in entry:
            raise BaselineError(f"baseline {path}: claim {cid!r} has no verdict")
        if entry["verdict"] not in ORDER:
            raise BaselineError(f"baseline {path}: claim {cid!r} has verdict {entry['verdict']!r}; "
                                f"expected one of {list(ORDER)}")
        for key, kinds in (("nodeid", (str,)), ("measurement", (str, type(None)))):
            if key in entry and not isinstance(entry[key], kinds):
                raise BaselineError(f"baseline {path}: claim {cid!r} has {key} {entry[key]!r}; expected a string")
        for key in _NUMBERS:
            v = entry.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise BaselineError(f"baseline {path}: claim {cid!r} has {key} {v!r}; expected a number or null")
        ci = entry.get("ci")
        if ci is not None and not (isinstance(ci, list) and len(ci) == 2
                                   and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                           for v in ci)):
            raise BaselineError(f"baseline {path}: claim {cid!r} has ci {ci!r}; expected [lo, hi] or null")
        rivals = entry.get("rivals")
        if rivals is not None and not (isinstance(rivals, dict) and all(isinstance(v, str) for v in rivals.values())):
            raise BaselineError(f"baseline {path}: claim {cid!r} has rivals {rivals!r}; expected {{name: verdict}}")
    return data


def write(path, baseline: dict) -> None:
    """Write a baseline document atomically (temporary file, fsync, rename)."""
    atomic_write_text(path, json.dumps(baseline, indent=2, sort_keys=True, allow_nan=False) + "\n")


# ---------------------------------------------------------------------------- scope
@dataclass(frozen=True)
class Scope:
    """Which baseline claims a run was meant to report (see the module docstring).

    ``paths``: node-id prefixes relative to the rootdir (``claims/liu2025``,
    ``claims/x.py::test_a``); ``None`` means the whole project. ``narrowed_by``: the selection
    options that make an absent claim unknowable (then no claim is reported missing).
    """

    paths: tuple[str, ...] | None = None
    narrowed_by: tuple[str, ...] = ()

    def covers(self, nodeid: str) -> bool:
        """Whether the run was meant to run the test ``nodeid``."""
        if self.narrowed_by:
            return False
        if self.paths is None:
            return True
        for p in self.paths:
            p = p.rstrip("/")
            if p in ("", "."):
                return True
            if nodeid == p or nodeid.startswith((p + "/", p + "::", p + "[")):
                return True
        return False

    def to_dict(self) -> dict:
        return {"paths": list(self.paths) if self.paths is not None else None, "narrowed_by": list(self.narrowed_by)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Scope":
        if not d:
            return cls()
        paths = d.get("paths")
        return cls(tuple(paths) if paths is not None else None, tuple(d.get("narrowed_by") or ()))


# ---------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Change:
    """One claim whose verdict differs between the baseline and the run."""

    claim_id: str
    kind: str  # "changed" | "error" | "new" | "missing"
    baseline: dict | None
    current: dict | None

    @property
    def transition(self) -> str:
        before = self.baseline["verdict"] if self.baseline else "(new)"
        after = self.current["verdict"] if self.current else "(missing)"
        return f"{before} -> {after}"

    def describe(self) -> str:
        """One line naming the claim, the transition and both runs' numbers."""
        return f"{self.transition}  {self.claim_id}: baseline {_numbers(self.baseline)}; this run {_numbers(self.current)}"


def _numbers(entry: dict | None) -> str:
    if entry is None:
        return "no such claim"
    parts = [entry.get("verdict", "?")]
    if entry.get("measurement"):
        parts.append(f"[{entry['measurement']}]")
    for key in _NUMBERS:
        if entry.get(key) is not None:
            parts.append(f"{key} {num(entry[key])}")
    ci = entry.get("ci")
    if ci and len(ci) == 2:
        lo, hi = ci
        parts.append(f"CI [{num(lo) if lo is not None else '-inf'}, {num(hi) if hi is not None else 'inf'}]")
    return " ".join(parts)


@dataclass
class Comparison:
    """The outcome of :func:`compare`: the changes, and the baseline claims left out of scope."""

    changes: list[Change] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def gate_failed(self) -> bool:
        return bool(self.changes)

    def notes(self, path: str = "baseline") -> list[str]:
        """Terminal lines: a headline, then every change with both runs' numbers."""
        lines = list(self.warnings)
        if self.changes:
            lines.append(f"pytest-ntk baseline gate FAILED ({path}): {len(self.changes)} verdict change"
                         f"{'s' if len(self.changes) != 1 else ''} ({self.unchanged} unchanged)")
            lines += [f"  {c.describe()}" for c in self.changes]
            lines.append("  review the changes; if they are intended, rerun with --ntk-baseline-update "
                         "and commit the baseline")
        else:
            lines.append(f"pytest-ntk baseline gate passed ({path}): {self.unchanged} claim verdicts as in the baseline")
        if self.not_compared:
            lines.append(f"  {len(self.not_compared)} baseline claim(s) not run here, not compared "
                         f"(outside this run's paths or selection)")
        return lines


def compare(baseline: dict, report: dict, scope: Scope | None = None) -> Comparison:
    """Compare a run (a JSON report dict) with a baseline document; see the module docstring."""
    scope = scope or Scope()
    before: dict[str, dict] = baseline.get("claims", {})
    try:
        after = entries(report)
    except BaselineError as exc:
        out = Comparison()
        out.changes.append(Change("(duplicate claim id)", "error", None, {"verdict": "ERROR", "measurement": str(exc)}))
        return out
    out = Comparison()
    base_profile = (baseline.get("run") or {}).get("profile")
    run_profile = _run_summary(report)["profile"]
    if base_profile and run_profile and base_profile != run_profile:
        out.warnings.append(f"pytest-ntk baseline: recorded at profile {base_profile!r}, this run is "
                            f"profile {run_profile!r}; verdicts may differ for that reason")
    complete = bool(report.get("complete", True))
    for cid in sorted(set(before) | set(after)):
        b, a = before.get(cid), after.get(cid)
        if b is None:
            out.changes.append(Change(cid, "new", None, a))
        elif a is None:
            if complete and scope.covers(b.get("nodeid", "")):
                out.changes.append(Change(cid, "missing", b, None))
            else:
                out.not_compared.append(cid)
        elif a["verdict"] != b["verdict"]:
            out.changes.append(Change(cid, "error" if a["verdict"] == "ERROR" else "changed", b, a))
        else:
            out.unchanged += 1
    return out


def updated(baseline: dict | None, report: dict, scope: Scope | None = None) -> dict:
    """The baseline rewritten from ``report``: in-scope entries replaced, out-of-scope ones kept.

    ValueError when the run is incomplete (an interrupted run never becomes the baseline).
    """
    if not report.get("complete", True):
        raise ValueError("the run is incomplete (interrupted): the baseline is not updated from it")
    scope = scope or Scope()
    kept = {cid: e for cid, e in ((baseline or {}).get("claims") or {}).items()
            if not scope.covers(e.get("nodeid", ""))}
    kept.update(entries(report))
    return build(report, kept)


def changes_by_id(changes: Iterable[Change]) -> dict[str, Change]:
    return {c.claim_id: c for c in changes}
