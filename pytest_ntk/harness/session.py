"""The run's state behind the plugin's hooks: options, profile, claims, results, reports, exit status.

``plugin.py`` wires pytest hooks to the methods here; the logic lives here, in :mod:`.spec`
(what a claim declares), :mod:`.outcome` (how a verdict maps onto pytest's outcome) and the
verdict model, so the plugin stays a thin list of hooks.

A claim's life, as the session sees it:

1. **collection** (:meth:`NTKSession.collected_items`): every claim item is known before any
   runs (under xdist each worker writes its list to a manifest the controller reads), so a claim
   whose process dies before it starts is still reported, and the JSON says ``complete: false``
   whenever a collected claim has no verdict;
2. **setup** (:meth:`NTKSession.start`): the marker is parsed, the tolerance resolved and a
   recorder bound; the setup report announces the claim (``PENDING``);
3. **call**: the recorder is sealed when the call ends and the verdict computed
   (:meth:`NTKSession.on_report`);
4. **teardown**: an error there, or a measurement recorded after the call, turns the verdict into
   ERROR and the teardown report carries the corrected result;
5. **end** (:meth:`NTKSession.finish`): unfinished claims become ERROR, measurements recorded
   after their claim's teardown (a thread that outlived its test) too; the reports are written
   and the exit status follows :func:`pytest_ntk.verdicts.breaks_run`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ..report import jsonreport, runinfo, terminal
from ..verdicts import ClaimError, ClaimResult, Tolerance, Verdict, breaks_run
from . import options as _options
from . import outcome as _outcome
from .progress import Progress
from .profiles import Profile, ProfileError, load_profiles
from .spec import ClaimSpec, claim_error_payload, claim_spec, duplicate_ids, format_statement, safe_spec, xfail_reason

__all__ = ["NTKSession", "SESSION_KEY", "session_of", "pin_worker_gpu"]

_TOLERANCE_KWARGS = {"rtol", "atol", "confidence"}
SESSION_KEY = pytest.StashKey["NTKSession"]()
_CLAIM = pytest.StashKey[tuple]()
_SETUP_ERROR = pytest.StashKey[BaseException]()
_MANIFEST_KEY = "ntk_manifest_dir"


def session_of(config: pytest.Config) -> "NTKSession":
    """The run's :class:`NTKSession` (the plugin keeps it in ``config.stash[SESSION_KEY]``)."""
    try:
        return config.stash[SESSION_KEY]
    except KeyError:
        raise RuntimeError("pytest-ntk is not active in this pytest run (is the plugin disabled?)") from None


