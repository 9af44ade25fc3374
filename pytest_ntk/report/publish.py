"""After a run: write the optional reports (HTML, Markdown, history) and apply the baseline gate.

Placeholder wiring; the writers are filled in by the reports work (issue 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PublishOutcome", "publish"]


@dataclass
class PublishOutcome:
    notes: list[str] = field(default_factory=list)
    gate_failed: bool = False


def publish(config, report: dict) -> PublishOutcome:
    """Write what the options ask for; return terminal notes and whether the baseline gate fired."""
    return PublishOutcome()
