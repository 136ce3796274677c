#!/usr/bin/env bash
# Installs what genoshare and its tests need on a fresh Debian machine: PostgreSQL (the production
# database, tested for real), samtools/bcftools/tabix (baselines the tests compare against), Chromium is
# not needed yet.  Safe to run again.
set -euo pipefail
need=()
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v samtools >/dev/null || need+=(samtools)
command -v bcftools >/dev/null || need+=(bcftools)
command -v tabix >/dev/null || need+=(tabix)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
python -m pip install -q --disable-pip-version-check -e '.[test]'
