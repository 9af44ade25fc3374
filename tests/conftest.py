"""Fixtures shared by the project's tests."""

import pytest


@pytest.fixture(autouse=True)
def _no_github_step_summary(monkeypatch):
    """The small pytest runs inside the tests must not append their summaries to a CI job's page."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
