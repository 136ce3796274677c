#!/usr/bin/env bash
# Installs what genoshare needs on a fresh Debian machine into a virtual environment. Safe to run again.
#   scripts/install-deps.sh          the node: genoshare (the demo's synthetic cohort ships pre-generated)
#   scripts/install-deps.sh --test   and what the tests need: PostgreSQL (the production database, tested
#                                    for real), samtools and bcftools (baselines the tests compare against),
#                                    chromium (the portal's pages are tested in a real browser), a Java 17
#                                    runtime (Spark ingest runs pyspark in local mode), and the lab
#                                    package (lab/: synthetic cohorts with msprime, written by tabix's bgzip;
#                                    the privacy harness)
#
# Python packages go into $VENV (default .venv), never into the system's python3: Debian's own python3
# refuses pip installs (PEP 668), and a virtual environment keeps the node's versions apart from the
# machine's. They install at the versions pinned in constraints.txt, the ones CI passed with
# (`make lock` refreshes it).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
python=${PYTHON:-python3}
need=()
# Debian splits venv and ensurepip out of python3; without them `python3 -m venv` cannot make a venv with pip.
if [ ! -x "$venv/bin/pip" ] && ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  need+=(python3-venv)
fi
extra=""
lab=()
if [ "${1:-}" = "--test" ]; then
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
  command -v samtools >/dev/null || need+=(samtools)
  command -v bcftools >/dev/null || need+=(bcftools)
  command -v chromium >/dev/null || need+=(chromium)
  command -v bgzip >/dev/null || need+=(tabix)
  command -v java >/dev/null || need+=(openjdk-17-jre-headless)
  extra="[test]"
  # Research code a node does not run; editable like the node, so changes under lab/ need no reinstall.
  lab=(-e ./lab)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "genoshare needs these Debian packages: ${need[*]}; install them as root (apt-get install ${need[*]}) and run again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x "$venv/bin/pip" ] || "$python" -m venv "$venv"
# pip takes a quarter of a minute even when nothing changed; the stamp (what was installed from which pins)
# lets a second `make demo` reach the server, or its "port taken", at once. The install is editable, so
# changes under src/ need no reinstall.
stamp="$venv/.genoshare-installed${extra}"
want="$(cat constraints.txt pyproject.toml lab/pyproject.toml | sha256sum)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing genoshare${extra} into $venv at the versions in constraints.txt (a few minutes the first time)" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".${extra}" "${lab[@]}" || {
    echo "pip failed; if it says the versions conflict, constraints.txt is older than pyproject.toml: make lock" >&2
    exit 1
  }
  echo "$want" >"$stamp"
fi
