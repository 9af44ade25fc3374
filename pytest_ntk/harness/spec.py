"""What a claim test declares: its marker, its id, and the rule that one claim has one id.

A claim's id is the marker's id, followed for a parametrized test by its parameters:
``liu2025.protocol[variant=published,prediction=regression]``. The reports, the history and the
baseline key claims by this id, so two test cases must never share one (:func:`duplicate_ids`):
parameter values whose text collides (``1`` and ``"1"``, two lambdas, two objects with the same
repr), a literal id written like a parametrized one, or one id used by two test functions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from ..verdicts import ClaimError, ClaimResult, Verdict

__all__ = ["ClaimSpec", "claim_spec", "claim_error_payload", "duplicate_ids", "EXPECT_VALUES", "xfail_reason",
           "format_statement"]

EXPECT_VALUES = ("holds", "fails")
_MARKER_KWARGS = {"source", "statement", "expect", "expect_profiles"}


@dataclass(frozen=True)
class ClaimSpec:
    """What the ``@pytest.mark.claim`` marker of one test item says."""

    base_id: str
    id: str
    source: str
    statement: str
    expect: str | None
    params: dict[str, Any] = field(default_factory=dict)
    #: The profiles whose settings meet the source's conditions, where ``expect`` applies (None: all).
    expect_profiles: tuple[str, ...] | None = None

    def expect_under(self, profile: str | None) -> str | None:
        """What the source says will happen, under ``profile``: ``expect``, or None where the
        marker's ``expect_profiles`` leave this profile out (its settings do not meet the source's
        conditions, so the verdict neither agrees nor disagrees with the source)."""
        if self.expect_profiles is None or profile in self.expect_profiles:
            return self.expect
        return None

    def meta(self, nodeid: str, profile: str | None = None) -> dict[str, Any]:
        return {
            "nodeid": nodeid, "source": self.source, "statement": self.statement,
            "expect": self.expect_under(profile), "params": self.params, "base_id": self.base_id,
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
    expect_profiles = marker.kwargs.get("expect_profiles")
    if expect_profiles is not None:
        if isinstance(expect_profiles, str):
            expect_profiles = (expect_profiles,)
        if (not isinstance(expect_profiles, (list, tuple)) or not expect_profiles
                or not all(isinstance(p, str) and p.strip() for p in expect_profiles)):
            raise ClaimError(f"claim {base_id!r}: expect_profiles must be a profile name or a non-empty list of "
                             f"them, got {expect_profiles!r}")
        if expect is None:
            raise ClaimError(f"claim {base_id!r}: expect_profiles={list(expect_profiles)!r} without expect: "
                             "name what the source expects under those profiles")
        expect_profiles = tuple(p.strip() for p in expect_profiles)
    for key in ("source", "statement"):
        value = marker.kwargs.get(key, "")
        if not isinstance(value, str):
            raise ClaimError(f"claim {base_id!r}: {key} must be a string, got {value!r}")
    params: dict[str, Any] = {}
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        params = {str(k): _plain_param(v) for k, v in callspec.params.items()}
    claim_id = base_id
    if params:
        claim_id += "[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]"
    return ClaimSpec(
        base_id=base_id, id=claim_id, source=marker.kwargs.get("source", ""),
        statement=marker.kwargs.get("statement", ""), expect=expect, params=params,
        expect_profiles=expect_profiles,
    )


def safe_spec(item: pytest.Item) -> ClaimSpec | None:
    """The item's :class:`ClaimSpec`, or a minimal one when its marker is malformed; None for a non-claim."""
    try:
        spec = claim_spec(item)
    except ClaimError:
        spec = None
    if spec is not None:
        return spec
    marker = item.get_closest_marker("claim")
    if marker is None:
        return None
    ok = marker.args and isinstance(marker.args[0], str) and marker.args[0].strip()
    claim_id = marker.args[0].strip() if ok else item.nodeid
    return ClaimSpec(base_id=claim_id, id=claim_id, source="", statement="", expect=None)


