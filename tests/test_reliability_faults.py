"""Faults through the pytest layer: each surfaces as a verdict that says what broke, and no result is lost.

Numerical faults (in one in-process pytest session): training far above the critical learning
rate diverges -> ERROR naming step, learning rate and seed; a singular kernel matrix -> ERROR
stating the condition number, and the documented ``ridge=`` option solves it; a float32 value
that overflowed to inf -> ERROR.

Environment faults (each in a real pytest subprocess): neural-tangents absent -> the claims that
need it SKIP with the reason, the rest run; Ctrl-C (a real SIGINT) during a slow claim -> the
JSON report holds the finished claims and ``"complete": false``; an xdist worker killed mid-claim
-> that claim ERROR, every other claim reported with its verdict.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

# imported here, before pytester's in-process session snapshots sys.modules: a C extension that
# session imported first (numpy.fft under scipy.linalg) could not be loaded a second time after it
import jax.numpy  # noqa: F401
import pytest_ntk.science.nets  # noqa: F401
import pytest_ntk.science.predict  # noqa: F401
import pytest_ntk.science.train  # noqa: F401
from pytest_ntk.science.errors import IllConditionedKernel, IllConditionedKernelWarning
from pytest_ntk.science.predict import condition_number, kernel_regression

pytest_plugins = ["pytester"]


def claims_by_id(path) -> dict:
    report = json.loads(path.read_text())
    return {c["id"]: c for c in report["claims"]}


def pytest_subprocess(pytester, *args: str) -> subprocess.Popen:
    """A real ``python -m pytest`` in the pytester folder (its own process, signals and all)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark",
         *args],
        cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # a suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and Python then
        # never installs its KeyboardInterrupt handler: give the child the default disposition
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the pytest subprocess did not finish in {timeout}s:\n{out[-3000:]}")
    return out


# ---------------------------------------------------------------------------- numerical faults
NUMERICAL_FAULTS = '''
import jax.numpy as jnp
import numpy as np
import pytest

from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.predict import kernel_regression
from pytest_ntk.science.train import train

X = np.linspace(-1.0, 1.0, 8).reshape(4, 2)
Y = np.sin(3.0 * X[:, 0])
V = np.array([1.0, 2.0, 3.0, 4.0])
SINGULAR = np.outer(V, V)  # rank one: four points, one direction


@pytest.mark.claim("faults.diverges", source="test", statement="a learning rate far above 2n/lambda_max diverges")
def test_diverges(claim):
    result = train(FullyConnected(depth=1, width=16), X, Y, seeds=[claim.seed], steps=40, lr=1e4)
    claim.at_most(float(result.final_loss[0]), 1.0)


@pytest.mark.claim("faults.singular_kernel", source="test", statement="kernel regression on a singular kernel")
def test_singular_kernel(claim):
    claim.close(kernel_regression(SINGULAR, Y, SINGULAR[:2]), Y[:2])


@pytest.mark.claim("faults.singular_kernel_ridge", source="test", statement="ridge regularises a singular kernel")
def test_singular_kernel_with_ridge(claim):
    ridge = 1e-3
    predicted = kernel_regression(SINGULAR, Y, SINGULAR[:2], ridge=ridge)
    by_hand = SINGULAR[:2] @ np.linalg.solve(SINGULAR + ridge * np.eye(4), Y)  # normal equations, LU
    claim.close(predicted, by_hand, rtol=1e-8, atol=1e-10)


@pytest.mark.claim("faults.float32_overflow", source="test", statement="a float32 overflow is no measurement")
def test_float32_overflow(claim):
    big = jnp.float32(3e38) * jnp.float32(10.0)  # JAX overflows to inf without a warning
    claim.close(big, 3e39, rtol=1.0)
'''


