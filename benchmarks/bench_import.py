"""What the plugin adds to every pytest start: ``import pytest`` against ``import pytest; import pytest_ntk.plugin``.

Run: ``uv run pytest benchmarks/bench_import.py``. Once installed, pytest loads ``pytest11`` plugins
in every run of every project, so the plugin's import must stay cheap (goal: within 0.3 s of
pytest's own import). The table's two rows time a whole child interpreter doing each import. The
goal is judged on a separate, interleaved measurement: each round starts both children,
alternating which goes first, and each times only its imports (``time.perf_counter`` around them),
so interpreter start-up and the machine's load shifts affect both sides alike; ``extra_info`` holds
those medians and their difference.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

ROUNDS = 15
TIMER = ("import time; t0 = time.perf_counter(); {code}; t1 = time.perf_counter(); print(t1 - t0)")
CODES = {"pytest": "import pytest", "pytest + pytest_ntk.plugin": "import pytest; import pytest_ntk.plugin"}


def _child(code: str) -> float:
    """Seconds the child spent in ``code``'s imports (measured inside the child)."""
    out = subprocess.run([sys.executable, "-c", TIMER.format(code=code)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def _process(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def timings() -> dict[str, list[float]]:
    got: dict[str, list[float]] = {k: [] for k in CODES}
    for r in range(ROUNDS):
        order = list(CODES) if r % 2 == 0 else list(reversed(CODES))
        for name in order:
            got[name].append(_child(CODES[name]))
    return got


@pytest.mark.parametrize("name", list(CODES))
def test_import_time(benchmark, timings, name):
    benchmark.group = "a fresh interpreter importing pytest, with and without the plugin"
    benchmark.pedantic(_process, args=(CODES[name],), rounds=5, iterations=1)
    base, plugin = (statistics.median(timings[k]) for k in CODES)
    benchmark.extra_info.update({"median_s": statistics.median(timings[name]), "pytest_median_s": base,
                                 "plugin_extra_s": plugin - base, "goal_extra_s": 0.3})
    if name != "pytest":
        print(f"\nimport pytest: {base:.3f} s; + pytest_ntk.plugin: {plugin:.3f} s (extra {plugin - base:.3f} s)")
        assert plugin - base < 0.3, f"the plugin adds {plugin - base:.3f} s to pytest's start-up (goal < 0.3 s)"
