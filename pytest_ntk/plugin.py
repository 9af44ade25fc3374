"""pytest-ntk's pytest plugin: options, markers, fixtures and hooks. Thin by design.

The claim logic lives in :mod:`pytest_ntk.verdicts` (what a measurement means),
:mod:`pytest_ntk.harness.session` (the run's state) and :mod:`pytest_ntk.report` (writers).
A claim's result travels as ``report.ntk_claim`` (a JSON-ready dict), so it survives
pytest-xdist's serialization and the controller aggregates one report.
"""

from __future__ import annotations

import pytest

from .science.errors import OptionalDependencyMissing
from .harness.session import NTKSession, claim_error_payload, junit_properties
from .verdicts import ClaimError, ClaimFailed

_SESSION = pytest.StashKey[NTKSession]()
_CLAIM = pytest.StashKey[tuple]()
_SETUP_ERROR = pytest.StashKey[BaseException]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ntk", "pytest-ntk: NTK and NNGP claims")
    group.addoption("--ntk-profile", dest="ntk_profile", default=None,
                    help="scale of the audit: quick (default, 2 CPU cores), paper (published protocol, GPU), "
                         "or one defined under [tool.pytest_ntk.profiles] in pyproject.toml")
    group.addoption("--ntk-rtol", dest="ntk_rtol", default=None, help="default relative tolerance of claims")
    group.addoption("--ntk-atol", dest="ntk_atol", default=None, help="default absolute tolerance of claims")
    group.addoption("--ntk-confidence", dest="ntk_confidence", default=None,
                    help="coverage of confidence intervals for sampled measurements and slopes (default 0.95)")
    group.addoption("--ntk-seed", dest="ntk_seed", type=int, default=None,
                    help="base seed; every claim derives its seeds from it and its id (default 0)")
    group.addoption("--ntk-json", dest="ntk_json", default=None, metavar="PATH",
                    help="write the JSON report to PATH (atomically; kept up to date as claims finish)")
    group.addoption("--ntk-audit", dest="ntk_audit", action="store_true", default=False,
                    help="audit mode (or ini ntk_audit = true): a claim that FAILS is a finding (reported as xfailed); "
                         "the run exits non-zero only when a claim ERRORs or the session breaks")
    group.addoption("--ntk-html", dest="ntk_html", default=None, metavar="PATH",
                    help="write a self-contained HTML report of the claims to PATH")
    group.addoption("--ntk-markdown", dest="ntk_markdown", default=None, metavar="PATH",
                    help="write a GitHub-flavoured Markdown summary to PATH (also to $GITHUB_STEP_SUMMARY when set)")
    group.addoption("--ntk-history", dest="ntk_history", default=None, metavar="DIR",
                    help="append this run's verdicts to the history store in DIR (shown in the HTML report)")
    group.addoption("--ntk-baseline", dest="ntk_baseline", default=None, metavar="FILE",
                    help="compare verdicts with a baseline FILE; exit non-zero when any verdict changes")
    group.addoption("--ntk-baseline-update", dest="ntk_baseline_update", action="store_true", default=False,
                    help="rewrite the --ntk-baseline FILE from this run instead of comparing")
    group.addoption("--ntk-cache-dir", dest="ntk_cache_dir", default=None, metavar="DIR",
                    help="where trained networks and kernels are cached (default: pytest's cache dir, ntk/)")
    group.addoption("--ntk-gpus", dest="ntk_gpus", type=int, default=None, metavar="N",
                    help="with pytest-xdist on a host with N GPUs: pin worker gwK to GPU K mod N "
                         "(sets CUDA_VISIBLE_DEVICES in the worker before JAX starts)")
    group.addoption("--ntk-no-cache", dest="ntk_no_cache", action="store_true", default=False,
                    help="neither read nor write the cache of trained networks and kernels")
    parser.addini("ntk_audit", "pytest-ntk: audit mode by default (as --ntk-audit)", type="bool", default=False)
    for name, default, kind in (("ntk_profile", "quick", "string"), ("ntk_rtol", "", "string"),
                                ("ntk_atol", "", "string"), ("ntk_confidence", "", "string"),
                                ("ntk_seed", "", "string")):
        parser.addini(name, f"pytest-ntk default for --{name.replace('_', '-')}", type=kind, default=default)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "claim(id, *, source, statement, expect=None): a test that checks a theoretical prediction; "
        "its measurements are recorded with the `claim` fixture and judged HOLDS/FAILS/INCONCLUSIVE/ERROR",
    )
    config.addinivalue_line("markers", "tolerance(rtol=None, atol=None, confidence=None): the claim's tolerance")
    ntk = NTKSession(config)
    config.stash[_SESSION] = ntk
    config.pluginmanager.register(_Controller(ntk), "ntk-controller")


