"""The verdict model: what a claim measured, what was predicted, and whether the prediction held.

Pure Python; it never imports numpy, jax or pytest, so the plugin loads fast and reports and a
notebook can use it anywhere. This module is the one home of the verdict rules every report follows:
the order of severity (:data:`SEVERITY`, :func:`combine`), which measurement decided a claim
(:func:`decisive`) and when a claim makes a run fail (:func:`breaks_run`).
"""

from __future__ import annotations

import decimal
import enum
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

__all__ = [
    "Verdict",
    "Tolerance",
    "Rival",
    "Measurement",
    "ClaimResult",
    "ClaimFailed",
    "ClaimError",
    "combine",
    "decisive",
    "severity",
    "breaks_run",
    "ORDER",
    "SEVERITY",
    "CONFIDENCE_RANGE",
    "SEED_RANGE",
]


class Verdict(str, enum.Enum):
    """The outcome of a claim, or of one of its measurements.

    HOLDS: the prediction is met within tolerance (for sampled quantities: the whole confidence
    interval of the gap lies inside the tolerance) and every rival prediction the measurement
    names is rejected. FAILS: the prediction is violated (the whole interval lies outside).
    INCONCLUSIVE: the interval straddles the tolerance (more seeds are needed), or a rival
    prediction fits the measurement as well as the prediction does. ERROR: the computation or the
    claim itself broke (an exception, a non-finite number, refused input, an invalid tolerance,
    no measurement at all, a measurement after the test returned). SKIPPED: the claim did not
    run (e.g. an optional dependency is absent); it is not a verdict on the prediction.
    """

    HOLDS = "HOLDS"
    FAILS = "FAILS"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"

    def __str__(self) -> str:
        return self.value


#: How the verdicts are listed in counts and legends.
ORDER = ("HOLDS", "FAILS", "INCONCLUSIVE", "ERROR", "SKIPPED")
#: Severity when measurements are combined into a claim's verdict, and when a report picks the
#: decisive measurement: ERROR > FAILS > INCONCLUSIVE > HOLDS (a measurement is never SKIPPED).
SEVERITY = {"HOLDS": 0, "SKIPPED": 0, "INCONCLUSIVE": 1, "FAILS": 2, "ERROR": 3}
#: ``--ntk-seed`` and every derived seed lie in ``[0, 2**32)``: numpy's SeedSequence takes 32-bit
#: words, so a larger base seed would alias (2**32 would give the seeds of 0). It is refused instead.
SEED_RANGE = (0, 2**32 - 1)
#: The confidence levels an interval verdict accepts: below 0.5 an "interval" excludes more than
#: it covers; above 0.999 a Student-t quantile with few seeds makes every interval useless.
CONFIDENCE_RANGE = (0.5, 0.999)


def severity(verdict) -> int:
    """The rank of a verdict (a :class:`Verdict` or its string) in :data:`SEVERITY`."""
    return SEVERITY.get(str(verdict), 0)


def combine(verdicts) -> Verdict:
    """A claim's verdict from its measurements': the most severe of ERROR > FAILS > INCONCLUSIVE > HOLDS."""
    verdicts = list(verdicts)
    if not verdicts:
        return Verdict.ERROR
    return max(verdicts, key=severity)


def _field(m, name):
    return m.get(name) if isinstance(m, dict) else getattr(m, name, None)


def decisive(measurements: Iterable):
    """The measurement that decided a claim: the most severe verdict; on ties the smallest margin.

    Works on :class:`Measurement` objects and on their JSON dicts alike (the reports read JSON).
    A missing margin (an ERROR, a one-sided statistic) counts as the smallest. ``None`` when
    there is no measurement.
    """
    ms = [m for m in measurements if isinstance(m, (dict, Measurement))]
    if not ms:
        return None

    def key(m):
        margin = _field(m, "margin")
        ok = isinstance(margin, (int, float)) and not isinstance(margin, bool) and math.isfinite(margin)
        return (-severity(_field(m, "verdict")), margin if ok else -math.inf)

    return sorted(ms, key=key)[0]


def breaks_run(claim: dict, *, audit: bool) -> str | None:
    """Why this claim makes the pytest run fail, or ``None`` (the documented exit-status policy).

    - ERROR always fails the run (also a claim that started and never finished);
    - FAILS fails it, unless the run is an audit (``--ntk-audit``: a FAILS is a finding), the
      cited source itself expects the prediction to fail (``expect="fails"``), or the test carries
      an ``xfail`` marker (declared before the run, as ``expect="fails"``);
    - HOLDS, INCONCLUSIVE and SKIPPED never do.
    """
    verdict = claim.get("verdict")
    if verdict in ("ERROR", "PENDING"):
        return f"{claim.get('id')}: ERROR"
    if verdict == "FAILS" and not (audit or claim.get("expect") == "fails" or claim.get("xfail")):
        return f"{claim.get('id')}: FAILS"
    return None


