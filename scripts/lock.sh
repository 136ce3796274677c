#!/usr/bin/env bash
# Refreshes constraints.txt: resolves pyproject.toml's ranges (test extras and lab/ included) afresh in a throwaway
# virtual environment and pins every package that resolution installed. Run it (`make lock`), run
# `make test`, and commit both together: CI then installs exactly what passed here.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" -e ./lab
{
  echo "# Exact versions CI passed with; made by \`make lock\` (scripts/lock.sh) from pyproject.toml's ranges."
  echo "# Python $("$work/venv/bin/python" -c 'import platform; print(platform.python_version())'), $(date -u +%Y-%m-%d)."
  "$work/venv/bin/python" -m pip freeze --exclude-editable --all | grep -v -E '^(pip|setuptools|wheel)==' | LC_ALL=C sort -f
} > constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) packages pinned" >&2
