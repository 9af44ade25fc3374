"""What a claim suite needs, written once: settings per profile, seed streams, cached computations.

A suite is a folder of claim files (``claims/jacot2018/``) whose ``conftest.py`` holds the suite's
settings and its expensive computations. With :class:`Suite` that conftest needs a few lines of
plumbing::

    from pytest_ntk import Suite

    SETTINGS = {"quick": {"widths": [64, 256, 1024], "seeds": 16},
                "paper": {"widths": [500, 2000, 10000], "seeds": 64}}
    suite = Suite("mysuite", __file__, SETTINGS)
    settings, _record = suite.fixtures()          # the `settings` fixture; settings noted on each claim

    @suite.computation
    def kernels(run):                              # a session fixture `kernels`, cached on disk
        s = run.settings
        return {w: my_kernels(w, seed=run.seed("kernels", w)) for w in s["widths"]}

and a claim asks for ``kernels`` (and ``settings``) as for any fixture.

- **Settings.** ``SETTINGS[profile]`` for the active profile (``--ntk-profile``; a custom profile
  falls back to its base), updated with ``[tool.pytest_ntk.profiles.NAME.<suite>]`` overrides
  from pyproject.toml (:meth:`~pytest_ntk.harness.profiles.Profile.pick`).
- **Seeds.** ``run.seed(stream, i)`` and ``run.seeds(stream, n)``: 32-bit seeds from the run's
  ``--ntk-seed``, the suite's name and the stream's name (:func:`~pytest_ntk.verdicts.derive_seed`),
  the same in every run and process, independent across streams.
- **Cached computations.** A function decorated with :meth:`Suite.computation` runs once per
  session and is stored in the run's cache (``ntk_cache``: memory, then disk) under a key of
  everything it depends on: the suite, the function, the settings it uses (``uses=``: some
  top-level keys; default all), the base seed, its arguments, and a digest of the recipe files
  (the conftest; editing it recomputes). The cache also stamps the entry with the function's own
  code. A computation that takes arguments besides ``run`` becomes a fixture whose value is a
  function of those arguments (each combination cached on its own).
- **Statements that follow the profile.** Each claim of the suite records the settings it ran
  with (the JSON report's ``settings``); its marker's ``statement`` may name them as
  ``${widths}`` or ``${convergence.widths}`` -- ``"... at widths ${widths} (${profile} profile)"``
  -- and the report shows the statement with the active profile's values, never a hard-coded
  profile (mathematical braces such as ``e^{-lambda t}`` stay as written).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ..verdicts import derive_seed

__all__ = ["Suite", "SuiteRun"]

_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")


def _digest(paths: Sequence[Path]) -> str:
    """The recipe's digest: of each Python file's code (its syntax tree without docstrings, so that
    editing a comment or a docstring keeps the cache), of any other file's bytes."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + _code_of(p) + b"\0")
    return h.hexdigest()[:16]


def _code_of(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix != ".py":
        return data
    import ast

    try:
        tree = ast.parse(data, filename=str(path))
    except SyntaxError:
        return data
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False).encode()


class SuiteRun:
    """One run's view of a suite: its active settings, seeds and cache (what computations receive)."""

    def __init__(self, suite: "Suite", settings: dict, *, profile: str, base_seed: int, cache):
        self.suite = suite
        self.settings = settings
        self.profile = profile
        self.base_seed = int(base_seed)
        self.cache = cache

    def __repr__(self) -> str:
        return f"<SuiteRun {self.suite.name!r}, profile {self.profile!r}, seed {self.base_seed}>"

    def seed(self, stream: str, index: int = 0) -> int:
        """A 32-bit seed for ``stream`` (``"trial"``, ``"init/width=256"``...) and ``index``."""
        return derive_seed(self.base_seed, f"{self.suite.name}/{stream}", int(index))

    def seeds(self, stream: str, n: int) -> list[int]:
        """``n`` independent seeds of ``stream`` (indices 0..n-1)."""
        return [self.seed(stream, i) for i in range(int(n))]

    def advance(self, done: int, total: int, what: str = "") -> None:
        """Report that ``done`` of ``total`` parts of a long computation are finished: the running
        stage shows the count and an estimate of the time left (:func:`pytest_ntk.harness.progress.advance`)."""
        from .progress import advance

        advance(done, total, what)

    def key(self, what: str, **inputs) -> dict[str, Any]:
        """A cache key naming the suite, its recipe, the base seed, ``what`` and ``inputs``."""
        return {"suite": self.suite.name, "recipe": self.suite.recipe, "seed": self.base_seed, "what": what, **inputs}

    def cached(self, key: Mapping[str, Any], compute: Callable[[], Any], *, name: str = "",
               code: Callable | None = None) -> Any:
        """``compute()`` through the run's cache under ``key`` (use :meth:`key` to build it).

        ``code``: the function whose code stamps the entry (default ``compute``). Runs on one BLAS
        thread when the suite asks for it (``Suite(..., single_threaded_blas=True)``).
        """

        def run():
            with self.suite._threads():
                return compute()

        return self.cache.get_or_compute(dict(key), run, name=self.suite._cache_name(name), code=code or compute)


