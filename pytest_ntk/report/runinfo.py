"""What a run ran on: time, commit, command, machine, versions, device. Never imports jax itself."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import shlex
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


def command(args) -> str:
    """The pytest command line of the run (``pytest`` plus its arguments, shell-quoted)."""
    return shlex.join(["pytest", *[str(a) for a in args]])


@functools.lru_cache(maxsize=None)
def machine() -> dict:
    """The CPU (model name from ``/proc/cpuinfo`` where there is one), its usable cores and memory."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        memory_gb = None
    return {"cpu": model, "cores": cores, "memory_gb": memory_gb, "arch": platform.machine()}


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
