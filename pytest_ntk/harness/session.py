"""The run's state behind the plugin's hooks: options, profile, claim specs, results, reports.

``plugin.py`` wires pytest hooks to the methods here; the logic lives here and in the verdict
model, so the plugin stays a thin list of hooks.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .profiles import Profile, ProfileError, load_profiles
from ..report import jsonreport, runinfo, terminal
from ..verdicts import ClaimError, ClaimRecorder, ClaimResult, Tolerance, Verdict

__all__ = ["ClaimSpec", "NTKSession", "claim_spec", "claim_error_payload", "EXPECT_VALUES"]

EXPECT_VALUES = ("holds", "fails")
_MARKER_KWARGS = {"source", "statement", "expect"}
_TOLERANCE_KWARGS = {"rtol", "atol", "confidence"}


@dataclass(frozen=True)
class ClaimSpec:
    """What the ``@pytest.mark.claim`` marker of one test item says."""

    base_id: str
    id: str
    source: str
    statement: str
    expect: str | None
    params: dict[str, Any] = field(default_factory=dict)

    def meta(self, nodeid: str) -> dict[str, Any]:
        return {
            "nodeid": nodeid, "source": self.source, "statement": self.statement, "expect": self.expect,
            "params": self.params, "base_id": self.base_id,
        }


def _plain_param(v):
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)  # 'nan', 'inf': the JSON report is strict JSON
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return _plain_param(v.item())
    except ImportError:  # pragma: no cover
        pass
    return getattr(v, "__name__", None) or repr(v)


def claim_spec(item: pytest.Item) -> ClaimSpec | None:
    """Parse the item's claim marker; ``None`` when it has none; ClaimError on a malformed one."""
    marker = item.get_closest_marker("claim")
    if marker is None:
        return None
    where = item.nodeid
    if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0].strip():
        raise ClaimError(
            f"{where}: @pytest.mark.claim needs exactly one positional argument, the claim id "
            f"(a dotted string), got {marker.args!r}"
        )
    base_id = marker.args[0].strip()
    unknown = set(marker.kwargs) - _MARKER_KWARGS
    if unknown:
        raise ClaimError(
            f"claim {base_id!r}: unknown keyword(s) {sorted(unknown)} in @pytest.mark.claim; "
            f"allowed: {sorted(_MARKER_KWARGS)}"
        )
    expect = marker.kwargs.get("expect")
    if expect is not None:
        if not isinstance(expect, str) or expect.lower() not in EXPECT_VALUES:
            raise ClaimError(f"claim {base_id!r}: expect must be 'holds' or 'fails', got {expect!r}")
        expect = expect.lower()
    for key in ("source", "statement"):
        value = marker.kwargs.get(key, "")
        if not isinstance(value, str):
            raise ClaimError(f"claim {base_id!r}: {key} must be a string, got {value!r}")
    params: dict[str, Any] = {}
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        params = {k: _plain_param(v) for k, v in callspec.params.items()}
    claim_id = base_id
    if params:
        claim_id += "[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]"
    return ClaimSpec(
        base_id=base_id, id=claim_id, source=marker.kwargs.get("source", ""),
        statement=marker.kwargs.get("statement", ""), expect=expect, params=params,
    )


def claim_error_payload(item: pytest.Item, message: str) -> dict[str, Any]:
    """The ERROR result of a claim that could not start (bad marker, tolerance, duplicate id).

    Keeps the case's id (``base[params]``) and metadata when the claim marker itself parses, so the
    parametrized cases of a claim stay distinct in the reports.
    """
    try:
        spec = claim_spec(item)
    except ClaimError:
        spec = None
    if spec is None:
        marker = item.get_closest_marker("claim")
        ok = marker is not None and marker.args and isinstance(marker.args[0], str) and marker.args[0].strip()
        claim_id = marker.args[0].strip() if ok else item.nodeid
        spec = ClaimSpec(base_id=claim_id, id=claim_id, source="", statement="", expect=None)
    return ClaimResult(id=spec.id, verdict=Verdict.ERROR, message=message, **spec.meta(item.nodeid)).to_dict()