class NTKSession:
    """Holds one pytest run's pytest-ntk state (one per process; the controller writes reports)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.started = time.time()
        self.is_worker = hasattr(config, "workerinput")
        self.pinned_gpu = pin_worker_gpu(config)
        pyproject = Path(config.rootpath) / "pyproject.toml"
        try:
            self.profiles = load_profiles(pyproject)
        except ProfileError as exc:
            raise pytest.UsageError(f"pytest-ntk: {exc}") from None
        name = config.getoption("ntk_profile") or config.getini("ntk_profile") or "quick"
        if name not in self.profiles:
            raise pytest.UsageError(
                f"pytest-ntk: unknown profile {name!r} (--ntk-profile); known: {sorted(self.profiles)}"
            )
        self.profile: Profile = self.profiles[name]
        self.base_seed = _options.base_seed(config)
        self.option_tolerance = {
            "rtol": _options.tolerance_option(config, "ntk_rtol", "ntk_rtol"),
            "atol": _options.tolerance_option(config, "ntk_atol", "ntk_atol"),
            "confidence": _options.tolerance_option(config, "ntk_confidence", "ntk_confidence"),
        }
        self.audit = bool(config.getoption("ntk_audit") or config.getini("ntk_audit"))
        self.json_path = _options.output_path(config, "ntk_json")
        if not self.is_worker:
            _options.check_outputs(config)
        self.results: dict[str, dict[str, Any]] = {}  # nodeid -> ClaimResult dict, in arrival order
        self.pending: dict[str, dict[str, Any]] = {}  # nodeid -> claim metadata of a started claim
        self.collected: dict[str, dict[str, Any]] = {}  # nodeid -> claim metadata of every collected claim
        self.recorders: dict[str, Any] = {}  # nodeid -> ClaimRecorder of this process
        self.duplicate_errors: dict[str, str] = {}
        self.late_errors: dict[str, str] = {}  # nodeid -> message, from workers (after their claims ended)
        self.interrupted = False
        self.publish_notes: list[str] = []  # lines from report writers / the baseline gate
        self.gate_failed = False
        self._cache = None
        self.worker_cache_stats: list[dict[str, Any]] = []  # from xdist workers, at their node-down
        self.manifest_dir: str | None = None
        self.progress = Progress(config)
        if self.is_worker:
            self.manifest_dir = config.workerinput.get(_MANIFEST_KEY)
        else:
            _options.clear_cache_at_start(config)  # --cache-clear also clears an --ntk-cache-dir

    @property
    def cache(self):
        """The cache of trained networks and kernels (created on first use; see pytest_ntk.science.cache)."""
        if self._cache is None:
            from ..science.cache import Cache

            directory, enabled = _options.cache_directory(self.config)
            self._cache = Cache(directory, enabled=enabled)
        return self._cache

    # ------------------------------------------------------------------ xdist plumbing
    def configure_node(self, node) -> None:
        """Controller: give each xdist worker the folder where it lists its collected claims."""
        if self.manifest_dir is None:
            self.manifest_dir = tempfile.mkdtemp(prefix="pytest-ntk-claims-")
        node.workerinput[_MANIFEST_KEY] = self.manifest_dir

    def is_distributing(self) -> bool:
        """True in an xdist controller (the claims run in workers)."""
        return self.manifest_dir is not None and not self.is_worker

    def label_of(self, nodeid: str) -> str:
        """The claim id of a node id (from the workers' manifests), else the node id."""
        meta = self.collected.get(nodeid)
        if meta is None:
            self._read_manifests()
            meta = self.collected.get(nodeid)
        return meta["id"] if meta else nodeid

    def _read_manifests(self) -> None:
        if self.is_worker or not self.manifest_dir or not os.path.isdir(self.manifest_dir):
            return
        for path in sorted(Path(self.manifest_dir).glob("*.json")):
            try:
                self.collected.update(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # a worker died while writing: the others list the same items

    # ------------------------------------------------------------------ collection
    def collected_items(self, items) -> None:
        """The final list of items: remember every claim, check ids, list them for the controller."""
        self.duplicate_errors = duplicate_ids(items)
        for item in items:
            spec = safe_spec(item)
            if spec is not None:
                self.collected[item.nodeid] = {"id": spec.id, **spec.meta(item.nodeid, self.profile.name)}
        if self.is_worker and self.manifest_dir:
            worker = str(self.config.workerinput.get("workerid", os.getpid()))
            target = Path(self.manifest_dir, f"{worker}.json")
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.collected), encoding="utf-8")
            os.replace(tmp, target)

    # ------------------------------------------------------------------ per claim
    def tolerance_for(self, item: pytest.Item, claim_id: str) -> tuple[Tolerance, bool]:
        """Marker ``tolerance(...)`` > command line > ini > the profile's default, field by field.

        Returns the tolerance and whether its rtol/atol are a default (no ``tolerance`` marker gave
        them). Marker values are validated like ``close()``'s arguments: ``rtol=True`` or
        ``"0.95"`` is an ERROR, not 1.0 or 0.95.
        """
        resolved: dict[str, Any] = dict(rtol=self.profile.tolerance.rtol, atol=self.profile.tolerance.atol,
                                        confidence=self.profile.tolerance.confidence)
        resolved.update({k: v for k, v in self.option_tolerance.items() if v is not None})
        default = True
        marker = item.get_closest_marker("tolerance")
        if marker is not None:
            if marker.args:
                raise ClaimError(f"claim {claim_id!r}: @pytest.mark.tolerance takes keywords only "
                                 f"(rtol=, atol=, confidence=), got positional {marker.args!r}")
            unknown = set(marker.kwargs) - _TOLERANCE_KWARGS
            if unknown:
                raise ClaimError(f"claim {claim_id!r}: unknown keyword(s) {sorted(unknown)} in "
                                 f"@pytest.mark.tolerance; allowed: {sorted(_TOLERANCE_KWARGS)}")
            # None means "not set here", as in the marker's signature tolerance(rtol=None, atol=None, confidence=None)
            given = {k: v for k, v in marker.kwargs.items() if v is not None}
            resolved.update(given)
            default = not ({"rtol", "atol"} & set(given))
        try:
            return Tolerance(**resolved).validated(claim_id), default
        except ClaimError as exc:
            raise ClaimError(f"{exc} (from @pytest.mark.tolerance, the command line or the profile)") from None

    def start(self, item: pytest.Item, on_stage=None) -> tuple[ClaimSpec, Any] | None:
        """Set up a claim item: parse its markers and bind a recorder (ClaimError when malformed)."""
        try:
            spec = claim_spec(item)
            if spec is None:
                return None
            if item.nodeid in self.duplicate_errors:
                raise ClaimError(self.duplicate_errors[item.nodeid])
            tolerance, default = self.tolerance_for(item, spec.id)
        except ClaimError as exc:
            item.stash[_SETUP_ERROR] = exc
            raise
        from ..verdicts.recorder import ClaimRecorder  # numpy: loaded when the first claim starts

        recorder = ClaimRecorder(spec.id, tolerance, base_seed=self.base_seed, seed_key=spec.base_id,
                                 on_stage=on_stage, tolerance_is_default=default)
        item.stash[_CLAIM] = (spec, recorder)
        self.recorders[item.nodeid] = recorder
        return spec, recorder

    @staticmethod
    def recorder_of(item: pytest.Item):
        started = item.stash.get(_CLAIM, None)
        return None if started is None else started[1]

    def on_report(self, item: pytest.Item, call: pytest.CallInfo, report) -> None:
        """Attach the claim's result to its setup/call/teardown report and map the verdict onto pytest's outcome."""
        started = item.stash.get(_CLAIM, None)
        if started is None:
            if call.when == "setup" and _SETUP_ERROR in item.stash:
                exc = item.stash[_SETUP_ERROR]
                report.ntk_claim = claim_error_payload(item, f"{type(exc).__name__}: {exc}")
                report.longrepr = _outcome.usage_error(item, exc)  # the user's lines, not the plugin's frames
            return
        spec, recorder = started
        meta = {**spec.meta(item.nodeid, recorder.profile or self.profile.name), "xfail": xfail_reason(item)}
        if call.when == "setup":
            if report.failed or report.skipped:
                reason = _outcome.skip_reason(report) if report.skipped else None
                error = None if report.skipped else (call.excinfo.value if call.excinfo else RuntimeError("setup failed"))
                report.ntk_claim = recorder.finish(error=error, skipped=reason, **meta).to_dict()
            else:  # announce the claim: if its process dies, the controller still knows what ran
                report.ntk_claim = {"id": spec.id, "verdict": "PENDING", **meta}
            return
        if call.when == "call":
            recorder.seal()
            error, skipped, imperative_xfail = _outcome.classify(call, report)
            try:
                meta["statement"] = format_statement(spec.id, spec.statement, recorder.settings,
                                                     recorder.profile or self.profile.name)
            except ClaimError as exc:
                error, skipped = exc, None
            marked_xfail = hasattr(report, "wasxfail") and not imperative_xfail
            meta["xfail"] = (str(report.wasxfail) or "xfail") if marked_xfail else None
            result = recorder.finish(error=error, skipped=skipped, duration_s=report.duration, **meta)
            _outcome.apply(report, result, audit=self.audit, marked_xfail=marked_xfail, item=item)
            report.ntk_claim = result.to_dict()
            _outcome.set_junit_properties(report, item, report.ntk_claim)
            return
        # teardown: a fixture's teardown error, or a measurement recorded after the call, is an ERROR
        if report.failed or recorder.late:
            previous = self.results.get(item.nodeid, {})
            error = None  # a late record alone: finish() gives ERROR for it
            if report.failed:
                exc = call.excinfo.value if call.excinfo is not None else None
                error = RuntimeError(f"the test's teardown failed after the claim was judged "
                                     f"{previous.get('verdict', '?')}"
                                     + (f": {type(exc).__name__}: {exc}" if exc is not None else ""))
            meta.update(xfail=previous.get("xfail"), statement=previous.get("statement", meta["statement"]))
            result = recorder.finish(error=error, duration_s=previous.get("duration_s", 0.0), **meta)
            report.ntk_claim = result.to_dict()
            _outcome.set_junit_properties(report, item, report.ntk_claim)

    # ------------------------------------------------------------------ results (controller side)
    def record(self, nodeid: str, payload: dict[str, Any]) -> None:
        """Take a claim payload that travelled in a test report (works the same under xdist)."""
        if payload.get("verdict") == "PENDING":
            self.pending[nodeid] = payload
            return
        self.pending.pop(nodeid, None)
        self.results[nodeid] = payload
        if self.json_path and not self.is_worker:  # under xdist only the controller writes the report
            self.write_json(complete=False)

    def record_crash(self, nodeid: str, message: str) -> None:
        """A claim whose process died (e.g. an xdist worker killed mid-claim, or in its setup) is an ERROR."""
        meta = self.pending.pop(nodeid, None)
        if meta is None:
            self._read_manifests()
            meta = self.collected.get(nodeid)
            if meta is None or nodeid in self.results:
                return  # not a claim, or already judged
        meta = dict(meta)
        recorder = self.recorders.get(nodeid)
        measurements = [m.to_dict() for m in recorder.measurements] if recorder is not None else []
        meta.update(verdict=Verdict.ERROR.value, message=message, measurements=measurements)
        self.results[nodeid] = ClaimResult.from_dict(meta).to_dict()

    def late_records(self) -> dict[str, str]:
        """``{nodeid: message}`` for claims of this process that got a record after their teardown."""
        out = {}
        for nodeid, recorder in self.recorders.items():
            late = recorder.late
            if late and nodeid in self.results and self.results[nodeid].get("verdict") != "ERROR":
                out[nodeid] = f"recorded after the test returned: {', '.join(late[:5])}"
        return out

    def _apply_late(self, late: dict[str, str]) -> None:
        for nodeid, message in late.items():
            result = self.results.get(nodeid)
            if result is not None and result.get("verdict") != "ERROR":
                result = dict(result, verdict="ERROR", message=message)
                self.results[nodeid] = ClaimResult.from_dict(result).to_dict()

    def claims(self) -> list[dict[str, Any]]:
        return [self.results[k] for k in sorted(self.results)]

    def not_run(self) -> list[str]:
        """Ids of collected claims that have no verdict (the run was stopped, or a worker died)."""
        self._read_manifests()
        return sorted(meta.get("id", nodeid) for nodeid, meta in self.collected.items() if nodeid not in self.results)

    def cache_stats(self) -> dict[str, Any] | None:
        """This process's cache counters summed with the xdist workers' (None when no claim used it)."""
        stats = list(self.worker_cache_stats)
        if self._cache is not None:
            stats.append(self._cache.stats())
        if not stats:
            return None
        from ..science.cache import Cache

        return Cache.add_stats(*stats)

    def run_info(self) -> dict[str, Any]:
        return runinfo.collect(Path(self.config.rootpath), self.profile.to_dict(), self.base_seed,
                               {"audit": self.audit, "cache": self.cache_stats(),
                                "selection": _options.scope(self.config).to_dict(),
                                "command": runinfo.command(self.config.invocation_params.args),
                                "machine": runinfo.machine(),
                                "wall_time_s": round(time.time() - self.started, 1)})

    def report(self, *, complete: bool) -> dict[str, Any]:
        missing = self.not_run()
        report = jsonreport.build(self.run_info(), self.claims(), complete=complete and not missing)
        report["not_run"] = missing
        return report

    def write_json(self, *, complete: bool) -> None:
        jsonreport.write(self.json_path, self.report(complete=complete))

    def terminal_summary(self, terminalreporter) -> None:
        claims = self.claims()
        if not claims:
            return
        terminalreporter.write_sep("=", "NTK claims")
        terminal.render(claims, terminalreporter.write_line,
                        all_measurements=self.config.getoption("verbose") > 0, audit=self.audit)
        stats = self.cache_stats()
        if stats:
            terminalreporter.write_line(terminal.cache_line(stats))
        missing = self.not_run()
        if missing and not self.config.getoption("collectonly"):
            terminalreporter.write_line(f"pytest-ntk: {len(missing)} collected claim(s) have no verdict (the run was "
                                        f"stopped or a process died): {', '.join(missing[:10])}"
                                        f"{' ...' if len(missing) > 10 else ''}", red=True)
        for line in self.publish_notes:
            terminalreporter.write_line(line)

    def finish(self, session: pytest.Session, exitstatus) -> None:
        """End of the run: close unfinished claims as ERROR, apply late records, write the reports,
        and make the exit status follow :func:`pytest_ntk.verdicts.breaks_run`."""
        if self.is_worker:
            if self._cache is not None:  # send this worker's cache counters to the controller
                session.config.workeroutput["ntk_cache"] = self._cache.stats()
            session.config.workeroutput["ntk_late"] = self.late_records()
            return
        stopped = bool(session.shouldstop) or bool(session.shouldfail)  # -x / --maxfail: claims left unrun
        interrupted = self.interrupted or stopped or exitstatus == pytest.ExitCode.INTERRUPTED
        for nodeid in list(self.pending):  # started, never finished (pytest.exit, a dead process)
            self.record_crash(nodeid, "the claim did not finish (the run was interrupted or stopped, or its "
                                      "process died)")
        self._apply_late(self.late_records())
        self._apply_late(self.late_errors)
        report = self.report(complete=not interrupted)
        if self.json_path:
            jsonreport.write(self.json_path, report)
        from ..report import publish

        outcome = publish.run(report, _options.publish_options(self.config))
        self.publish_notes.extend(outcome.notes)
        self.gate_failed = outcome.gate_failed
        if self.manifest_dir and not self.is_worker:
            shutil.rmtree(self.manifest_dir, ignore_errors=True)
        reasons = [r for r in (breaks_run(c, audit=self.audit) for c in report["claims"]) if r]
        if report["not_run"] and not self.config.getoption("collectonly"):
            reasons.append("collected claims without a verdict")
        if (reasons or self.gate_failed) and session.exitstatus in (pytest.ExitCode.OK,
                                                                    pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pin_worker_gpu(config) -> str | None:
    """``--ntk-gpus N``: give xdist worker ``gwK`` the GPU ``K mod N`` (one worker per GPU).

    Sets ``CUDA_VISIBLE_DEVICES`` in the worker process before anything imports JAX (the plugin
    never does; claim modules are imported after configuration). Where ``CUDA_VISIBLE_DEVICES``
    already lists devices, the K-th of them (mod N) is chosen. Returns the device, or None.
    """
    n = config.getoption("ntk_gpus")
    if not n or not hasattr(config, "workerinput"):
        return None
    if n < 1:
        raise pytest.UsageError(f"pytest-ntk: --ntk-gpus must be >= 1, got {n}")
    if "jax" in sys.modules:
        raise pytest.UsageError("pytest-ntk: --ntk-gpus needs to run before JAX is imported in the worker")
    index = int(str(config.workerinput["workerid"]).lstrip("gw") or 0)
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    device = visible[index % len(visible)] if visible else str(index % n)
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    return device
