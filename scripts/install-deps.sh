#!/usr/bin/env bash
# Installs what genoshare needs on a fresh Debian machine. Safe to run again.
#   scripts/install-deps.sh          the node: tabix (bgzip writes the demo's synthetic cohort) + genoshare
#   scripts/install-deps.sh --test   and what the tests need: PostgreSQL (the production database, tested
#                                    for real), samtools and bcftools (baselines the tests compare against)
set -euo pipefail
need=()
command -v bgzip >/dev/null || need+=(tabix)
extra=""
if [ "${1:-}" = "--test" ]; then
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
  command -v samtools >/dev/null || need+=(samtools)
  command -v bcftools >/dev/null || need+=(bcftools)
  extra="[test]"
fi
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ".${extra}"