class ClaimFailed(AssertionError):
    """A claim's prediction was violated by a measurement (the verdict FAILS)."""


class ClaimError(ValueError):
    """A claim could not be judged: bad input (NaN, wrong shape, invalid tolerance, ...). Verdict ERROR."""


def _is_number(value) -> bool:
    """A real number for a tolerance: int, float, numpy numbers, Fraction...; never bool or a string."""
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool") and type(value).__module__ == "numpy":
        return False
    return isinstance(value, (numbers.Real, decimal.Decimal))


def _real(value) -> float:
    """``float(value)`` of a real number, NaN when it has no float value (an overflowing Decimal...)."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def check_tolerance_value(claim_id: str, name: str, value, *, where: str = "") -> float:
    """``value`` as a finite float >= 0, or :class:`ClaimError` naming the claim, the field and the value.

    Only real numbers are accepted: ``True`` and ``"0.95"`` are refused, not read as 1.0 and 0.95.
    """
    suffix = f" ({where})" if where else ""
    if not _is_number(value):
        raise ClaimError(f"claim {claim_id!r}: {name} must be a number >= 0, got {value!r}{suffix}")
    v = _real(value)
    if not math.isfinite(v) or v < 0:
        raise ClaimError(f"claim {claim_id!r}: {name} must be finite and >= 0, got {value!r}{suffix}")
    return v


def check_confidence(claim_id: str, value, *, where: str = "") -> float:
    """``value`` as a float in :data:`CONFIDENCE_RANGE`, or :class:`ClaimError` naming it."""
    lo, hi = CONFIDENCE_RANGE
    suffix = f" ({where})" if where else ""
    if not _is_number(value):
        raise ClaimError(f"claim {claim_id!r}: confidence must be a number in [{lo}, {hi}], got {value!r}{suffix}")
    v = _real(value)
    if not lo <= v <= hi:
        raise ClaimError(f"claim {claim_id!r}: confidence must lie in [{lo}, {hi}], got {value!r}{suffix}")
    return v


@dataclass(frozen=True)
class Tolerance:
    """How far a measurement may stray: ``|measured - predicted| <= atol + rtol * |predicted|``.

    ``confidence`` is the coverage of the confidence intervals used by sampled measurements
    (``claim.samples``) and fitted slopes (``claim.slope``); it must lie in [0.5, 0.999].
    """

    rtol: float = 0.05
    atol: float = 0.0
    confidence: float = 0.95

    def validated(self, claim_id: str = "?") -> "Tolerance":
        """Return a copy with float fields, or raise :class:`ClaimError` naming the bad value.

        The same rules wherever a tolerance comes from (the ``tolerance`` marker, ``close()``'s
        arguments, the command line, a profile): real numbers only, finite, ``>= 0``.
        """
        return Tolerance(check_tolerance_value(claim_id, "rtol", self.rtol),
                         check_tolerance_value(claim_id, "atol", self.atol),
                         check_confidence(claim_id, self.confidence))


def _json_number(x):
    """A float for JSON: non-finite numbers become None (the message keeps the raw value)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _json_detail(x):
    """``x`` with every non-finite float replaced by None (details hold inf for a one-seed sem, ...)."""
    if isinstance(x, dict):
        return {k: _json_detail(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_detail(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass(frozen=True)
class Rival:
    """A competing (or deliberately wrong) prediction of the same quantity, judged like the prediction.

    ``verdict`` is the rival's own verdict under the measurement's tolerance and statistics: FAILS
    means the measurement rejects the rival (:attr:`ruled_out`); HOLDS or INCONCLUSIVE means the
    measurement cannot tell it apart from the prediction, and the measurement is then at best
    INCONCLUSIVE.
    """

    name: str
    predicted: float | None
    verdict: Verdict
    gap: float | None = None
    tolerance: float | None = None
    margin: float | None = None
    gap_ci: tuple[float, float] | None = None
    message: str = ""

    @property
    def ruled_out(self) -> bool:
        return self.verdict is Verdict.FAILS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "predicted": _json_number(self.predicted), "verdict": self.verdict.value,
            "ruled_out": self.ruled_out, "gap": _json_number(self.gap), "tolerance": _json_number(self.tolerance),
            "margin": _json_number(self.margin),
            "gap_ci": None if self.gap_ci is None else [_json_number(v) for v in self.gap_ci],
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Rival":
        return cls(name=d["name"], predicted=d.get("predicted"), verdict=Verdict(d["verdict"]), gap=d.get("gap"),
                   tolerance=d.get("tolerance"), margin=d.get("margin"),
                   gap_ci=tuple(d["gap_ci"]) if d.get("gap_ci") is not None else None, message=d.get("message", ""))


@dataclass(frozen=True)
class Measurement:
    """One named measurement of a claim.

    ``gap`` is how far the measurement is from the prediction, ``tolerance`` how far it may be,
    ``margin = tolerance - gap`` (>= 0 when the point estimate is within tolerance). For sampled
    and fitted quantities ``ci`` is the confidence interval of the measured value and
    ``gap_ci`` the interval the gap ranges over; the verdict is decided on the interval.
    ``rivals`` are the competing predictions judged alongside (see :class:`Rival`);
    ``warnings`` what the recorder noticed without refusing (zero variance across seeds, ...);
    ``default_tolerance`` is True when the tolerance came from the profile because the claim gave none.
    """

    name: str
    kind: str
    verdict: Verdict
    measured: float | None
    predicted: float | None
    gap: float | None
    tolerance: float | None
    margin: float | None
    rtol: float | None = None
    atol: float | None = None
    ci: tuple[float, float] | None = None
    gap_ci: tuple[float, float] | None = None
    confidence: float | None = None
    n: int | None = None
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    rivals: tuple[Rival, ...] = ()
    warnings: tuple[str, ...] = ()
    default_tolerance: bool = False

    @property
    def rivals_ruled_out(self) -> int:
        return sum(r.ruled_out for r in self.rivals)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        for key in ("measured", "predicted", "gap", "tolerance", "margin", "rtol", "atol", "confidence"):
            d[key] = _json_number(d[key])
        for key in ("ci", "gap_ci"):
            if d[key] is not None:
                d[key] = [_json_number(v) for v in d[key]]
        d["detail"] = _json_detail(d["detail"])
        d["rivals"] = [r.to_dict() for r in self.rivals]
        d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Measurement":
        d = dict(d)
        d["verdict"] = Verdict(d["verdict"])
        for key in ("ci", "gap_ci"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        d["rivals"] = tuple(Rival.from_dict(r) for r in d.get("rivals") or ())
        d["warnings"] = tuple(d.get("warnings") or ())
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class ClaimResult:
    """Everything a report needs about one claim (one parametrized case of a claim test)."""

    id: str
    nodeid: str
    verdict: Verdict
    source: str = ""
    statement: str = ""
    expect: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    base_id: str = ""
    message: str = ""
    duration_s: float = 0.0
    seed: int | None = None
    measurements: list[Measurement] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    xfail: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None

    @property
    def agrees_with_source(self) -> bool | None:
        """Whether the verdict is what the cited source predicts (None when no ``expect`` or no verdict)."""
        if self.expect is None or self.verdict not in (Verdict.HOLDS, Verdict.FAILS):
            return None
        return self.verdict.value.lower() == self.expect

    @property
    def decisive(self) -> Measurement | None:
        """The measurement that decided the verdict (:func:`decisive`)."""
        return decisive(self.measurements)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "base_id": self.base_id or self.id,
            "nodeid": self.nodeid,
            "params": self.params,
            "source": self.source,
            "statement": self.statement,
            "expect": self.expect,
            "xfail": self.xfail,
            "verdict": self.verdict.value,
            "agrees_with_source": self.agrees_with_source,
            "duration_s": round(float(self.duration_s), 6),
            "seed": self.seed,
            "message": self.message,
            "rivals": {"named": sum(len(m.rivals) for m in self.measurements),
                       "ruled_out": sum(m.rivals_ruled_out for m in self.measurements)},
            "measurements": [m.to_dict() for m in self.measurements],
            "stages": self.stages,
            "artifacts": self.artifacts,
            "settings": self.settings,
            "profile": self.profile,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClaimResult":
        return cls(
            id=d["id"],
            nodeid=d.get("nodeid", ""),
            verdict=Verdict(d["verdict"]),
            source=d.get("source", ""),
            statement=d.get("statement", ""),
            expect=d.get("expect"),
            params=d.get("params", {}) or {},
            base_id=d.get("base_id", d["id"]),
            message=d.get("message", ""),
            duration_s=float(d.get("duration_s", 0.0) or 0.0),
            seed=d.get("seed"),
            measurements=[Measurement.from_dict(m) for m in d.get("measurements", [])],
            stages=list(d.get("stages", [])),
            artifacts=list(d.get("artifacts", [])),
            xfail=d.get("xfail"),
            settings=dict(d.get("settings") or {}),
            profile=d.get("profile"),
        )
