"""pytest-ntk as a new user gets it: the built wheel in a fresh virtual environment, no repository.

The test builds the wheel with ``uv build``, creates a virtual environment outside the repository
with ``uv venv``, installs the wheel there with ``uv pip install`` and runs pytest on a small
user project (``tests/install_project``: a ``pyproject.toml`` and ``claims/test_mine.py``, copied
to a temporary directory without any conftest of this repository). The plugin can then only come
from the wheel's ``pytest11`` entry point, its report assets only from the wheel's package data,
and the user's profile only from the user's ``pyproject.toml``.

Twice: with the versions of ``uv.lock`` (``uv export`` as constraints) and with the newest jax and
jaxlib on PyPI. neural-tangents (the oracle, a dev dependency here) must be in neither: the package
must work without it.

Needs ``uv`` and PyPI (the uv cache makes the second environment and later runs fast). Marked
``install``: ``-m "not install"`` leaves it out of a quick local run; CI runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import pytest_ntk

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[1]
PROJECT = Path(__file__).resolve().parent / "install_project"

# `uv run` exports the uv that runs it as $UV; otherwise the one on PATH.
UV = os.environ.get("UV") or shutil.which("uv")

EXPECTED = {
    "mine.ntk_mean": "HOLDS",
    "mine.nngp_psd": "HOLDS",
    "mine.gp_vs_ntk[depth=1]": "FAILS",
    "mine.gp_vs_ntk[depth=2]": "FAILS",
}

# Nothing of this repository's environment may leak into the user's: no virtual environment,
# no import path, no pytest options or plugins, no CI summary file, no pytest-ntk settings.
_LEAKS = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS", "PYTEST_PLUGINS",
          "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "GITHUB_STEP_SUMMARY", "UV_PROJECT_ENVIRONMENT", "CONDA_PREFIX")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKS and not k.startswith("NTK_")}
    venv_bin = str(Path(sys.prefix) / "bin")  # this repository's .venv: not on the user's PATH
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def _run(args, *, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} (in {cwd}) exited {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}")
    return proc


def _outside_repo(path: Path) -> Path:
    assert not path.resolve().is_relative_to(REPO), f"{path} must lie outside the repository {REPO}"
    return path


@pytest.fixture(scope="module")
def uv() -> str:
    if not UV:
        reason = "uv is not on PATH: the wheel-install test builds and installs with uv (python -m pip install uv)"
        if os.environ.get("CI"):  # .ci/run and the workflow install uv: there its absence is a broken set-up
            pytest.fail(reason)
        pytest.skip(reason)
    return UV


@pytest.fixture(scope="module")
def wheel(uv, tmp_path_factory) -> Path:
    dist = _outside_repo(tmp_path_factory.mktemp("dist"))
    _run([uv, "build", "--wheel", "--out-dir", dist, REPO], cwd=dist, timeout=180)
    (whl,) = dist.glob("pytest_ntk-*.whl")
    return whl


@pytest.fixture(scope="module")
def lock_constraints(uv, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """uv.lock's runtime dependencies (no dev group: no neural-tangents) as a constraints file."""
    path = _outside_repo(tmp_path_factory.mktemp("lock")) / "constraints.txt"
    _run([uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
          "--output-file", path], cwd=REPO)
    pins = {}  # the pins that apply to this Python (the venv's interpreter is this one)
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            pins[canonicalize_name(req.name)] = spec.version
    assert "jax" in pins and "jaxlib" in pins, path.read_text()
    assert "neural-tangents" not in pins, "the exported runtime lock must not contain the oracle"
    return path, pins


def _installed(uv: str, python: Path, cwd: Path) -> dict[str, str]:
    out = _run([uv, "pip", "list", "--python", python, "--format", "json"], cwd=cwd).stdout
    return {canonicalize_name(p["name"]): p["version"] for p in json.loads(out)}


