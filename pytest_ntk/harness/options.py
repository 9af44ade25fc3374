"""Reading pytest's configuration: the only place outside ``plugin.py`` that knows pytest's ``config``.

The science layer (the cache) and the report writers (publish, baseline scope) take plain values;
this module turns the ``--ntk-*`` options and ini keys into those values, and refuses bad ones at
start with a :class:`pytest.UsageError` naming the option and the value, before any claim runs.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import pytest

from ..verdicts.model import CONFIDENCE_RANGE, SEED_RANGE

__all__ = ["tolerance_option", "base_seed", "output_path", "check_outputs", "publish_options", "scope",
           "cache_directory"]


def tolerance_option(config, opt: str, ini: str):
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
    lo, hi = CONFIDENCE_RANGE
    if opt == "ntk_confidence" and not lo <= v <= hi:
        raise pytest.UsageError(f"pytest-ntk: {origin} must lie in [{lo}, {hi}], got {value!r}")
    return v


def base_seed(config) -> int:
    """``--ntk-seed`` (else ini ``ntk_seed``, else 0), refused outside ``[0, 2**32 - 1]`` (no aliasing)."""
    seed = config.getoption("ntk_seed")
    origin = "--ntk-seed"
    if seed is None:
        raw = config.getini("ntk_seed")
        origin = "ini key ntk_seed"
        try:
            seed = int(raw) if raw not in (None, "") else 0
        except ValueError:
            raise pytest.UsageError(f"pytest-ntk: ini key ntk_seed must be an integer, got {raw!r}") from None
    lo, hi = SEED_RANGE
    if not lo <= int(seed) <= hi:
        raise pytest.UsageError(
            f"pytest-ntk: {origin} must lie in [0, 2**32 - 1] = [{lo}, {hi}], got {seed!r} (seeds are derived in "
            f"32 bits: a larger value would silently give the seeds of a smaller one)")
    return int(seed)


def output_path(config, opt: str) -> str | None:
    """The option's path made absolute against the directory pytest was started from (or None)."""
    raw = config.getoption(opt)
    if not raw:
        return None
    return str(Path(config.invocation_params.dir, os.path.expanduser(str(raw))))


def _writable_file(flag: str, path: str) -> None:
    p = Path(path)
    if p.is_dir():
        raise pytest.UsageError(f"pytest-ntk: {flag} {path} is a directory; give a file path")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=p.parent)
        os.close(fd)
        os.unlink(probe)
        if p.exists() and not os.access(p, os.W_OK):
            raise PermissionError(f"{path} is read-only")
    except OSError as exc:
        raise pytest.UsageError(f"pytest-ntk: {flag} {path} cannot be written: {exc}") from None


def _writable_dir(flag: str, path: str) -> None:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise pytest.UsageError(f"pytest-ntk: {flag} {path} is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise pytest.UsageError(f"pytest-ntk: {flag} {path} cannot be written: {exc}") from None


def check_outputs(config) -> None:
    """Refuse, at start, any report path the run could not write at its end (a usage error, no claim run)."""
    for opt, flag in (("ntk_json", "--ntk-json"), ("ntk_html", "--ntk-html"), ("ntk_markdown", "--ntk-markdown")):
        path = output_path(config, opt)
        if path:
            _writable_file(flag, path)
    history = output_path(config, "ntk_history")
    if history:
        _writable_dir("--ntk-history", history)
    base = output_path(config, "ntk_baseline")
    if config.getoption("ntk_baseline_update"):
        if not base:
            raise pytest.UsageError("pytest-ntk: --ntk-baseline-update needs --ntk-baseline FILE")
        _writable_file("--ntk-baseline", base)


# Selection options that narrow a run so that an absent claim may simply not have been selected.
_NARROWING = (("keyword", "-k"), ("markexpr", "-m"), ("deselect", "--deselect"), ("lf", "--lf"),
              ("stepwise", "--sw"), ("ignore", "--ignore"), ("ignore_glob", "--ignore-glob"))


def scope(config):
    """The run's scope (a :class:`~pytest_ntk.report.baseline.Scope`): its path arguments as
    rootdir-relative node-id prefixes, and any narrowing option."""
    from ..report import baseline as _baseline  # loaded at the end of the run, not with the plugin

    narrowed = []
    for dest, flag in _NARROWING:
        value = getattr(config.option, dest, None)
        if value:
            narrowed.append(flag)
    root = Path(config.rootpath).resolve()
    invocation = Path(config.invocation_params.dir)
    paths = []
    for arg in config.args:
        path_part, sep, rest = str(arg).partition("::")
        try:
            rel = (invocation / path_part).resolve().relative_to(root).as_posix()
        except ValueError:
            narrowed.append(f"path outside the rootdir: {arg}")
            continue
        rel = "" if rel == "." else rel
        paths.append(rel + (sep + rest if sep else ""))
    return _baseline.Scope(paths=tuple(paths) if paths else None, narrowed_by=tuple(narrowed))


def publish_options(config):
    """What the run publishes at its end (:class:`pytest_ntk.report.publish.Options`)."""
    from ..report.publish import Options

    options = Options(
        html=output_path(config, "ntk_html"),
        markdown=output_path(config, "ntk_markdown"),
        history=output_path(config, "ntk_history"),
        baseline=output_path(config, "ntk_baseline"),
        baseline_update=bool(config.getoption("ntk_baseline_update")),
        step_summary=os.environ.get("GITHUB_STEP_SUMMARY") or None,
    )
    if options.baseline:
        options.scope = scope(config)
    return options


def cache_directory(config) -> tuple[Path | None, bool]:
    """``(directory, enabled)`` of the run's cache of trained networks and kernels.

    ``--ntk-no-cache``: disabled. ``--ntk-cache-dir DIR``: DIR (relative to the directory pytest was
    invoked from). Otherwise ``config.cache.mkdir("ntk")`` -- inside pytest's cache directory,
    shared by the xdist workers of a rootdir and emptied by ``--cache-clear`` -- or memory only
    when pytest's cache provider is disabled (``-p no:cacheprovider``).
    """
    if config.getoption("ntk_no_cache"):
        return None, False
    raw = output_path(config, "ntk_cache_dir")
    if raw:
        return Path(raw), True
    provider = getattr(config, "cache", None)
    if provider is None:
        return None, True
    return Path(provider.mkdir("ntk")), True


def clear_cache_at_start(config) -> int:
    """``--cache-clear`` with ``--ntk-cache-dir``: empty that directory once, in the controller.

    pytest clears its own cache directory (the cache's default home) by itself; an xdist worker
    (``config.workerinput`` exists) must not, or it would delete what the other workers just wrote.
    """
    if hasattr(config, "workerinput") or config.getoption("ntk_no_cache"):
        return 0
    try:
        requested = config.getoption("cacheclear")
    except (ValueError, AttributeError):  # the cacheprovider plugin is disabled
        return 0
    directory = output_path(config, "ntk_cache_dir")
    if not requested or not directory:
        return 0
    from ..science.cache import clear_entries

    return clear_entries(directory)
