"""Profiles: the named scale of an audit (widths, seeds, trials, epochs) and its default tolerance.

Built in: ``quick`` (the default, sized for 2 CPU cores), ``long`` (the published training time
where a suite defines it, otherwise ``quick``; an hour or more on 2 CPU cores) and ``paper``
(published protocols, sized for a GPU). A project adds its own in ``pyproject.toml``::

    [tool.pytest_ntk.profiles.medium]
    base = "quick"              # settings not given here come from this profile
    rtol = 0.05                 # default tolerance (also atol, confidence)
    [tool.pytest_ntk.profiles.medium.liu2025]
    nn_width = 2000             # overrides the claim suite's own "quick" settings

Claim suites keep their per-profile settings next to the claims and ask for them with
:meth:`Profile.pick`, so a profile never needs to know every suite.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..verdicts import ClaimError, Tolerance

__all__ = ["Profile", "BUILTIN", "load_profiles", "ProfileError"]


class ProfileError(ValueError):
    """An unknown profile, or a malformed profile table in pyproject.toml."""


@dataclass(frozen=True)
class Profile:
    """A named scale. ``tolerance`` is its default; ``overrides`` maps suite names to setting overrides."""

    name: str
    description: str
    tolerance: Tolerance
    base: str | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ancestors: tuple[str, ...] = ()  # base, base's base, ... (filled in by load_profiles)

    @property
    def lineage(self) -> list[str]:
        """This profile's name, then its base's, its base's base, ... (for :meth:`pick`)."""
        names = [self.name, *self.ancestors]
        if self.base and self.base not in names:
            names.append(self.base)
        return names

    def pick(self, settings: Mapping[str, Mapping[str, Any]], suite: str | None = None) -> dict[str, Any]:
        """The settings of the active profile from a suite's ``{profile name: {key: value}}`` table.

        Falls back to the base profile for custom profiles, then applies this profile's
        ``[tool.pytest_ntk.profiles.NAME.SUITE]`` overrides.
        """
        for name in self.lineage:
            if name in settings:
                chosen = dict(settings[name])
                break
        else:
            raise ProfileError(
                f"profile {self.name!r} has no settings here and no base profile that does; "
                f"known: {sorted(settings)}"
            )
        if suite and suite in self.overrides:
            chosen.update(self.overrides[suite])
        return chosen

    def to_dict(self) -> dict[str, Any]:
        t = self.tolerance
        return {"name": self.name, "base": self.base, "rtol": t.rtol, "atol": t.atol, "confidence": t.confidence}


BUILTIN: dict[str, Profile] = {
    "quick": Profile(
        "quick",
        "sized for 2 CPU cores: narrower networks, fewer epochs and trials (each suite says what is scaled)",
        Tolerance(rtol=0.05, atol=0.0, confidence=0.95),
    ),
    "long": Profile(
        "long",
        "the published training time on a CPU: suites that define it run their networks as long as the "
        "source trained them (liu2025: published epochs, batch and rate, narrower width plus a width "
        "trend); every other suite runs its quick settings",
        Tolerance(rtol=0.05, atol=0.0, confidence=0.95),
        base="quick",
    ),
    "paper": Profile(
        "paper",
        "the published protocols at full scale; sized for a GPU (JAX's CUDA build)",
        Tolerance(rtol=0.05, atol=0.0, confidence=0.95),
    ),
}


_PROFILE_KEYS = {"base", "description", "rtol", "atol", "confidence"}


def load_profiles(pyproject: Path | None) -> dict[str, Profile]:
    """Built-in profiles plus those under ``[tool.pytest_ntk.profiles]`` of ``pyproject``."""
    profiles = dict(BUILTIN)
    if pyproject is None or not Path(pyproject).is_file():
        return profiles
    with open(pyproject, "rb") as fh:
        data = tomllib.load(fh)
    tables = data.get("tool", {}).get("pytest_ntk", {}).get("profiles", {})
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ProfileError(f"{pyproject}: [tool.pytest_ntk.profiles.{name}] must be a table")
        unknown = sorted(k for k, v in table.items() if not isinstance(v, dict) and k not in _PROFILE_KEYS)
        if unknown:  # a typo (rtl = 0.1) must not be ignored silently
            raise ProfileError(
                f"{pyproject}: unknown key(s) {unknown} in [tool.pytest_ntk.profiles.{name}]; known: "
                f"{sorted(_PROFILE_KEYS)}; a suite's settings go in [tool.pytest_ntk.profiles.{name}.SUITE]"
            )
        base_name = table.get("base", "quick" if name not in BUILTIN else None)
        base = profiles.get(base_name) if base_name else profiles.get(name)
        if base_name and base is None:
            raise ProfileError(f"{pyproject}: profile {name!r} has unknown base {base_name!r}")
        tol0 = base.tolerance if base else Tolerance()
        try:
            tol = Tolerance(
                table.get("rtol", tol0.rtol), table.get("atol", tol0.atol), table.get("confidence", tol0.confidence)
            ).validated(f"profile {name}")
        except ClaimError as exc:
            raise ProfileError(f"{pyproject}: {exc}") from None
        # a profile based on a custom profile inherits its suite overrides (its own win) and its lineage
        inherited = base.overrides if base is not None else {}
        overrides = {k: dict(v) for k, v in inherited.items()}
        for k, v in table.items():
            if isinstance(v, dict):
                overrides[k] = {**overrides.get(k, {}), **v}
        based_on = base_name if base_name != name else None
        ancestors = (based_on, *base.ancestors) if based_on and base is not None else ()
        profiles[name] = Profile(
            name=name,
            description=str(table.get("description", f"custom profile based on {base_name}")),
            tolerance=tol,
            base=based_on,
            overrides=overrides,
            ancestors=ancestors,
        )
    return profiles
