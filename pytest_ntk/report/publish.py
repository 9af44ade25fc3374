"""After a run: append to the history, apply the baseline gate, write the HTML and Markdown reports.

:func:`run` is called once per pytest run by the controller (never by an xdist worker) with the
run's JSON report dict and the :class:`Options` the harness read from the ``--ntk-*`` options
(:mod:`pytest_ntk.harness.options`: this module never sees pytest's config); it returns
terminal notes and whether the gate failed (the harness turns that into a non-zero exit status).
``python -m pytest_ntk report`` calls it with options from its own command line.

Order: the history first (so the HTML's history includes this run), then the baseline (so
both reports show its changes), then the HTML and the Markdown. A report that cannot be written,
a missing or corrupt baseline, or a history that cannot be locked is never silent: it becomes
a note and fails the gate. ``$GITHUB_STEP_SUMMARY`` gets the Markdown summary whenever it is set
and the run has claims.

Which baseline claims count as missing from a narrowed run (``-k``, a subset of paths) is
decided by :class:`~pytest_ntk.report.baseline.Scope`; see :mod:`pytest_ntk.report.baseline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import baseline as _baseline
from . import history as _history
from . import html as _html
from . import markdown as _markdown

__all__ = ["PublishOutcome", "Options", "run"]


@dataclass
class PublishOutcome:
    notes: list[str] = field(default_factory=list)
    gate_failed: bool = False


@dataclass
class Options:
    """What to publish. Paths may be ``None`` (that report is not written)."""

    html: str | None = None
    markdown: str | None = None
    history: str | None = None
    append_history: bool = True
    baseline: str | None = None
    baseline_update: bool = False
    scope: _baseline.Scope = field(default_factory=_baseline.Scope)
    step_summary: str | None = None
    extra_history: list[dict] = field(default_factory=list)
    history_runs: int = 20


def run(report: dict, options: Options) -> PublishOutcome:
    """Publish one run's report (a JSON report dict) as ``options`` say."""
    out = PublishOutcome()
    records = None
    if options.history:
        try:
            if options.append_history:
                _history.append(options.history, _history.record(report))
            records = _history.read(options.history)
        except Exception as exc:  # noqa: BLE001 - a broken store is reported, not raised into pytest
            out.notes.append(f"pytest-ntk: could not update the history in {options.history}: "
                             f"{type(exc).__name__}: {exc}")
            out.gate_failed = True
    if options.extra_history:
        records = _history.merge(records or [], options.extra_history)

    changes = None
    if options.baseline:
        if options.baseline_update:
            try:
                old = _baseline.load(options.baseline) if Path(options.baseline).is_file() else None
            except _baseline.BaselineError:
                old = None  # rewriting a corrupt baseline is what --ntk-baseline-update is for
            try:
                new = _baseline.updated(old, report, options.scope)
                _baseline.write(options.baseline, new)
                out.notes.append(f"pytest-ntk: baseline {options.baseline} updated: {len(new['claims'])} claims "
                                 f"({len(report.get('claims', []))} from this run)")
            except (ValueError, OSError) as exc:
                out.notes.append(f"pytest-ntk: baseline {options.baseline} NOT updated: {exc}")
                out.gate_failed = True
        else:
            try:
                comparison = _baseline.compare(_baseline.load(options.baseline), report, options.scope)
            except _baseline.BaselineError as exc:
                out.notes.append(f"pytest-ntk baseline gate FAILED: {exc}")
                out.gate_failed = True
            else:
                changes = comparison.changes
                out.notes += comparison.notes(str(options.baseline))
                out.gate_failed |= comparison.gate_failed

    def attempt(what: str, path, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - report and fail, never crash the session's end
            out.notes.append(f"pytest-ntk: could not write the {what} to {path}: {type(exc).__name__}: {exc}")
            out.gate_failed = True
        else:
            out.notes.append(f"pytest-ntk: {what} written to {Path(path).resolve()}")

    if options.html:
        attempt("HTML report", options.html,
                lambda: _html.write(options.html, report, history=records, changes=changes,
                                    baseline_path=options.baseline if not options.baseline_update else None,
                                    history_runs=options.history_runs))
    if options.markdown:
        attempt("Markdown summary", options.markdown,
                lambda: _markdown.write(options.markdown, report, changes=changes))
    if options.step_summary and report.get("claims"):
        try:
            _markdown.append_step_summary(report, changes=changes, env={"GITHUB_STEP_SUMMARY": options.step_summary})
        except OSError as exc:
            out.notes.append(f"pytest-ntk: could not append to $GITHUB_STEP_SUMMARY ({options.step_summary}): {exc}")
            out.gate_failed = True
    return out