def _float_option(config, opt: str, ini: str):
    """A tolerance field from the command line, else the ini key, else None; UsageError if invalid."""
    value = config.getoption(opt)
    origin = f"--{opt.replace('_', '-')}"
    if value is None:
        raw = config.getini(ini)
        if raw in (None, ""):
            return None
        value, origin = raw, f"ini key {ini}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"pytest-ntk: {origin} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise pytest.UsageError(f"pytest-ntk: {origin} must be finite and >= 0, got {value!r}")
    if opt == "ntk_confidence" and not 0 < v < 1:
        raise pytest.UsageError(f"pytest-ntk: {origin} must lie strictly between 0 and 1, got {value!r}")
    return v


class NTKSession:
    """Holds one pytest run's pytest-ntk state (one per process; the controller writes reports)."""

    def __init__(self, config: pytest.Config):
        self.config = config
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
        seed = config.getoption("ntk_seed")
        if seed is None:
            raw = config.getini("ntk_seed")
            try:
                seed = int(raw) if raw not in (None, "") else 0
            except ValueError:
                raise pytest.UsageError(f"pytest-ntk: ini key ntk_seed must be an integer, got {raw!r}") from None
        self.base_seed = int(seed)
        self.option_tolerance = {
            "rtol": _float_option(config, "ntk_rtol", "ntk_rtol"),
            "atol": _float_option(config, "ntk_atol", "ntk_atol"),
            "confidence": _float_option(config, "ntk_confidence", "ntk_confidence"),
        }
        self.audit = bool(config.getoption("ntk_audit") or config.getini("ntk_audit"))
        self.json_path = config.getoption("ntk_json")
        if self.json_path:  # relative to where pytest was started, even if a claim changes directory
            self.json_path = str(Path(config.invocation_params.dir, self.json_path))
        self.results: dict[str, dict[str, Any]] = {}  # nodeid -> ClaimResult dict, in arrival order
        self.pending: dict[str, dict[str, Any]] = {}  # nodeid -> claim metadata of a started claim
        self.duplicate_errors: dict[str, str] = {}
        self.interrupted = False
        self.publish_notes: list[str] = []  # lines from report writers / the baseline gate
        self.gate_failed = False
        self._cache = None
        self.worker_cache_stats: list[dict[str, Any]] = []  # from xdist workers, at their node-down
        if not self.is_worker:
            from ..science import cache

            cache.clear_at_start(config)  # --cache-clear also clears an --ntk-cache-dir

    @property
    def cache(self):
        """The cache of trained networks and kernels (created on first use; see pytest_ntk.science.cache)."""
        if self._cache is None:
            from ..science import cache

            self._cache = cache.Cache.from_config(self.config)
        return self._cache

    # ------------------------------------------------------------------ collection
    def check_duplicates(self, items) -> None:
        """A claim id may be shared by the parametrized cases of one test, never by two tests."""
        owners: dict[str, dict[str, list[str]]] = {}
        for item in items:
            try:
                spec = claim_spec(item)
            except ClaimError:
                continue  # reported when the item runs
            if spec is None:
                continue
            # the test function's node id (without parameters), relative to the rootdir like pytest's own
            func = item.nodeid
            if item.nodeid.endswith(item.name):
                func = item.nodeid[: len(item.nodeid) - len(item.name)] + getattr(item, "originalname", item.name)
            owners.setdefault(spec.base_id, {}).setdefault(func, []).append(item.nodeid)
        for base_id, funcs in owners.items():
            if len(funcs) > 1:
                names = sorted(funcs)
                msg = f"claim id {base_id!r} is used by more than one test: {', '.join(names)}; claim ids must be unique"
                for nodeids in funcs.values():
                    for nodeid in nodeids:
                        self.duplicate_errors[nodeid] = msg

    # ------------------------------------------------------------------ per claim
    def tolerance_for(self, item: pytest.Item, claim_id: str) -> Tolerance:
        """Marker ``tolerance(...)`` > command line > ini > the profile's default, field by field."""
        resolved = dict(rtol=self.profile.tolerance.rtol, atol=self.profile.tolerance.atol,
                        confidence=self.profile.tolerance.confidence)
        resolved.update({k: v for k, v in self.option_tolerance.items() if v is not None})
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
            resolved.update({k: v for k, v in marker.kwargs.items() if v is not None})
        return Tolerance(**resolved).validated(claim_id)

    def start(self, item: pytest.Item, on_stage=None) -> tuple[ClaimSpec, ClaimRecorder] | None:
        """Set up a claim item: parse its markers and bind a recorder (ClaimError when malformed)."""
        spec = claim_spec(item)
        if spec is None:
            return None
        if item.nodeid in self.duplicate_errors:
            raise ClaimError(self.duplicate_errors[item.nodeid])
        tolerance = self.tolerance_for(item, spec.id)
        recorder = ClaimRecorder(spec.id, tolerance, base_seed=self.base_seed, seed_key=spec.base_id,
                                 on_stage=on_stage)
        return spec, recorder

    def apply_outcome(self, report, result: ClaimResult) -> None:
        """Map a claim's verdict onto pytest's outcome for its call report.

        HOLDS passes and ERROR fails. FAILS fails, except that it is reported as xfailed (an
        expected failure) when the cited source itself says the prediction fails
        (``expect="fails"``) and, in audit mode, always: there a FAILS is a finding, not a broken
        test. INCONCLUSIVE is reported as xfailed: it neither passes nor fails a prediction.
        """
        failed_as_expected = result.verdict is Verdict.FAILS and (self.audit or result.expect == "fails")
        if result.verdict is Verdict.ERROR and report.passed:
            report.outcome = "failed"
            report.longrepr = f"claim {result.id!r}: {result.message}"
        elif result.verdict is Verdict.INCONCLUSIVE and report.passed:
            report.outcome = "skipped"
            report.wasxfail = result.message
        elif failed_as_expected:
            report.outcome = "skipped"
            report.wasxfail = result.message
        elif result.verdict is Verdict.FAILS and report.passed:  # the test caught the ClaimFailed
            report.outcome = "failed"
            report.longrepr = f"claim {result.id!r}: {result.message}"

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
        """A claim whose process died (e.g. an xdist worker killed mid-claim) is an ERROR."""
        meta = self.pending.pop(nodeid, None)
        if meta is None:
            return
        meta = dict(meta)
        meta.update(verdict=Verdict.ERROR.value, message=message)
        self.results[nodeid] = ClaimResult.from_dict(meta).to_dict()

    def claims(self) -> list[dict[str, Any]]:
        return [self.results[k] for k in sorted(self.results)]

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
        from ..report.publish import scope_from_config

        return runinfo.collect(Path(self.config.rootpath), self.profile.to_dict(), self.base_seed,
                               {"audit": self.audit, "cache": self.cache_stats(),
                                "selection": scope_from_config(self.config).to_dict()})

    def write_json(self, *, complete: bool) -> None:
        jsonreport.write(self.json_path, jsonreport.build(self.run_info(), self.claims(), complete=complete))

    def terminal_summary(self, terminalreporter) -> None:
        claims = self.claims()
        if not claims:
            return
        terminalreporter.write_sep("=", "NTK claims")
        terminal.render(claims, terminalreporter.write_line,
                        all_measurements=self.config.getoption("verbose") > 0)
        stats = self.cache_stats()
        if stats:
            terminalreporter.write_line(
                f"ntk cache: {stats.get('hits', 0)} hits ({stats.get('memory_hits', 0)} memory, "
                f"{stats.get('disk_hits', 0)} disk), {stats.get('misses', 0)} computed in "
                f"{stats.get('compute_s', 0.0):.1f}s, {stats.get('saved_s', 0.0):.1f}s of computing saved"
            )
        for line in self.publish_notes:
            terminalreporter.write_line(line)

    def finish(self, *, interrupted: bool) -> None:
        """End of the run (controller): close unfinished claims as ERROR, write the reports."""
        for nodeid in list(self.pending):  # started, never finished
            self.record_crash(nodeid, "the claim did not finish (run interrupted or its process died)")
        complete = not interrupted
        if self.json_path:
            self.write_json(complete=complete)
        from ..report import publish

        outcome = publish.publish(self.config, jsonreport.build(self.run_info(), self.claims(), complete=complete))
        self.publish_notes.extend(outcome.notes)
        self.gate_failed = outcome.gate_failed


def junit_properties(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """``ntk.*`` user properties of a claim (``--junitxml`` writes them as <property> elements)."""
    props = [("ntk.id", payload["id"]), ("ntk.verdict", payload["verdict"])]
    for m in payload["measurements"]:
        for key in ("measured", "predicted", "gap", "tolerance", "margin"):
            if m.get(key) is not None:
                props.append((f"ntk.{m['name']}.{key}", repr(m[key])))
        if m.get("ci"):
            props.append((f"ntk.{m['name']}.ci", repr(m["ci"])))
    return props


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
