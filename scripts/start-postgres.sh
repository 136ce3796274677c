#!/usr/bin/env bash
# Starts the Debian PostgreSQL cluster and makes a test role; prints the admin URL the tests use.
# The tests create one throwaway database per test through it.
set -euo pipefail
# Only the URL goes to stdout: the caller captures it. pg_ctlcluster and friends talk on stdout too
# ("Removed stale pid file."), so everything else is sent to stderr.
exec 3>&1 1>&2
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q online; then
  # A machine restored from a snapshot can carry a dead server's socket lock; the server refuses to start
  # over it, so drop locks whose process is gone.
  for lock in /var/run/postgresql/.s.PGSQL.*.lock; do
    [ -e "$lock" ] || continue
    pid=$(head -n 1 "$lock")
    kill -0 "$pid" 2>/dev/null || rm -f "$lock" "${lock%.lock}"
  done
  pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >/dev/null
  pg_ctlcluster "$version" main start 3>&-  # the server must not hold the caller's pipe open
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 0.5
done
runuser -u postgres -- psql -q -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'genoshare') THEN
    CREATE ROLE genoshare LOGIN CREATEDB PASSWORD 'genoshare-test-only';
  END IF;
END $$;
SQL
echo "postgresql+psycopg://genoshare:genoshare-test-only@127.0.0.1:5432/postgres" >&3
