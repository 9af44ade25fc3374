"""How a claim's verdict becomes pytest's outcome for its test, and what travels in the junit XML.

The verdict is the truth; pytest's outcome is set from it, never the other way round:

==============  ===========================================================================
verdict         pytest outcome of the call
==============  ===========================================================================
HOLDS           passed (with an ``xfail`` marker: pytest's XPASS, failed when ``strict``)
FAILS           failed -- or xfailed in an audit (``--ntk-audit``), when the source expects it
                (``expect="fails"``) or when the test carries an ``xfail`` marker
INCONCLUSIVE    xfailed (neither passes nor fails a prediction)
ERROR           failed, always (an ``xfail`` marker, ``pytest.xfail()`` or ``pytest.skip()``
                after the error does not change that)
SKIPPED         skipped (the claim did not run, e.g. an optional dependency is absent)
==============  ===========================================================================

``pytest.skip()`` or ``pytest.xfail()`` called inside a claim after a measurement FAILS or
ERRORs does not hide it: the recorded verdict stands and maps as above. Called before any such
measurement, they make the claim SKIPPED (not HOLDS: the claim did not finish).
"""

from __future__ import annotations

import pytest

from ..science.errors import OptionalDependencyMissing
from ..verdicts import ClaimResult, Verdict

__all__ = ["classify", "apply", "skip_reason", "set_junit_properties", "junit_properties", "usage_error"]


def usage_error(item: pytest.Item, exc: BaseException) -> str:
    """A claim that cannot start (a malformed marker, a bad tolerance): the message and the user's
    own lines -- the test's decorators and ``def`` -- instead of the plugin's frames."""
    import linecache

    where = f"{item.location[0]}:{item.location[1] + 1}"
    lines: list[str] = []
    fn = getattr(item, "function", None)
    code = getattr(fn, "__code__", None)
    if code is not None:
        first = code.co_firstlineno  # the first decorator's line
        path = code.co_filename
        where = f"{item.location[0]}:{first}"
        for lineno in range(first, first + 40):
            text = linecache.getline(path, lineno)
            if not text:
                break
            lines.append(f"{lineno:>5} | {text.rstrip()}")
            if text.lstrip().startswith(("def ", "async def ")):
                break
    body = "\n".join(lines)
    return f"{where}: {type(exc).__name__}: {exc}" + (f"\n{body}" if body else "")


def skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def classify(call: pytest.CallInfo, report) -> tuple[BaseException | None, str | None, bool]:
    """``(error, skipped reason, imperative xfail)`` of a claim's call phase.

    An optional dependency that is missing, ``pytest.skip()`` and ``pytest.xfail()`` inside the
    test end it without a verdict (``skipped``); any other exception is the claim's error.
    """
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, OptionalDependencyMissing):
        return None, str(exc), False
    if isinstance(exc, pytest.xfail.Exception):
        return None, f"pytest.xfail() inside the claim: {exc.msg or 'no reason'}", True
    if isinstance(exc, pytest.skip.Exception):
        return None, str(exc.msg or "skipped"), False
    return exc, None, False


def apply(report, result: ClaimResult, *, audit: bool, marked_xfail: bool, item: pytest.Item) -> None:
    """Set the call report's outcome from the verdict (the table in the module docstring)."""
    verdict = result.verdict
    message = f"claim {result.id!r}: {result.message}"

    def failed():
        if hasattr(report, "wasxfail"):
            del report.wasxfail
        if report.outcome != "failed" or not report.longrepr:
            report.longrepr = message
        report.outcome = "failed"

    def xfailed():
        report.outcome = "skipped"
        report.wasxfail = result.message or verdict.value

    if verdict is Verdict.ERROR:
        failed()
    elif verdict is Verdict.FAILS:
        if audit or result.expect == "fails" or marked_xfail:
            xfailed()
        else:
            failed()
    elif verdict is Verdict.INCONCLUSIVE:
        xfailed()
    elif verdict is Verdict.SKIPPED:
        if hasattr(report, "wasxfail"):
            del report.wasxfail
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1], f"Skipped: {result.message}")
    # HOLDS: pytest's own outcome stands (passed, or XPASS / strict XPASS under an xfail marker)


def junit_properties(payload: dict) -> list[tuple[str, str]]:
    """``ntk.*`` user properties of a claim (``--junitxml`` writes them as <property> elements)."""
    props = [("ntk.id", payload["id"]), ("ntk.verdict", payload["verdict"])]
    for m in payload["measurements"]:
        for key in ("measured", "predicted", "gap", "tolerance", "margin"):
            if m.get(key) is not None:
                props.append((f"ntk.{m['name']}.{key}", repr(m[key])))
        if m.get("ci"):
            props.append((f"ntk.{m['name']}.ci", repr(m["ci"])))
        for r in m.get("rivals") or ():
            props.append((f"ntk.{m['name']}.rival.{r['name']}", r["verdict"]))
    return props


def set_junit_properties(report, item: pytest.Item, payload: dict) -> None:
    """Replace the claim's ``ntk.*`` properties on the report and the item (junitxml reads the item's
    at teardown), so a verdict corrected at teardown is the one in the XML."""
    props = junit_properties(payload)
    for holder in (report.user_properties, item.user_properties):
        holder[:] = [p for p in holder if not str(p[0]).startswith("ntk.")] + props
