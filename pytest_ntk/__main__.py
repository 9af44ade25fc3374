"""``python -m pytest_ntk`` (also the ``pytest-ntk`` console script): reports from saved runs.

    python -m pytest_ntk report RUN.json [MORE.json ...] [--html PATH] [--markdown PATH]
                                [--history DIR] [--baseline FILE]

Renders the same reports a pytest run writes, from JSON reports saved with ``--ntk-json``,
without rerunning anything. The newest run (by its recorded time; the last given on a tie) is
the one shown; every given run, and the records of ``--history DIR`` (read, never written),
make up the per-claim history. ``--baseline FILE`` compares the shown run with a baseline and
exits 1 when a verdict changed; which absent claims count as missing follows the run's recorded
``run.selection`` (``{"paths": [...], "narrowed_by": [...]}``, see ``report.baseline.Scope``) and,
where a run has none, every baseline claim is in scope when the run was complete. With neither ``--html`` nor ``--markdown`` the Markdown summary goes to stdout.

Exit status: 0; 1 when the baseline gate fails or a report cannot be written; 2 on bad usage
or an unreadable run file.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pytest-ntk", description="pytest-ntk: reports from saved JSON runs.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="render HTML/Markdown reports from saved --ntk-json runs",
                       description="Render reports from JSON runs saved with --ntk-json. The newest run is shown; "
                                   "all given runs (and --history) form the per-claim history.")
    r.add_argument("runs", nargs="+", metavar="RUN.json", help="JSON reports written by --ntk-json")
    r.add_argument("--html", metavar="PATH", help="write the self-contained HTML report to PATH")
    r.add_argument("--markdown", metavar="PATH", help="write the Markdown summary to PATH")
    r.add_argument("--history", metavar="DIR", help="read the history store in DIR (it is not modified)")
    r.add_argument("--baseline", metavar="FILE", help="compare the shown run with a baseline; exit 1 on a change")
    r.add_argument("--history-runs", type=int, default=20, metavar="N",
                   help="how many past runs the per-claim history shows (default 20)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .report import baseline, history, jsonreport, markdown, publish

    reports = []
    for i, path in enumerate(args.runs):
        try:
            data = jsonreport.read(path)
        except (OSError, ValueError) as exc:
            print(f"pytest-ntk report: cannot read {path}: {exc}", file=sys.stderr)
            return 2
        reports.append((str((data.get("run") or {}).get("time") or ""), i, data))
    if args.history_runs < 1:
        print(f"pytest-ntk report: --history-runs must be >= 1, got {args.history_runs}", file=sys.stderr)
        return 2
    reports.sort(key=lambda t: (t[0], t[1]))
    shown = reports[-1][2]
    extra = [history.record(r) for _, _, r in reports] if (len(reports) > 1 or args.history) else []
    options = publish.Options(html=args.html, markdown=args.markdown, history=args.history, append_history=False,
                              baseline=args.baseline, extra_history=extra, history_runs=args.history_runs,
                              scope=baseline.Scope.from_dict((shown.get("run") or {}).get("selection")))
    outcome = publish.run(shown, options)
    if not args.html and not args.markdown:
        sys.stdout.write(markdown.render(shown))
    for line in outcome.notes:
        print(line, file=sys.stderr if outcome.gate_failed else sys.stdout)
    return 1 if outcome.gate_failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
