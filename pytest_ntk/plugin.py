"""pytest-ntk's pytest plugin: options, markers, fixtures and hooks. Thin by design.

The claim logic lives in :mod:`pytest_ntk.verdicts` (what a measurement means),
:mod:`pytest_ntk.harness` (the run's state, how a verdict maps onto pytest's outcome) and
:mod:`pytest_ntk.report` (writers). A claim's result travels as ``report.ntk_claim`` (a JSON-ready
dict), so it survives pytest-xdist's serialization and the controller aggregates one report.
Loading this module imports neither jax nor scipy: a pytest run without claims pays nothing.
"""

from __future__ import annotations

import pytest

from .harness.session import SESSION_KEY as _SESSION
from .harness.session import NTKSession


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ntk", "pytest-ntk: NTK and NNGP claims")
    group.addoption("--ntk-profile", dest="ntk_profile", default=None,
                    help="scale of the audit: quick (default, 2 CPU cores), long, paper (published protocol, GPU), "
                         "or one defined under [tool.pytest_ntk.profiles] in pyproject.toml")
    group.addoption("--ntk-rtol", dest="ntk_rtol", default=None, help="default relative tolerance of claims")
    group.addoption("--ntk-atol", dest="ntk_atol", default=None, help="default absolute tolerance of claims")
    group.addoption("--ntk-confidence", dest="ntk_confidence", default=None,
                    help="coverage of confidence intervals for sampled measurements and slopes, in [0.5, 0.999] "
                         "(default 0.95)")
    group.addoption("--ntk-seed", dest="ntk_seed", type=int, default=None,
                    help="base seed in [0, 2**32 - 1]; every claim derives its seeds from it and its id (default 0)")
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
        "claim(id, *, source, statement, expect=None, expect_profiles=None): a test that checks a theoretical "
        "prediction; its measurements are recorded with the `claim` fixture and judged HOLDS/FAILS/INCONCLUSIVE/ERROR",
    )
    config.addinivalue_line("markers", "tolerance(rtol=None, atol=None, confidence=None): the claim's tolerance")
    ntk = NTKSession(config)
    config.stash[_SESSION] = ntk
    if config.pluginmanager.has_plugin("pytester"):
        # pytester's in-process runs drop every module first imported inside them, and numpy's
        # C extensions cannot load twice in one process: where pytester is active (a project testing
        # claim files), load the recorder (and numpy) now, in the outer process. Other runs don't pay.
        import pytest_ntk.verdicts.recorder  # noqa: F401
    config.pluginmanager.register(_Controller(ntk), "ntk-controller")


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[_SESSION].collected_items(session.items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    ntk = item.config.stash[_SESSION]
    ntk.start(item, on_stage=ntk.progress.stage)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    item.config.stash[_SESSION].on_report(item, call, report)
    return report


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

    def pytest_runtest_logstart(self, nodeid, location) -> None:
        if self.ntk.is_distributing():  # xdist controller: the workers' claims as they start
            self.ntk.progress.claim_started(nodeid, self.ntk.label_of(nodeid), "xdist")

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "teardown" and self.ntk.is_distributing():
            self.ntk.progress.claim_ended(report.nodeid)
        payload = getattr(report, "ntk_claim", None)
        if payload is not None:
            self.ntk.record(report.nodeid, payload)
        elif report.failed:  # e.g. an xdist worker crashed in the claim or in its fixtures' setup
            self.ntk.record_crash(report.nodeid, f"the claim's process broke: {str(report.longrepr)[-500:]}")

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        self.ntk.interrupted = True

    def pytest_terminal_summary(self, terminalreporter) -> None:
        self.ntk.terminal_summary(terminalreporter)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:  # pytest-xdist, controller side
        self.ntk.configure_node(node)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:  # pytest-xdist, controller side
        output = getattr(node, "workeroutput", {})
        if output.get("ntk_cache"):
            self.ntk.worker_cache_stats.append(output["ntk_cache"])
        self.ntk.late_errors.update(output.get("ntk_late") or {})

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        self.ntk.progress.close()
        self.ntk.finish(session, exitstatus)


@pytest.fixture
def claim(request: pytest.FixtureRequest):
    """The recorder of this claim test: ``claim.close/at_most/at_least/slope/samples`` record measurements."""
    recorder = request.config.stash[_SESSION].recorder_of(request.node)
    if recorder is None:
        from .verdicts import ClaimError

        raise ClaimError(f"{request.node.nodeid}: the `claim` fixture needs a @pytest.mark.claim(...) on the test")
    return recorder


@pytest.fixture
def tolerance(request: pytest.FixtureRequest):
    """The claim's :class:`~pytest_ntk.verdicts.Tolerance` (marker > command line > ini > profile)."""
    ntk = request.config.stash[_SESSION]
    recorder = ntk.recorder_of(request.node)
    if recorder is not None:
        return recorder.tolerance
    return ntk.tolerance_for(request.node, request.node.nodeid)[0]


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