def test_numerical_faults_are_errors_that_say_what_broke(pytester):
    pytester.makepyfile(test_numerical=NUMERICAL_FAULTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--ntk-json=report.json")
    assert "INTERNALERROR" not in result.stdout.str()
    result.assert_outcomes(passed=1, failed=3)
    claims = claims_by_id(pytester.path / "report.json")
    assert {k: c["verdict"] for k, c in claims.items()} == {
        "faults.diverges": "ERROR",
        "faults.singular_kernel": "ERROR",
        "faults.singular_kernel_ridge": "HOLDS",
        "faults.float32_overflow": "ERROR",
    }

    diverged = claims["faults.diverges"]
    msg = diverged["message"]
    assert msg.startswith("TrainingDiverged: training diverged"), msg
    step = int(re.search(r"at step (\d+)", msg).group(1))
    assert 0 <= step < 40, msg  # the step where the loss stopped being finite, within the run
    assert "learning rate 10000" in msg, msg
    assert f"seed {diverged['seed']}" in msg, msg  # the claim's own seed, as derived from --ntk-seed
    assert diverged["measurements"] == []  # nothing was measured from a diverged run

    singular = claims["faults.singular_kernel"]["message"]
    assert singular.startswith("IllConditionedKernel"), singular
    # a rank-one matrix: its zero eigenvalues are rounding noise of either sign, reported as inf
    assert "condition number inf" in singular and "ridge=" in singular, singular

    overflow = claims["faults.float32_overflow"]["message"]
    assert "'faults.float32_overflow'" in overflow and "measured is not finite (inf)" in overflow, overflow


def _kernel_with_condition(cond: float) -> np.ndarray:
    """A symmetric positive definite 4x4 matrix with eigenvalues 1, 0.5, 0.25 and 1/cond."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    return (q * np.array([1.0, 0.5, 0.25, 1.0 / cond])) @ q.T


def test_ill_conditioned_kernel_warns_with_its_condition_number_and_ridge_quiets_it():
    k = _kernel_with_condition(1e10)
    y = np.arange(4.0)
    want = float(np.linalg.cond(k))  # SVD-based, independent of the library's eigvalsh
    with pytest.warns(IllConditionedKernelWarning) as caught:
        kernel_regression(k, y, k[:1])
    stated = float(re.search(r"condition number ([0-9.e+]+)", str(caught[0].message)).group(1))
    assert stated == pytest.approx(want, rel=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kernel_regression(k, y, k[:1], ridge=1e-4)  # cond ~ 1e4: no warning
    k14 = _kernel_with_condition(1e14)
    with pytest.raises(IllConditionedKernel) as info:
        kernel_regression(k14, y, k[:1])
    # building k14 and its eigensolve move an eigenvalue of 1e-14 by ~1e-16, about 1% (CPU dependent):
    # the error must carry the library's own estimate, and that estimate must be of the right size
    assert info.value.condition_number == condition_number(k14)
    assert info.value.condition_number == pytest.approx(1e14, rel=0.1)


# ---------------------------------------------------------------------------- neural-tangents absent
BLOCK_NEURAL_TANGENTS = '''
import importlib.abc
import sys


class _NoNeuralTangents(importlib.abc.MetaPathFinder):
    """Make this session behave as if neural-tangents were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "neural_tangents" or name.startswith("neural_tangents."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoNeuralTangents())
for name in [m for m in sys.modules if m == "neural_tangents" or m.startswith("neural_tangents.")]:
    del sys.modules[name]
'''

ORACLE_CLAIMS = '''
import pytest

from pytest_ntk.science import oracle

# the documented pattern: a claim that needs the oracle says so, and SKIPs with the reason without it
needs_oracle = pytest.mark.skipif(not oracle.available(), reason=oracle.reason())


@needs_oracle
@pytest.mark.claim("env.oracle_kernel", source="test", statement="our kernel matches neural-tangents")
def test_oracle_kernel(claim):
    nt = oracle.load()
    claim.close(1.0, 1.0)


@pytest.mark.claim("env.no_oracle_needed", source="test", statement="runs without neural-tangents")
def test_no_oracle_needed(claim):
    claim.close(2.0, 2.0)


@pytest.mark.claim("env.unguarded_oracle", source="test", statement="forgot the marker")
def test_unguarded_oracle(claim):
    nt = oracle.load()
    claim.close(1.0, 1.0)


def test_oracle_really_absent():
    assert not oracle.available() and "neural-tangents unavailable" in oracle.reason()
'''


def test_neural_tangents_absent_skips_the_claims_that_need_it(pytester):
    pytester.makeconftest(BLOCK_NEURAL_TANGENTS)
    pytester.makepyfile(test_oracle_claims=ORACLE_CLAIMS)
    out = finish(pytest_subprocess(pytester, "-rs", "--ntk-json=report.json"))
    assert "INTERNALERROR" not in out, out
    claims = claims_by_id(pytester.path / "report.json")
    skipped = claims["env.oracle_kernel"]
    assert skipped["verdict"] == "SKIPPED", skipped
    assert "neural-tangents unavailable" in skipped["message"] and "No module named" in skipped["message"]
    assert claims["env.no_oracle_needed"]["verdict"] == "HOLDS"
    # without the marker the claim cannot pass silently: oracle.load() raises OracleUnavailable,
    # which the plugin reports as SKIPPED with the same reason
    unguarded = claims["env.unguarded_oracle"]
    assert unguarded["verdict"] == "SKIPPED" and "neural-tangents unavailable" in unguarded["message"]
    assert "2 passed" in out and "neural-tangents unavailable" in out  # -rs shows the reason


# ---------------------------------------------------------------------------- Ctrl-C
INTERRUPTED_CLAIMS = '''
import pathlib
import time

import pytest


@pytest.mark.claim("interrupt.first", source="test", statement="finishes before the interrupt")
def test_first(claim):
    claim.close(1.0, 1.0)


@pytest.mark.claim("interrupt.slow", source="test", statement="interrupted mid-claim")
def test_slow(claim):
    pathlib.Path("slow.started").touch()
    time.sleep(60)
    claim.close(1.0, 1.0)


@pytest.mark.claim("interrupt.never", source="test", statement="never starts")
def test_never(claim):
    claim.close(1.0, 1.0)
'''


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"pytest exited before {what}:\n{proc.communicate()[0][-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}:\n{proc.communicate()[0][-3000:]}")
        time.sleep(0.05)


def test_sigint_writes_the_finished_claims_marked_incomplete(pytester):
    pytester.makepyfile(test_interrupted=INTERRUPTED_CLAIMS)
    report = pytester.path / "report.json"
    proc = pytest_subprocess(pytester, "--ntk-json=report.json")

    def first_claim_reported():
        try:
            return "interrupt.first" in claims_by_id(report)
        except (OSError, ValueError):  # not written yet (each write is atomic, so never half a file)
            return False

    _wait_for(first_claim_reported, proc, 60, "the first claim's verdict in the JSON report")
    _wait_for((pytester.path / "slow.started").exists, proc, 30, "the slow claim to start")
    proc.send_signal(signal.SIGINT)
    out = finish(proc, timeout=120)  # a liveness guard: under load the reports take a while
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    data = json.loads(report.read_text())
    assert data["complete"] is False
    claims = {c["id"]: c for c in data["claims"]}
    assert claims["interrupt.first"]["verdict"] == "HOLDS"
    assert claims["interrupt.slow"]["verdict"] == "ERROR"  # started, never finished: not a HOLDS
    assert "did not finish" in claims["interrupt.slow"]["message"]
    assert "interrupt.never" not in claims


# ---------------------------------------------------------------------------- an xdist worker dies
KILLED_WORKER_CLAIMS = '''
import os
import signal

import pytest


@pytest.mark.claim("xdist.holds_a", source="test", statement="holds")
def test_holds_a(claim):
    claim.close(1.0, 1.0)


@pytest.mark.claim("xdist.killed", source="test", statement="its worker is killed mid-claim")
def test_killed(claim):
    claim.close(1.0, 1.0)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.claim("xdist.fails", source="test", statement="fails")
def test_fails(claim):
    claim.close(2.0, 1.0)


@pytest.mark.claim("xdist.holds_b", source="test", statement="holds")
def test_holds_b(claim):
    claim.at_most(1.0, 2.0)


@pytest.mark.claim("xdist.holds_c", source="test", statement="holds")
def test_holds_c(claim):
    claim.at_least(3.0, 2.0)
'''


def test_killed_xdist_worker_is_an_error_and_the_rest_are_reported(pytester):
    pytester.makepyfile(test_killed=KILLED_WORKER_CLAIMS)
    out = finish(pytest_subprocess(pytester, "-n", "2", "--ntk-json=report.json"), timeout=90)
    assert "INTERNALERROR" not in out, out
    data = json.loads((pytester.path / "report.json").read_text())
    claims = {c["id"]: c for c in data["claims"]}
    assert {k: c["verdict"] for k, c in claims.items()} == {
        "xdist.holds_a": "HOLDS",
        "xdist.killed": "ERROR",
        "xdist.fails": "FAILS",
        "xdist.holds_b": "HOLDS",
        "xdist.holds_c": "HOLDS",
    }, out
    killed = claims["xdist.killed"]["message"]
    assert "crashed" in killed or "process" in killed, killed
