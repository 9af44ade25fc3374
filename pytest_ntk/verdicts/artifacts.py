"""What a claim attaches besides measurements: timed stages, tables and data (the recorder's mixin).

Every attachment travels to the xdist controller and into the JSON report, so it is made
JSON-ready here (numpy scalars and arrays become numbers and lists) and refused, naming the claim,
when it cannot be; a refusal is recorded as an ERROR measurement like any other.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from typing import Any

import numpy as np

from .inputs import as_name, short
from .model import ClaimError

__all__ = ["Artifacts", "plain"]


def _strip(message: str, claim_id: str) -> str:
    return message.removeprefix(f"claim {claim_id!r}").lstrip(",: ")


class Artifacts:
    """Stages, tables and data of a claim (mixed into :class:`~pytest_ntk.verdicts.recorder.ClaimRecorder`)."""

    @contextlib.contextmanager
    def stage(self, name):
        """Time a stage of the claim (``duration_s`` per stage lands in the JSON report).

        The recorder's ``on_stage(claim id, stage, seconds)`` hears of it twice: when it starts
        (``seconds`` is None) and when it ends -- the harness shows long stages while they run.
        """
        self._check_open(f"stage {short(name)}")
        try:
            label = as_name(name, "stage name", f"claim {self.id!r}")
        except ClaimError as exc:
            self._refuse("stage", "stage", _strip(str(exc), self.id))
        if self._on_stage is not None:
            self._on_stage(self.id, label, None)
        start = time.perf_counter()
        status = "done"
        try:
            yield
        except BaseException:
            status = "broke"
            raise
        finally:
            duration = time.perf_counter() - start
            with self._lock:
                self._stages.append({"name": label, "duration_s": round(duration, 6), "status": status})
            if self._on_stage is not None:
                self._on_stage(self.id, label, duration)

    def table(self, name, columns, rows) -> None:
        """Attach a table (e.g. a paper's results table) that the reports render.

        Cells are numbers or strings; numpy scalars become Python numbers; NaN and infinities are
        kept visible as the strings ``"NaN"``, ``"inf"``, ``"-inf"`` (JSON cannot hold them).
        """
        self._check_open(f"table {short(name)}")
        where = f"claim {self.id!r}"
        try:
            label = as_name(name, "table name", where)
            columns = [str(c) for c in columns]
            rows = [[plain(v, keep_nonfinite=True) for v in row] for row in rows]
            for row in rows:
                if len(row) != len(columns):
                    raise ClaimError(f"{where}: table {label!r} row {row!r} has {len(row)} cells, "
                                     f"expected {len(columns)}")
            self._check_json(f"table {label!r}", rows)
        except ClaimError as exc:
            self._refuse("table", f"table {short(name, 40)}", _strip(str(exc), self.id))
        except Exception as exc:  # noqa: BLE001 - e.g. rows that are not iterable
            self._refuse("table", f"table {short(name, 40)}", f"table {short(name)} could not be read: "
                         f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._artifacts.append({"kind": "table", "name": label, "columns": columns, "rows": rows})

    def attach(self, name, data: Any) -> None:
        """Attach JSON-ready data (series for plots, fitted constants, ...) to the claim's report.

        numpy arrays and scalars become lists and numbers; non-finite floats become ``None``.
        """
        self._check_open(f"attachment {short(name)}")
        try:
            label = as_name(name, "attachment name", f"claim {self.id!r}")
            data = plain(data)
            self._check_json(f"attachment {label!r}", data)
        except ClaimError as exc:
            self._refuse("attach", f"attachment {short(name, 40)}", _strip(str(exc), self.id))
        with self._lock:
            self._artifacts.append({"kind": "data", "name": label, "data": data})

    def _check_json(self, what: str, data) -> None:
        # artifacts travel to the xdist controller and into the JSON report: refuse here, naming the claim,
        # rather than break the report writer at the end of the run
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ClaimError(f"claim {self.id!r}: {what} is not JSON-ready data ({exc})") from None



def plain(v, *, keep_nonfinite: bool = False):
    """JSON-ready copy of ``v``: numpy scalars and arrays become Python numbers and lists.

    Non-finite floats become ``None`` -- or, in tables (``keep_nonfinite``), the strings
    ``"NaN"``, ``"inf"`` and ``"-inf"``, so that a NaN cell reads NaN rather than blank.
    """
    if isinstance(v, dict):
        return {str(plain(k)) if not isinstance(k, str) else k: plain(x, keep_nonfinite=keep_nonfinite)
                for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x, keep_nonfinite=keep_nonfinite) for x in v]
    if isinstance(v, np.ndarray):
        return plain(v.tolist(), keep_nonfinite=keep_nonfinite)
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        if not keep_nonfinite:
            return None
        return "NaN" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v
