"""What a run ran on: time, commit, versions, device. Never imports jax itself."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["collect"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=None)
def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


@functools.lru_cache(maxsize=None)
def _versions() -> tuple[tuple[str, str | None], ...]:
    return tuple(
        (name, _version(name))
        for name in ("pytest-ntk", "pytest", "jax", "jaxlib", "numpy", "scipy", "neural-tangents")
    )


def _device() -> str:
    jax = sys.modules.get("jax")
    if jax is None:
        return "unknown (jax not loaded)"
    try:
        devs = jax.devices()
        return f"{devs[0].platform}: {devs[0].device_kind} x{len(devs)}"
    except Exception as exc:  # noqa: BLE001 - a report must not break on a device query
        return f"unknown ({type(exc).__name__})"


def collect(root: Path, profile: dict, seed: int, extra: dict | None = None) -> dict:
    """The ``run`` section of the JSON report."""
    info = {
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(root),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": dict(_versions()),
        "device": _device(),
        "profile": profile,
        "seed": seed,
    }
    info.update(extra or {})
    return info
