"""Profiles: built-in quick/paper, custom profiles from pyproject.toml, ``pick`` and ``--ntk-profile``."""

from __future__ import annotations

import json

import pytest

from pytest_ntk.harness.profiles import BUILTIN, ProfileError, load_profiles
from pytest_ntk.verdicts import Tolerance

SUITE = {"quick": {"nn_width": 100, "epochs": 5}, "paper": {"nn_width": 4096, "epochs": 500}}

CUSTOM = """
[tool.pytest_ntk.profiles.medium]
base = "quick"
rtol = 0.2
description = "between quick and paper"
[tool.pytest_ntk.profiles.medium.liu2025]
nn_width = 2000

[tool.pytest_ntk.profiles.big]
base = "medium"
atol = 0.001
[tool.pytest_ntk.profiles.big.liu2025]
epochs = 50

[tool.pytest_ntk.profiles.gpu]
base = "paper"
confidence = 0.99
"""

# inner sessions need neither the cache nor hypothesis' plugin (which would re-import hypothesis,
# assertion-rewritten, in every in-process run: pytester drops modules a run imported)
INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def write(tmp_path, text):
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def test_builtin_profiles():
    assert {"quick", "paper"} <= set(BUILTIN)
    assert BUILTIN["quick"].tolerance == Tolerance(0.05, 0.0, 0.95)
    assert BUILTIN["quick"].pick(SUITE) == {"nn_width": 100, "epochs": 5}
    assert BUILTIN["paper"].pick(SUITE) == {"nn_width": 4096, "epochs": 500}
    assert load_profiles(None) == BUILTIN
    assert load_profiles(__import__("pathlib").Path("/nonexistent/pyproject.toml")) == BUILTIN


def test_custom_profile_falls_back_to_its_base_and_applies_suite_overrides(tmp_path):
    profiles = load_profiles(write(tmp_path, CUSTOM))
    medium = profiles["medium"]
    assert medium.tolerance == Tolerance(0.2, 0.0, 0.95)  # atol, confidence from quick
    assert medium.description == "between quick and paper"
    assert medium.pick(SUITE, suite="liu2025") == {"nn_width": 2000, "epochs": 5}
    assert medium.pick(SUITE) == {"nn_width": 100, "epochs": 5}  # no suite: no override
    assert medium.pick(SUITE, suite="other") == {"nn_width": 100, "epochs": 5}
    # a suite that has its own entry for the custom profile is used as is
    assert medium.pick({**SUITE, "medium": {"nn_width": 7}}, suite="liu2025") == {"nn_width": 2000}
    gpu = profiles["gpu"]
    assert gpu.tolerance == Tolerance(0.05, 0.0, 0.99)
    assert gpu.pick(SUITE) == {"nn_width": 4096, "epochs": 500}
    assert medium.to_dict() == {"name": "medium", "base": "quick", "rtol": 0.2, "atol": 0.0, "confidence": 0.95}
    # picking never mutates the suite's table
    medium.pick(SUITE, suite="liu2025")["epochs"] = -1
    assert SUITE["quick"] == {"nn_width": 100, "epochs": 5}


def test_profile_based_on_a_custom_profile_inherits_along_the_chain(tmp_path):
    big = load_profiles(write(tmp_path, CUSTOM))["big"]
    assert big.tolerance == Tolerance(0.2, 0.001, 0.95)
    assert big.lineage == ["big", "medium", "quick"]
    # settings come from quick (via medium), then medium's and big's own liu2025 overrides
    assert big.pick(SUITE, suite="liu2025") == {"nn_width": 2000, "epochs": 50}


def test_redefining_a_builtin_profile(tmp_path):
    quick = load_profiles(write(tmp_path, "[tool.pytest_ntk.profiles.quick]\nrtol = 0.1\n"))["quick"]
    assert quick.tolerance == Tolerance(0.1, 0.0, 0.95) and quick.base is None
    assert quick.pick(SUITE) == SUITE["quick"]


