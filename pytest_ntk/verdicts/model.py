"""The verdict model: what a claim measured, what was predicted, and whether the prediction held.

Pure Python (with numpy for arrays); it never imports jax or pytest, so reports, the plugin and a
notebook can all use it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Verdict",
    "Tolerance",
    "Measurement",
    "ClaimResult",
    "ClaimFailed",
    "ClaimError",
    "combine",
]


class Verdict(str, enum.Enum):
    """The outcome of a claim, or of one of its measurements.

    HOLDS: the prediction is met within tolerance (for sampled quantities: the whole confidence
    interval of the gap lies inside the tolerance). FAILS: it is violated (the whole interval lies
    outside). INCONCLUSIVE: the interval straddles the tolerance; more seeds are needed.
    ERROR: the computation itself broke (an exception, a non-finite number, an invalid
    tolerance, no measurement at all). SKIPPED: the claim did not run (e.g. an optional
    dependency is absent); it is not a verdict on the prediction.
    """

    HOLDS = "HOLDS"
    FAILS = "FAILS"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"

    def __str__(self) -> str:
        return self.value


# Order of precedence when measurements are combined into one claim verdict.
_SEVERITY = {Verdict.HOLDS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAILS: 2, Verdict.ERROR: 3}


def combine(verdicts) -> Verdict:
    """A claim's verdict from its measurements': the most severe of ERROR > FAILS > INCONCLUSIVE > HOLDS."""
    verdicts = list(verdicts)
    if not verdicts:
        return Verdict.ERROR
    return max(verdicts, key=lambda v: _SEVERITY[v])


class ClaimFailed(AssertionError):
    """A claim's prediction was violated by a measurement (the verdict FAILS)."""


class ClaimError(ValueError):
    """A claim could not be judged: bad input (NaN, wrong shape, invalid tolerance, ...). Verdict ERROR."""


def _check_nonneg(claim_id: str, name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ClaimError(f"claim {claim_id!r}: {name} must be a number >= 0, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ClaimError(f"claim {claim_id!r}: {name} must be finite and >= 0, got {value!r}")
    return v


@dataclass(frozen=True)
class Tolerance:
    """How far a measurement may stray: ``|measured - predicted| <= atol + rtol * |predicted|``.

    ``confidence`` is the coverage of the confidence intervals used by sampled measurements
    (``claim.samples``) and fitted slopes (``claim.slope``).
    """

    rtol: float = 0.05
    atol: float = 0.0
    confidence: float = 0.95

    def validated(self, claim_id: str = "?") -> "Tolerance":
        """Return a copy with float fields, or raise :class:`ClaimError` naming the bad value."""
        rtol = _check_nonneg(claim_id, "rtol", self.rtol)
        atol = _check_nonneg(claim_id, "atol", self.atol)
        try:
            conf = float(self.confidence)
        except (TypeError, ValueError):
            conf = float("nan")
        if not (0.0 < conf < 1.0):
            raise ClaimError(
                f"claim {claim_id!r}: confidence must lie strictly between 0 and 1, got {self.confidence!r}"
            )
        return Tolerance(rtol, atol, conf)


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


@dataclass
class Measurement:
    """One named measurement of a claim.

    ``gap`` is how far the measurement is from the prediction, ``tolerance`` how far it may be,
    ``margin = tolerance - gap`` (>= 0 when the point estimate is within tolerance). For sampled
    and fitted quantities ``ci`` is the confidence interval of the measured value and
    ``gap_ci`` the interval the gap ranges over; the verdict is decided on the interval.
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        for key in ("measured", "predicted", "gap", "tolerance", "margin", "rtol", "atol", "confidence"):
            d[key] = _json_number(d[key])
        for key in ("ci", "gap_ci"):
            if d[key] is not None:
                d[key] = [_json_number(v) for v in d[key]]
        d["detail"] = _json_detail(d["detail"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Measurement":
        d = dict(d)
        d["verdict"] = Verdict(d["verdict"])
        for key in ("ci", "gap_ci"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
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

    @property
    def agrees_with_source(self) -> bool | None:
        """Whether the verdict is what the cited source predicts (None when no ``expect`` or no verdict)."""
        if self.expect is None or self.verdict not in (Verdict.HOLDS, Verdict.FAILS):
            return None
        return self.verdict.value.lower() == self.expect

    @property
    def decisive(self) -> Measurement | None:
        """The measurement that decided the verdict (the most severe; on ties the smallest margin)."""
        if not self.measurements:
            return None

        def key(m: Measurement):
            sev = _SEVERITY.get(m.verdict, 0)
            margin = m.margin if m.margin is not None else -math.inf
            return (-sev, margin)

        return sorted(self.measurements, key=key)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "base_id": self.base_id or self.id,
            "nodeid": self.nodeid,
            "params": self.params,
            "source": self.source,
            "statement": self.statement,
            "expect": self.expect,
            "verdict": self.verdict.value,
            "agrees_with_source": self.agrees_with_source,
            "duration_s": round(float(self.duration_s), 6),
            "seed": self.seed,
            "message": self.message,
            "measurements": [m.to_dict() for m in self.measurements],
            "stages": self.stages,
            "artifacts": self.artifacts,
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
        )