def pytest_collection_modifyitems(config: pytest.Config, items) -> None:
    config.stash[_SESSION].check_duplicates(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    ntk = item.config.stash[_SESSION]
    try:
        started = ntk.start(item, on_stage=_progress(item.config))
    except ClaimError as exc:
        item.stash[_SETUP_ERROR] = exc
        raise
    if started is not None:
        item.stash[_CLAIM] = started


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    started = item.stash.get(_CLAIM, None)
    if started is None:
        if call.when == "setup" and _SETUP_ERROR in item.stash:
            report.ntk_claim = _setup_error_payload(item, item.stash[_SETUP_ERROR])
        return report
    spec, recorder = started
    meta = spec.meta(item.nodeid)
    if call.when == "setup":
        if report.failed or report.skipped:
            reason = _skip_reason(report) if report.skipped else None
            error = None if report.skipped else (call.excinfo.value if call.excinfo else RuntimeError("setup failed"))
            result = recorder.finish(error=error, skipped=reason, **meta)
            report.ntk_claim = result.to_dict()
        else:  # announce the claim: if its process dies, the controller still knows what ran
            report.ntk_claim = {"id": spec.id, "verdict": "PENDING", **meta}
        return report
    if call.when != "call":
        return report
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, OptionalDependencyMissing):  # e.g. the oracle is absent: a claim that needs it skips
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1], f"Skipped: {error}")
        error = None
    skipped = _skip_reason(report) if report.skipped and not hasattr(report, "wasxfail") else None
    result = recorder.finish(error=error, skipped=skipped, duration_s=report.duration, **meta)
    report.ntk_claim = result.to_dict()
    item.config.stash[_SESSION].apply_outcome(report, result)
    props = junit_properties(report.ntk_claim)
    report.user_properties.extend(props)
    item.user_properties.extend(props)  # junitxml reads them from the teardown report, built from the item
    return report


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _setup_error_payload(item: pytest.Item, exc: BaseException) -> dict:
    return claim_error_payload(item, f"{type(exc).__name__}: {exc}")


def _progress(config: pytest.Config):
    """A per-stage progress line (with -v, in the main process only), written past output capture."""
    if config.getoption("verbose") < 1 or hasattr(config, "workerinput"):
        return None

    def on_stage(claim_id: str, stage: str, duration: float) -> None:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        if tr is None or capman is None:
            return
        with capman.global_and_fixture_disabled():
            tr.write_line(f"    {claim_id}: {stage} done in {duration:.2f}s")

    return on_stage


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config):
    payload = getattr(report, "ntk_claim", None)
    if payload is None or payload.get("verdict") == "PENDING":
        return None
    verdict = payload["verdict"]
    if report.when == "setup" and verdict == "ERROR":
        return "error", "E", ("ERROR", {"red": True})
    if report.when != "call":
        return None
    colour = {"HOLDS": "green", "FAILS": "red", "ERROR": "red", "INCONCLUSIVE": "yellow", "SKIPPED": "yellow"}[verdict]
    if report.passed:
        if hasattr(report, "wasxfail"):  # an xfail-marked claim that passed
            return "xpassed", "X", (verdict, {colour: True})
        return "passed", ".", (verdict, {colour: True})
    if report.failed:
        return "failed", "E" if verdict == "ERROR" else "F", (verdict, {colour: True})
    if hasattr(report, "wasxfail"):
        return "xfailed", "?" if verdict == "INCONCLUSIVE" else "x", (verdict, {colour: True})
    return "skipped", "s", (verdict, {colour: True})


class _Controller:
    """Hooks that need the run's state and get no ``config``: registered as a plugin object."""

    def __init__(self, ntk: NTKSession):
        self.ntk = ntk

    def pytest_runtest_logreport(self, report) -> None:
        payload = getattr(report, "ntk_claim", None)
        if payload is not None:
            self.ntk.record(report.nodeid, payload)
        elif report.failed and report.nodeid in self.ntk.pending:  # e.g. an xdist worker crashed
            self.ntk.record_crash(report.nodeid, f"the claim's process broke: {str(report.longrepr)[-500:]}")

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        self.ntk.interrupted = True

    def pytest_terminal_summary(self, terminalreporter) -> None:
        self.ntk.terminal_summary(terminalreporter)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:  # pytest-xdist, controller side
        stats = getattr(node, "workeroutput", {}).get("ntk_cache")
        if stats:
            self.ntk.worker_cache_stats.append(stats)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.ntk.is_worker:
            if self.ntk._cache is not None:  # send this worker's cache counters to the controller
                session.config.workeroutput["ntk_cache"] = self.ntk._cache.stats()
        else:
            stopped = bool(session.shouldstop) or bool(session.shouldfail)  # -x / --maxfail: claims left unrun
            self.ntk.finish(interrupted=self.ntk.interrupted or stopped
                            or exitstatus == pytest.ExitCode.INTERRUPTED)
            if self.ntk.gate_failed and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def claim(request: pytest.FixtureRequest):
    """The recorder of this claim test: ``claim.close/at_most/at_least/slope/samples`` record measurements."""
    started = request.node.stash.get(_CLAIM, None)
    if started is None:
        raise ClaimError(f"{request.node.nodeid}: the `claim` fixture needs a @pytest.mark.claim(...) on the test")
    return started[1]


@pytest.fixture
def tolerance(request: pytest.FixtureRequest):
    """The claim's :class:`~pytest_ntk.verdicts.Tolerance` (marker > command line > ini > profile)."""
    started = request.node.stash.get(_CLAIM, None)
    if started is not None:
        return started[1].tolerance
    ntk = request.config.stash[_SESSION]
    return ntk.tolerance_for(request.node, request.node.nodeid)


@pytest.fixture(scope="session")
def ntk_profile(request: pytest.FixtureRequest):
    """The active :class:`~pytest_ntk.harness.profiles.Profile` (``--ntk-profile``)."""
    return request.config.stash[_SESSION].profile


@pytest.fixture(scope="session")
def ntk_cache(request: pytest.FixtureRequest):
    """The run's :class:`~pytest_ntk.science.cache.Cache` of trained networks and kernels (memoized in-session, on disk)."""
    return request.config.stash[_SESSION].cache


@pytest.fixture(scope="session")
def ntk_seed(request: pytest.FixtureRequest) -> int:
    """The run's base seed (``--ntk-seed``); claims use ``claim.seed``, derived from it and their id."""
    return request.config.stash[_SESSION].base_seed


__all__ = ["ClaimFailed"]
