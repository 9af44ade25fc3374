"""Statistical reliability of an audit: does any claim flip between HOLDS and FAILS across base seeds?

A claim that samples seeds is only trustworthy if its verdict does not depend on which seeds it
drew: rerunning with other base seeds may move it between HOLDS and INCONCLUSIVE, or between
FAILS and INCONCLUSIVE (the interval touches the tolerance), but a flip HOLDS <-> FAILS means the
claim is underpowered and its verdict an accident of the seed. Usage::

    uv run python -m pytest_ntk.seedcheck claims/ --seeds 10 [--out seedcheck.json] [-- PYTEST ARGS]

runs ``pytest PATHS --ntk-seed s --ntk-audit --ntk-json ...`` for s = 0 .. seeds-1 (one pytest
process after another; pass ``-- -n 2`` to give each run xdist workers), then prints one line per
claim with its verdicts over the seeds and exits 1 when any claim flipped HOLDS <-> FAILS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

__all__ = ["flips", "summarize", "main"]


def summarize(runs: dict[int, dict]) -> dict[str, dict[int, str]]:
    """``{claim id: {seed: verdict}}`` from ``{seed: JSON report}``."""
    table: dict[str, dict[int, str]] = {}
    for seed, report in sorted(runs.items()):
        for c in report["claims"]:
            table.setdefault(c["id"], {})[seed] = c["verdict"]
    return table


def flips(table: dict[str, dict[int, str]]) -> list[str]:
    """Claims whose verdicts include both HOLDS and FAILS."""
    return sorted(cid for cid, by_seed in table.items() if {"HOLDS", "FAILS"} <= set(by_seed.values()))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(prog="python -m pytest_ntk.seedcheck", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="claim files or folders")
    parser.add_argument("--seeds", type=int, default=10, help="number of base seeds, 0 .. N-1 (default 10)")
    parser.add_argument("--out", default=None, help="write {claim: {seed: verdict}} and the flips to this JSON file")
    args = parser.parse_args(argv)

    runs: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ntk-seedcheck-") as tmp:
        for seed in range(args.seeds):
            path = Path(tmp) / f"seed{seed}.json"
            cmd = [sys.executable, "-m", "pytest", *args.paths, "-q", "--ntk-audit", f"--ntk-seed={seed}",
                   f"--ntk-json={path}", "-p", "no:cacheprovider", *extra]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if not path.exists():
                sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
                print(f"seed {seed}: pytest wrote no report (exit {proc.returncode})", file=sys.stderr)
                return 2
            runs[seed] = json.loads(path.read_text())
            counts = Counter(c["verdict"] for c in runs[seed]["claims"])
            print(f"seed {seed}: {dict(sorted(counts.items()))} in {time.perf_counter() - start:.0f}s", flush=True)

    table = summarize(runs)
    flipped = flips(table)
    width = max(len(c) for c in table) if table else 10
    for cid, by_seed in sorted(table.items()):
        counts = Counter(by_seed.values())
        mark = "  FLIPS HOLDS<->FAILS" if cid in flipped else ""
        print(f"{cid.ljust(width)}  " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + mark)
    print(f"{len(table)} claims over {args.seeds} base seeds: {len(flipped)} flip HOLDS <-> FAILS")
    if args.out:
        Path(args.out).write_text(json.dumps({"seeds": args.seeds, "verdicts": table, "flips": flipped}, indent=2))
    return 1 if flipped else 0


if __name__ == "__main__":
    raise SystemExit(main())
