"""Statistical reliability: rerun claims under several base seeds and look for verdicts that flip.

A claim's seeds derive from the run's base seed (``--ntk-seed``). If a claim judges a sampled
quantity by an honest confidence interval, changing the base seed may move it between HOLDS and
INCONCLUSIVE (or FAILS and INCONCLUSIVE) but, short of the interval's own miss rate, never between
HOLDS and FAILS: a claim that does flip is overconfident (a point estimate judged without its
spread, or an interval that is too narrow), and should come out INCONCLUSIVE instead.

    python -m pytest_ntk.reliability claims/ --seeds 10 [--first-seed 0] [--json OUT] [-- PYTEST ARGS]

runs ``python -m pytest PATHS --ntk-seed s --ntk-json ...`` once per base seed ``s`` (arguments
after ``--`` go to every pytest run, e.g. ``-n 4`` or ``--ntk-profile quick``), prints one line per
claim with its verdict counts, and exits 1 when any claim flips between HOLDS and FAILS (2 when
a run wrote no report). :func:`sweep` does the runs, :func:`analyse` the pure bookkeeping.

With ``c = 0.95`` intervals a flip needs one of two runs' intervals to miss, so over ``k`` seeds
an honest claim flips with probability at most about ``k * (1 - c)``; the check is a screen for
grossly overconfident claims, and a flagged claim is worth rerunning with more seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["ClaimStability", "SweepResult", "analyse", "sweep", "main"]

_DECISIVE = ("HOLDS", "FAILS")


@dataclass(frozen=True)
class ClaimStability:
    """One claim's verdicts over the base seeds of a sweep.

    ``verdicts`` maps base seed -> verdict (absent when the claim did not run under that seed).
    ``flips``: it HOLDS under one base seed and FAILS under another. ``seed_dependent``: its
    measured values differ between base seeds (a claim whose measurements ignore the seed cannot
    flip, and the check says nothing about it).
    """

    id: str
    verdicts: dict[int, str]
    seed_dependent: bool

    @property
    def counts(self) -> Counter:
        return Counter(self.verdicts.values())

    @property
    def flips(self) -> bool:
        return all(v in self.verdicts.values() for v in _DECISIVE)

    @property
    def errors(self) -> bool:
        return "ERROR" in self.verdicts.values()


@dataclass
class SweepResult:
    """What a sweep found: per-claim stability, in claim-id order, and runs that wrote no report."""

    seeds: list[int]
    claims: list[ClaimStability]
    broken_runs: dict[int, str] = field(default_factory=dict)  # base seed -> why no report

    @property
    def flipped(self) -> list[ClaimStability]:
        return [c for c in self.claims if c.flips]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "flipped": [c.id for c in self.flipped],
            "broken_runs": {str(k): v for k, v in self.broken_runs.items()},
            "claims": [
                {"id": c.id, "verdicts": {str(s): v for s, v in c.verdicts.items()}, "flips": c.flips,
                 "seed_dependent": c.seed_dependent, "counts": dict(c.counts)}
                for c in self.claims
            ],
        }

    def lines(self) -> list[str]:
        """A plain-text summary: one line per claim, flips marked, then a verdict."""
        out = [f"pytest-ntk reliability: {len(self.claims)} claims over base seeds {self.seeds}"]
        width = max([len(c.id) for c in self.claims] + [5])
        for c in self.claims:
            counts = ", ".join(f"{n} {v}" for v, n in sorted(c.counts.items()))
            mark = "FLIPS HOLDS<->FAILS" if c.flips else ("seed-independent" if not c.seed_dependent else "stable")
            out.append(f"  {c.id:<{width}}  {mark:<20} {counts}")
        for seed, why in sorted(self.broken_runs.items()):
            out.append(f"  run with --ntk-seed {seed} wrote no report: {why}")
        flipped = self.flipped
        if flipped:
            out.append(f"{len(flipped)} claim(s) flip between HOLDS and FAILS: {', '.join(c.id for c in flipped)}")
        else:
            out.append("no claim flips between HOLDS and FAILS")
        return out


def _measured(claim: dict) -> tuple:
    return tuple((m.get("name"), m.get("measured"), tuple(m.get("ci") or ())) for m in claim.get("measurements", []))


def analyse(reports: dict[int, dict]) -> list[ClaimStability]:
    """Per-claim stability from ``{base seed: JSON report (as written by --ntk-json)}``."""
    verdicts: dict[str, dict[int, str]] = {}
    measured: dict[str, set] = {}
    for seed in sorted(reports):
        for claim in reports[seed].get("claims", []):
            cid = claim["id"]
            verdicts.setdefault(cid, {})[seed] = claim["verdict"]
            measured.setdefault(cid, set()).add(_measured(claim))
    return [ClaimStability(cid, verdicts[cid], len(measured[cid]) > 1) for cid in sorted(verdicts)]


def _run_pytest(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)


def sweep(
    paths: Sequence[str],
    seeds: Sequence[int],
    *,
    pytest_args: Sequence[str] = (),
    cwd=None,
    run: Callable[[list[str], Any], subprocess.CompletedProcess] = _run_pytest,
) -> SweepResult:
    """Run the claims in ``paths`` once per base seed in ``seeds`` and analyse the verdicts.

    Each run is ``python -m pytest PATHS --ntk-seed SEED --ntk-json TMP -p no:cacheprovider
    PYTEST_ARGS``; a run whose JSON report is missing or unreadable is listed in
    ``broken_runs`` with the tail of its output (a run that FAILS claims is not broken).
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be at least two distinct integers, got {seeds!r}")
    reports: dict[int, dict] = {}
    broken: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="ntk-reliability-") as tmp:
        for seed in seeds:
            out = Path(tmp) / f"seed-{seed}.json"
            proc = run([*paths, "--ntk-seed", str(seed), f"--ntk-json={out}", "-p", "no:cacheprovider",
                        *pytest_args], cwd)
            try:
                reports[seed] = json.loads(out.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                tail = ((proc.stdout or "") + (proc.stderr or ""))[-800:]
                broken[seed] = f"{type(exc).__name__}: {exc} (exit status {proc.returncode}); output ends: {tail}"
    return SweepResult(seeds=seeds, claims=analyse(reports), broken_runs=broken)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(
        prog="python -m pytest_ntk.reliability",
        description="Rerun claims under several base seeds; exit 1 if any flips between HOLDS and FAILS. "
                    "Arguments after -- go to every pytest run.")
    p.add_argument("paths", nargs="+", help="claim files or folders, as given to pytest")
    p.add_argument("--seeds", type=int, default=10, help="how many base seeds (default 10)")
    p.add_argument("--first-seed", type=int, default=0, help="the first base seed (default 0)")
    p.add_argument("--json", metavar="PATH", help="also write the sweep's result as JSON to PATH")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error(f"--seeds must be >= 2, got {args.seeds}")
    result = sweep(args.paths, range(args.first_seed, args.first_seed + args.seeds), pytest_args=extra)
    for line in result.lines():
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    if result.broken_runs:
        return 2
    return 1 if result.flipped else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
