"""The house's one direction of imports, checked on the source, folder by folder (DESIGN.md).

    pytest_ntk/plugin.py   hooks, options, fixtures (thin)      -> harness, verdicts, science (lazily)
    pytest_ntk/harness/    the run's state, profiles, suites    -> verdicts, report, science (lazily)
    pytest_ntk/report/     terminal, JSON, HTML, Markdown, ...  -> verdicts
    pytest_ntk/verdicts/   what a measurement means             -> nothing of the package
    pytest_ntk/science/    networks, kernels, training, cache   -> nothing but itself (no pytest)

- the science layer never imports pytest or any other layer of the package;
- the verdict model imports neither jax, pytest, scipy nor another layer; the reports only the verdicts;
- the harness and the plugin never import jax, scipy or the science layer at module level (a
  pytest run that has no claim never pays for them); the science layer's errors (pure Python) are
  the one exception;
- neural-tangents is imported only by ``science/oracle.py``;
- module-level imports inside the package form no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "pytest_ntk"
LAYERS = ("science", "verdicts", "report", "harness")


def _modules(folder: str | None = None):
    base = PKG / folder if folder else PKG
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "pytest_ntk" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else parts[1]


def _ids(paths):
    return [str(p.relative_to(PKG)) for p in paths]


def test_every_module_sits_in_a_layer():
    """Only the entry points live at the package's top level; everything else is in a layer folder."""
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "plugin.py", "seedcheck.py"], top
    assert sorted(p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


@pytest.mark.parametrize("path", _modules("science"), ids=_ids(_modules("science")))
def test_science_layer_stands_alone(path):
    bad = {m for m in _imports(path)
           if m.split(".")[0] in ("pytest", "_pytest", "xdist")
           or (_layer_of(m) not in (None, "science") and m.startswith("pytest_ntk."))}
    assert not bad, f"{path.relative_to(PKG)} (science layer) imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("verdicts"), ids=_ids(_modules("verdicts")))
def test_verdict_model_imports_no_other_layer(path):
    bad = {m for m in _imports(path)
           if m.split(".")[0] in ("jax", "jaxlib", "pytest", "_pytest", "scipy")
           or (m.startswith("pytest_ntk.") and _layer_of(m) != "verdicts")}
    assert not bad, f"{path.relative_to(PKG)} (verdict model) imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("report"), ids=_ids(_modules("report")))
def test_reports_read_only_the_verdict_model(path):
    bad = {m for m in _imports(path)
           if m.split(".")[0] in ("jax", "jaxlib", "pytest", "_pytest")
           or (m.startswith("pytest_ntk.") and _layer_of(m) not in ("report", "verdicts"))}
    assert not bad, f"{path.relative_to(PKG)} (report writer) imports {sorted(bad)}"


HARNESS = [*_modules("harness"), PKG / "plugin.py", PKG / "__init__.py", PKG / "__main__.py", PKG / "seedcheck.py"]


@pytest.mark.parametrize("path", HARNESS, ids=_ids(HARNESS))
def test_harness_never_imports_jax_at_load(path):
    bad = {m for m in _imports(path, top_level_only=True)
           if m.split(".")[0] in ("jax", "jaxlib", "scipy")
           or (_layer_of(m) == "science" and not m.startswith("pytest_ntk.science.errors"))}
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)} at module level"


def test_neural_tangents_only_through_the_adapter():
    offenders = [str(p.relative_to(PKG)) for p in _modules()
                 if p != PKG / "science" / "oracle.py" and any(m.split(".")[0] == "neural_tangents" for m in _imports(p))]
    assert offenders == [], f"neural_tangents imported outside pytest_ntk/science/oracle.py: {offenders}"


def test_no_import_cycle_at_module_level():
    """The package's module-level imports form a DAG (a cycle would show as a path back to a module)."""
    names = {_module_name(p): p for p in _modules()}
    graph = {}
    for name, path in names.items():
        targets = set()
        for m in _imports(path, top_level_only=True):
            while m and m not in names:  # "pkg.mod.attr" -> "pkg.mod"
                m = m.rpartition(".")[0]
            if m and m != name:
                targets.add(m)
        graph[name] = targets
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            # a package __init__ importing its own submodules is not a cycle through the submodule
            if node.startswith(nxt + ".") and names[nxt].name == "__init__.py":
                continue
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail + [node, nxt]))
            if state.get(nxt) is None:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_import_does_not_load_jax_scipy_or_numpy():
    """pytest loads the plugin in every run of every project it is installed in: it must stay light.

    The import times themselves are compared side by side in ``benchmarks/bench_import.py``; here
    the cause of a slow load is ruled out structurally (``-X importtime`` lists every module).
    """
    code = "import pytest; import pytest_ntk, pytest_ntk.plugin"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    loaded = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    # jinja2 (and its markupsafe) render the HTML report: imported when a page is written, not before
    heavy = sorted(m for m in loaded
                   if m.split(".")[0] in ("jax", "jaxlib", "scipy", "numpy", "filelock", "jinja2", "markupsafe",
                                          "flax", "equinox"))
    assert heavy == [], f"importing the plugin loads {heavy[:8]}: pytest's start-up would pay for them"