@pytest.mark.parametrize(
    "text, match",
    [
        ('[tool.pytest_ntk.profiles.x]\nbase = "huge"\n', "unknown base 'huge'"),
        ("[tool.pytest_ntk.profiles.x]\nrtol = -0.5\n", "rtol"),
        ("[tool.pytest_ntk.profiles.x]\nconfidence = 1.0\n", "confidence"),
        ("[tool.pytest_ntk]\nprofiles = {x = 3}\n", "must be a table"),
        ("[tool.pytest_ntk.profiles.x]\nrtl = 0.1\n", r"unknown key\(s\) \['rtl'\].*profiles\.x\.SUITE"),
    ],
)
def test_malformed_profiles(tmp_path, text, match):
    with pytest.raises(ProfileError, match=match) as info:
        load_profiles(write(tmp_path, text))
    assert "pyproject.toml" in str(info.value)


def test_pick_without_settings_for_the_profile():
    with pytest.raises(ProfileError, match=r"profile 'paper'.*known: \['quick'\]"):
        BUILTIN["paper"].pick({"quick": {"n": 1}})


# ---------------------------------------------------------------------------- through pytest
PROFILE_CLAIM = """
import pytest

SETTINGS = {"quick": {"nn_width": 100, "epochs": 5}, "paper": {"nn_width": 4096, "epochs": 500}}

@pytest.mark.claim("prof.claim")
def test_claim(claim, ntk_profile, tolerance):
    claim.attach("profile", {"name": ntk_profile.name, "settings": ntk_profile.pick(SETTINGS, suite="liu2025"),
                             "rtol": tolerance.rtol})
    claim.close(1.0, 1.0)
"""


def _profile_run(pytester, *args):
    path = pytester.path / "ntk.json"
    result = pytester.runpytest(*INNER, f"--ntk-json={path}", *args)
    report = json.loads(path.read_text())
    (claim,) = report["claims"]
    return result, report, claim["artifacts"][0]["data"]


def test_default_and_selected_profiles(pytester):
    pytester.makepyfile(test_prof=PROFILE_CLAIM)
    _, report, data = _profile_run(pytester)
    assert data == {"name": "quick", "settings": {"nn_width": 100, "epochs": 5}, "rtol": 0.05}
    assert report["run"]["profile"]["name"] == "quick"
    _, report, data = _profile_run(pytester, "--ntk-profile=paper")
    assert data["name"] == "paper" and data["settings"] == {"nn_width": 4096, "epochs": 500}
    assert report["run"]["profile"]["name"] == "paper"


def test_custom_profile_from_pyproject(pytester):
    pytester.makepyfile(test_prof=PROFILE_CLAIM)
    pytester.makepyprojecttoml(CUSTOM + '\n[tool.pytest.ini_options]\nntk_profile = "medium"\n')
    _, report, data = _profile_run(pytester)  # chosen by the ini key
    assert data == {"name": "medium", "settings": {"nn_width": 2000, "epochs": 5}, "rtol": 0.2}
    assert report["run"]["profile"] == {"name": "medium", "base": "quick", "rtol": 0.2, "atol": 0.0,
                                        "confidence": 0.95}
    _, _, data = _profile_run(pytester, "--ntk-profile=big")  # the command line beats the ini key
    assert data == {"name": "big", "settings": {"nn_width": 2000, "epochs": 50}, "rtol": 0.2}


def test_unknown_profile_is_a_usage_error(pytester):
    pytester.makepyfile(test_prof=PROFILE_CLAIM)
    result = pytester.runpytest(*INNER, "--ntk-profile=huge")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown profile 'huge'*--ntk-profile*paper*quick*"])


def test_malformed_profile_table_is_a_usage_error(pytester):
    pytester.makepyfile(test_prof=PROFILE_CLAIM)
    pytester.makepyprojecttoml("[tool.pytest_ntk.profiles.bad]\nrtol = -1\n")
    result = pytester.runpytest(*INNER)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-ntk*bad*rtol*"])