def claim_error_payload(item: pytest.Item, message: str) -> dict[str, Any]:
    """The ERROR result of a claim that could not start (bad marker, tolerance, duplicate id).

    Keeps the case's id (``base[params]``) and metadata when the claim marker itself parses, so the
    parametrized cases of a claim stay distinct in the reports.
    """
    spec = safe_spec(item) or ClaimSpec(base_id=item.nodeid, id=item.nodeid, source="", statement="", expect=None)
    return ClaimResult(id=spec.id, verdict=Verdict.ERROR, message=message, **spec.meta(item.nodeid)).to_dict()


def _function_id(item: pytest.Item) -> str:
    """The test function's node id, without parameters."""
    if item.nodeid.endswith(item.name):
        return item.nodeid[: len(item.nodeid) - len(item.name)] + getattr(item, "originalname", item.name)
    return item.nodeid


def duplicate_ids(items) -> dict[str, str]:
    """``{nodeid: error message}`` for every claim item whose id is not its own.

    Two rules: a claim id (the marker's) belongs to one test function (its parametrized cases
    share it, nothing else); and a full id (with parameters) belongs to one test case. Each
    message names every node id involved.
    """
    by_base: dict[str, dict[str, list[str]]] = {}
    by_full: dict[str, list[str]] = {}
    for item in items:
        try:
            spec = claim_spec(item)
        except ClaimError:
            continue  # reported when the item runs
        if spec is None:
            continue
        by_base.setdefault(spec.base_id, {}).setdefault(_function_id(item), []).append(item.nodeid)
        by_full.setdefault(spec.id, []).append(item.nodeid)
    errors: dict[str, str] = {}
    for base_id, funcs in by_base.items():
        if len(funcs) > 1:
            msg = (f"claim id {base_id!r} is used by more than one test: {', '.join(sorted(funcs))}; "
                   f"claim ids must be unique")
            for nodeids in funcs.values():
                for nodeid in nodeids:
                    errors[nodeid] = msg
    for full_id, nodeids in by_full.items():
        if len(nodeids) > 1:
            msg = (f"claim id {full_id!r} is shared by {len(nodeids)} test cases: {', '.join(nodeids)}; their "
                   f"parameters (or a literal id) read the same, so their results would overwrite each other "
                   f"in the reports and the baseline. Give the parameters distinct ids (pytest.param(..., id=...) "
                   f"does not change the claim id: use distinguishable values) or rename a claim")
            for nodeid in nodeids:
                errors.setdefault(nodeid, msg)
    return errors


def xfail_reason(item: pytest.Item) -> str | None:
    """The reason of the item's ``xfail`` marker, or None (its condition is pytest's to evaluate)."""
    marker = item.get_closest_marker("xfail")
    if marker is None:
        return None
    return str(marker.kwargs.get("reason", "")) or "xfail"


_FIELD = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")


def format_statement(claim_id: str, statement: str, settings: dict[str, dict], profile: str | None) -> str:
    """A statement with ``${setting}`` fields filled from the settings the claim ran with.

    ``${profile}`` is the active profile's name; ``${widths}`` (or ``${convergence.widths}`` for a
    nested setting) a setting of the claim's suite. ``$``-braces were chosen because statements
    are full of mathematical braces (``e^{-lambda t}``, ``{1, 2}``), which stay as written. A
    field naming a setting the run does not have is a :class:`ClaimError` naming it.
    """
    if "${" not in statement:
        return statement
    values: dict[str, Any] = {}
    for suite_settings in settings.values():
        values.update(suite_settings)
    values["profile"] = profile or "?"

    def lookup(match: re.Match) -> str:
        value: Any = values
        for part in match.group(1).split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                raise ClaimError(f"claim {claim_id!r}: its statement names ${{{match.group(1)}}}, which is not a "
                                 f"setting of this run (settings: {sorted(values)})")
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return str(value)

    return _FIELD.sub(lookup, statement)
