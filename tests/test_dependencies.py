"""The install policy a fresh machine relies on to reproduce CI.

pyproject.toml declares ranges with an upper bound (the next major release; ``<1`` for 0.x packages), and
constraints.txt pins one tested version of every package installed, inside those ranges. ``make test`` and
``.ci/run`` install with ``-c constraints.txt``, so a newer release upstream changes nothing until someone runs
``make lock`` and the suite passes with what it picked.
"""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from support import REPO


def _project(pyproject: str = "pyproject.toml") -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((REPO / pyproject).read_text())["project"]
    return project


def _declared() -> list[Requirement]:
    """The node's dependencies, its extras, and the lab package's (installed for the tests, pinned alike)."""
    project, lab = _project(), _project("lab/pyproject.toml")
    extras = [requirement for group in project["optional-dependencies"].values() for requirement in group]
    lab_dependencies = [line for line in lab["dependencies"] if Requirement(line).name != project["name"]]
    return [Requirement(line) for line in [*project["dependencies"], *extras, *lab_dependencies]]


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


#: What research code needs and a node does not: the lab package and the coalescent simulator under it.
RESEARCH_ONLY = {"genoshare-lab", "msprime", "tskit"}


def test_installing_the_node_pulls_no_research_code() -> None:
    """``pip install .`` installs a node: no simulator, no attack harness (they live in lab/)."""
    names = {canonicalize_name(Requirement(line).name) for line in _project()["dependencies"]}
    assert names & RESEARCH_ONLY == set()


def test_the_node_imports_no_research_code() -> None:
    """A node installed without the lab package must still import every module of its own."""
    research = {name.replace("-", "_") for name in RESEARCH_ONLY}
    offending = []
    for path in sorted((REPO / "src" / "genoshare").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            offending += [f"{path.relative_to(REPO)}: {m}" for m in modules if m.split(".")[0] in research]
    assert offending == []
