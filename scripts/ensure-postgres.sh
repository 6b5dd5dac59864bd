#!/usr/bin/env bash
# Exit 0 when a PostgreSQL answers at URL (default TEST_DATABASE_URL), so that `make test`
# runs the suite on it too; exit 1, saying why, when the PostgreSQL run has to be skipped.
#
# When the URL points at this machine and a local cluster is installed but stopped, start it
# with pg_ctlcluster (as root). PostgreSQL is never installed from here: the suite's main run
# is on SQLite, and a PostgreSQL run is a bonus where one is at hand.
#
#   scripts/ensure-postgres.sh postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
URL=${1:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "==> $*"; }
skip() {
  echo "==> skipping the PostgreSQL run: $*" >&2
  exit 1
}

# Prints nothing and succeeds when the database answers; prints libpq's reason otherwise.
probe() {
  "$PYTHON" - "$URL" <<'PY'
import sys

import psycopg

try:
    psycopg.connect(sys.argv[1], connect_timeout=3).close()
except psycopg.Error as exc:
    print(" ".join(str(exc).split()) or type(exc).__name__)
    sys.exit(1)
PY
}

read -r host port < <("$PYTHON" -c '
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(u.hostname or "localhost", u.port or 5432)' "$URL")

if reason=$(probe); then
  say "PostgreSQL answers at $host:$port"
  exit 0
fi

case "$host" in
  127.0.0.1|localhost|::1) ;;
  *) skip "PostgreSQL at $host:$port does not answer ($reason)" ;;
esac

case "$reason" in
  *refused*|*"No such file"*|*"could not connect"*|*"Connection refused"*) ;;
  # It runs but says no: a password, a role or a database is missing. Nothing to start.
  *) skip "PostgreSQL at $host:$port refuses the connection ($reason); set TEST_DATABASE_URL" ;;
esac

if ! command -v pg_lsclusters >/dev/null; then
  skip "PostgreSQL is not installed (sudo apt-get install -y postgresql to run the suite on it too)"
fi

# The cluster that listens on the URL's port: "15 main 5432 down postgres ...".
read -r version cluster status < <(pg_lsclusters --no-header |
  awk -v port="$port" '$3 == port { print $1, $2, $4; exit }') || true
if [ -z "${version:-}" ]; then
  skip "no local PostgreSQL cluster uses port $port (pg_lsclusters); set TEST_DATABASE_URL"
fi
if [ "$status" = "online" ]; then
  skip "the local cluster $version/$cluster is online but does not answer ($reason)"
fi
if [ "$(id -u)" -ne 0 ]; then
  skip "the local PostgreSQL $version/$cluster is stopped; start it with: sudo pg_ctlcluster $version $cluster start"
fi

say "starting the local PostgreSQL cluster $version/$cluster"
pg_ctlcluster "$version" "$cluster" start || skip "pg_ctlcluster $version $cluster start failed"
for _ in $(seq 30); do
  if reason=$(probe); then
    say "PostgreSQL answers at $host:$port"
    exit 0
  fi
  sleep 1
done
skip "PostgreSQL $version/$cluster started but does not answer at $host:$port ($reason)"
