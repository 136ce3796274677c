"""The install policy a fresh machine relies on to reproduce CI.

pyproject.toml declares ranges with an upper bound (the next major release; ``<1`` for 0.x packages), and
constraints.txt pins one tested version of every package installed, inside those ranges. ``make test`` and
``.ci/run`` install with ``-c constraints.txt``, so a newer release upstream changes nothing until someone runs
``make lock`` and the suite passes with what it picked.
"""

from __future__ import annotations

import importlib.metadata
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from support import REPO


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [requirement for group in project["optional-dependencies"].values() for requirement in group]
    return [Requirement(line) for line in [*project["dependencies"], *extras]]


def _pinned() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"constraints.txt pins exact versions only: {line}"
        pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def test_every_declared_dependency_has_an_upper_bound() -> None:
    unbounded = [str(r) for r in _declared() if not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)]
    assert unbounded == []


def test_constraints_pin_every_declared_dependency_inside_its_range() -> None:
    pins = _pinned()
    outside = {}
    for requirement in _declared():
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None or pinned not in requirement.specifier:
            outside[str(requirement)] = str(pinned) if pinned else "not pinned: run `make lock`"
    assert outside == {}


def test_the_running_environment_is_the_pinned_one() -> None:
    """What the tests run on is what constraints.txt says CI passed with (stale environments show up here)."""
    drift = {}
    for name, version in _pinned().items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            drift[name] = f"{version} pinned, not installed"
            continue
        if installed != version:
            drift[name] = f"{version} pinned, {installed} installed"
    assert drift == {}, "run `make install` (or `make lock` to move the pins)"
