"""The house's one direction of imports, checked on the source (DESIGN.md).

- the science layer never imports pytest, the verdict model, the plugin or the reports;
- the verdict model and the report writers never import jax;
- neural-tangents is imported only by pytest_ntk/oracle.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "pytest_ntk"
SCIENCE = ["nets.py", "empirical.py", "train.py", "predict.py", "data.py", "cache.py", "errors.py",
           "numerics.py", "oracle.py", "kernels"]
HARNESS_NO_JAX = ["verdicts", "report", "profiles.py", "session.py", "plugin.py", "seedcheck.py", "__main__.py"]


def _modules(names):
    for name in names:
        path = PKG / name
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else ([path] if path.exists() else []))


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = path.relative_to(PKG.parent).with_suffix("").parts[: -node.level]
                mod = ".".join(base + ((node.module,) if node.module else ()))
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)
            elif node.module:
                found.add(node.module)
    return found


@pytest.mark.parametrize("path", list(_modules(SCIENCE)), ids=lambda p: str(p.relative_to(PKG)))
def test_science_layer_stands_alone(path):
    bad = {m for m in _imports(path)
           if m.split(".")[0] in ("pytest", "_pytest", "xdist")
           or m.startswith(("pytest_ntk.verdicts", "pytest_ntk.plugin", "pytest_ntk.report", "pytest_ntk.session"))}
    assert not bad, f"{path.name} (science layer) imports {sorted(bad)}"


@pytest.mark.parametrize("path", list(_modules(HARNESS_NO_JAX)), ids=lambda p: str(p.relative_to(PKG)))
def test_harness_never_imports_jax(path):
    bad = {m for m in _imports(path) if m.split(".")[0] in ("jax", "jaxlib")}
    assert not bad, f"{path.name} imports {sorted(bad)}; the verdict model and reports must not need jax"


def test_neural_tangents_only_through_the_adapter():
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "oracle.py":
            continue
        if any(m.split(".")[0] == "neural_tangents" for m in _imports(path)):
            offenders.append(str(path.relative_to(PKG)))
    assert offenders == [], f"neural_tangents imported outside pytest_ntk/oracle.py: {offenders}"


def test_import_does_not_load_jax():
    import subprocess
    import sys

    code = "import sys, pytest_ntk, pytest_ntk.plugin; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "importing the plugin must not import jax (fast pytest start-up)"
