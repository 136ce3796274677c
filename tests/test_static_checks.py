"""The code passes the checks CONTRIBUTING asks for before each commit: mypy, ruff's lint rules and its format,
and import-linter's layers.

A new release of a typed dependency cannot slip in errors unnoticed (upgrades of numpy, SQLAlchemy, pyroaring,
rich and FastAPI each did), a wrong type at a call site is caught by the suite, not only by whoever
remembers to run mypy before committing, and so is an import that runs up the layers or closes a cycle.
"""

from __future__ import annotations

import subprocess
import sys

from support import REPO

#: Where our Python lives: the node, the lab package (research code), the tests and the benchmarks.
PYTHON_PATHS = ("src", "lab/src", "tests", "benchmarks")
#: The packages type-checked with mypy (tests and benchmarks are checked by ruff only).
TYPED_PACKAGES = ("src/genoshare", "lab/src/genoshare_lab")


def test_mypy_finds_no_errors_in_the_package() -> None:
    # The interpreter running the suite, so the mypy and stubs checked are those this environment installed;
    # from the repository root, so pyproject.toml's [tool.mypy] settings apply.
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", *TYPED_PACKAGES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert checked.returncode == 0, f"mypy {' '.join(TYPED_PACKAGES)} failed:\n{checked.stdout}{checked.stderr}"


def test_ruff_finds_nothing_to_fix() -> None:
    for command in (["check", *PYTHON_PATHS], ["format", "--check", *PYTHON_PATHS]):
        checked = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
        )
        assert checked.returncode == 0, f"ruff {' '.join(command)} failed:\n{checked.stdout}{checked.stderr}"


def test_imports_follow_the_layers() -> None:
    # The contracts in pyproject.toml's [tool.importlinter]: one-way layers, independent services, no cycle.
    # No cache, so the suite writes nothing into the checkout and never reads a stale graph.
    checked = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
            "--no-cache",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert checked.returncode == 0, f"lint-imports failed:\n{checked.stdout}{checked.stderr}"