@pytest.mark.parametrize("jax_from", ["lock", "newest"])
def test_wheel_in_fresh_venv_runs_user_claims(jax_from, uv, wheel, lock_constraints, tmp_path):
    base = _outside_repo(tmp_path)
    venv = base / "venv"
    python = venv / "bin" / "python"
    _run([uv, "venv", "--no-project", "--python", sys.executable, venv], cwd=base)

    constraints, pins = lock_constraints
    install = [uv, "pip", "install", "--python", python, wheel]
    if jax_from == "lock":
        install += ["--constraints", constraints]
    else:  # the newest jax/jaxlib on PyPI (revalidate uv's cached index pages for them)
        install += ["--upgrade-package", "jax", "--upgrade-package", "jaxlib",
                    "--refresh-package", "jax", "--refresh-package", "jaxlib"]
    _run(install, cwd=base)

    installed = _installed(uv, python, base)
    assert installed.get("pytest-ntk") == pytest_ntk.__version__, installed
    assert "neural-tangents" not in installed, f"neural-tangents must not be installed: {installed}"
    if jax_from == "lock":
        for name in ("jax", "jaxlib", "pytest", "numpy", "scipy"):
            assert installed[name] == pins[name], (name, installed[name], pins[name])
    else:
        assert Version(installed["jax"]) >= Version(pins["jax"]), (installed["jax"], pins["jax"])
    print(f"[{jax_from}] jax {installed['jax']}, jaxlib {installed['jaxlib']} "
          f"(uv.lock: jax {pins['jax']}), numpy {installed['numpy']}, pytest {installed['pytest']}")

    # the user's project: their pyproject.toml and claims, no conftest of this repository
    project = base / "project"
    project.mkdir()
    shutil.copy(PROJECT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(PROJECT / "claims", project / "claims", ignore=shutil.ignore_patterns("__pycache__"))
    assert not list(project.rglob("conftest.py"))

    where = _run([python, "-c", "import pytest_ntk; print(pytest_ntk.__file__)"], cwd=project).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), f"pytest_ntk imported from {where}, not the venv"

    proc = subprocess.run(
        [str(python), "-m", "pytest", "claims/", "--ntk-json", "out.json", "--ntk-html", "out.html",
         "--ntk-markdown", "out.md", "-p", "no:cacheprovider", "-v"],
        cwd=project, env=_env(), capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    # audit mode (the user's ini): the FAILS are findings (xfailed), the run passes
    assert proc.returncode == 0, output[-8000:]
    # registered through the pytest11 entry point: pytest lists it among the installed plugins
    assert "ntk-0.1.0" in next((ln for ln in output.splitlines() if ln.startswith("plugins:")), ""), output[:3000]
    assert "NTK claims: 2 HOLDS, 2 FAILS" in output, output[-8000:]

    report = json.loads((project / "out.json").read_text())
    assert report["complete"] is True
    assert {c["id"]: c["verdict"] for c in report["claims"]} == EXPECTED
    run = report["run"]
    assert run["profile"]["name"] == "tiny" and run["profile"]["rtol"] == 0.1  # the user's pyproject profile
    assert run["audit"] is True
    assert run["versions"]["jax"] == installed["jax"]
    assert not run["versions"].get("neural-tangents"), run["versions"]
    by_id = {c["id"]: c for c in report["claims"]}
    (m,) = by_id["mine.ntk_mean"]["measurements"]
    assert m["tolerance"] == pytest.approx(0.1 * abs(m["predicted"]))  # the profile's rtol via `tolerance`
    assert [(r["name"], r["ruled_out"]) for r in m["rivals"]] == [("NNGP instead of NTK", True)]
    (m,) = by_id["mine.gp_vs_ntk[depth=1]"]["measurements"]
    assert m["rtol"] == 0.05  # the tolerance marker beats the profile

    # the HTML inlines the wheel's package data (report.css, report.js)
    html = (project / "out.html").read_text()
    for asset in ("report.css", "report.js"):
        text = (REPO / "pytest_ntk" / "report" / "assets" / asset).read_text().strip()
        assert text[:200] in html, f"{asset} is not in the HTML report: missing from the wheel?"
    assert "mine.gp_vs_ntk" in (project / "out.md").read_text()