class Suite:
    """A claim suite's plumbing (see the module docstring).

    Args:
        name: the suite's name: pyproject overrides go under ``[tool.pytest_ntk.profiles.P.<name>]``;
            seeds and cache keys are named after it.
        recipe: the file(s) whose content keys every cached computation (pass the conftest's
            ``__file__``; add helper modules the computations call).
        settings: ``{profile name: {key: value}}`` (at least ``quick``).
        single_threaded_blas: run the computations' numpy/scipy linear algebra on one thread
            (bit-identical dense solves whatever the machine's load; see
            :func:`pytest_ntk.science.numerics.single_threaded_blas`).
    """

    def __init__(self, name: str, recipe: str | Path | Sequence[str | Path], settings: Mapping[str, Mapping[str, Any]],
                 *, single_threaded_blas: bool = False):
        if not isinstance(name, str) or not name or _NAME_RE.search(name):
            raise ValueError(f"Suite: name must be letters, digits, '_', '.', '-', got {name!r}")
        if not isinstance(settings, Mapping) or not settings or not all(isinstance(v, Mapping) for v in settings.values()):
            raise ValueError(f"Suite {name!r}: settings must map profile names to dicts of settings")
        paths = [Path(recipe)] if isinstance(recipe, (str, Path)) else [Path(p) for p in recipe]
        self.name = name
        self.settings_table = {k: dict(v) for k, v in settings.items()}
        self.recipe_files = paths
        self.recipe = _digest(paths)
        self.single_threaded_blas = bool(single_threaded_blas)
        self._runs: dict[int, SuiteRun] = {}

    def __repr__(self) -> str:
        return f"<Suite {self.name!r}, profiles {sorted(self.settings_table)}>"

    # ------------------------------------------------------------------ settings
    def settings_for(self, config: pytest.Config) -> dict[str, Any]:
        """The active profile's settings (also at collection time, e.g. in ``pytest_generate_tests``)."""
        from .session import session_of

        return session_of(config).profile.pick(self.settings_table, suite=self.name)

    def run(self, config: pytest.Config) -> SuiteRun:
        """This session's :class:`SuiteRun` (one per config)."""
        from .session import session_of

        run = self._runs.get(id(config))
        if run is None or run.cache is not session_of(config).cache:
            ntk = session_of(config)
            run = SuiteRun(self, self.settings_for(config), profile=ntk.profile.name, base_seed=ntk.base_seed,
                           cache=ntk.cache)
            self._runs[id(config)] = run
        return run

    # ------------------------------------------------------------------ fixtures
    def fixtures(self, settings_name: str = "settings"):
        """``(settings fixture, autouse recorder)``: bind both to module-level names of the conftest.

        ``settings`` (session scope) is the active profile's settings dict. The autouse fixture
        notes those settings, and the profile, on every claim of the suite's folder.
        """
        suite = self

        @pytest.fixture(scope="session", name=settings_name)
        def settings_fixture(request: pytest.FixtureRequest) -> dict[str, Any]:
            return suite.run(request.config).settings

        settings_fixture.__doc__ = f"The active profile's settings of the {self.name} suite."

        @pytest.fixture(autouse=True, name=f"_ntk_suite_{self.name.replace('.', '_').replace('-', '_')}")
        def record(request: pytest.FixtureRequest):
            from .session import session_of

            recorder = session_of(request.config).recorder_of(request.node)
            if recorder is not None:
                run = suite.run(request.config)
                recorder.note_settings(suite.name, run.settings, profile=run.profile)
            yield

        return settings_fixture, record

    def computation(self, fn: Callable | None = None, *, uses: str | Sequence[str] | None = None,
                    name: str | None = None):
        """Decorate ``fn(run, *args)`` into a session fixture of its cached value (module docstring).

        ``uses``: the top-level settings keys the value depends on (default: all of them; naming
        fewer lets an edit of another setting keep this value). ``name``: the fixture's name
        (default: the function's).
        """
        if fn is None:
            return functools.partial(self.computation, uses=uses, name=name)
        suite = self
        extra = list(inspect.signature(fn).parameters)[1:]
        keys = [uses] if isinstance(uses, str) else (list(uses) if uses is not None else None)

        def value(run: SuiteRun, *args):
            s = run.settings if keys is None else {k: run.settings[k] for k in keys}
            key = run.key(fn.__qualname__, settings=s, args=list(args))
            return run.cached(key, lambda: fn(run, *args), name=fn.__name__, code=fn)

        @pytest.fixture(scope="session", name=name or fn.__name__)
        def fixture(request: pytest.FixtureRequest):
            run = suite.run(request.config)
            if not extra:
                return value(run)

            @functools.wraps(fn)
            def call(*args):
                return value(run, *args)

            return call

        fixture.__doc__ = fn.__doc__
        fixture.__wrapped_computation__ = fn
        return fixture

    # ------------------------------------------------------------------ internals
    def _cache_name(self, name: str) -> str:
        full = _NAME_RE.sub("_", f"{self.name}_{name}" if name else self.name)
        return full[:64]

    def _threads(self):
        if not self.single_threaded_blas:
            return contextlib.nullcontext()
        from ..science.numerics import single_threaded_blas

        return single_threaded_blas()
