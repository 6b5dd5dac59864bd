#!/usr/bin/env bash
# The test suite as `make test` runs it: on SQLite and, when one answers, on PostgreSQL.
#
# The two runs go side by side, each with a RabbitMQ vhost and a test database of its own:
# most of a run is spent waiting on worker processes, the broker and the SMTP sink, so two
# runs on 2 cores take little longer than one. The RabbitMQ restart test stops the machine's
# broker for everyone, so it runs alone at the end (on SQLite).
#
#   scripts/run-tests.sh [TEST_DATABASE_URL]
set -uo pipefail

PY=${PYTHON:-.venv/bin/python}
PG_URL=${1:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
VHOST=${TEST_RABBITMQ_VHOST:-shop_jobs_test}
RESTART=tests/test_broker_outage.py::test_rabbitmq_restarted_during_checkouts_loses_and_doubles_nothing
# Left out of the PostgreSQL run: a one-minute mail server outage, whose database side the
# shorter outage tests run too.
PG_DESELECT=(--deselect tests/test_worker_lifecycle.py::test_emails_wait_out_a_mail_server_outage_and_arrive_once)

# Waits in the tests only bound a hang: give them room on a machine running two suites.
export TEST_TIMEOUT_SCALE=${TEST_TIMEOUT_SCALE:-3}

# Each line of a run's output goes out with the run's name in front.
run() {
  local name=$1
  shift
  "$@" 2>&1 | sed -u "s/^/[$name] /"
}

echo "==> the suite on SQLite (vhost ${VHOST}_sqlite)"
run sqlite env -u DATABASE_URL TEST_RABBITMQ_VHOST="${VHOST}_sqlite" \
  TEST_SCREENSHOTS_DIR=test-results/screenshots/sqlite \
  "$PY" -m pytest --deselect "$RESTART" &
sqlite=$!

postgres=
if scripts/ensure-postgres.sh "$PG_URL"; then
  echo "==> the suite on PostgreSQL, side by side (vhost ${VHOST}_postgres)"
  run postgres env DATABASE_URL="$PG_URL" TEST_RABBITMQ_VHOST="${VHOST}_postgres" \
    TEST_SCREENSHOTS_DIR=test-results/screenshots/postgres \
    "$PY" -m pytest --deselect "$RESTART" "${PG_DESELECT[@]}" &
  postgres=$!
fi

failed=()
wait "$sqlite" || failed+=(sqlite)
if [ -n "$postgres" ]; then
  wait "$postgres" || failed+=(postgres)
fi

echo "==> the RabbitMQ restart test, alone"
run restart env -u DATABASE_URL TEST_RABBITMQ_VHOST="${VHOST}_restart" \
  "$PY" -m pytest -q "$RESTART" || failed+=(restart)

if [ ${#failed[@]} -gt 0 ]; then
  echo "==> FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "==> all test runs passed"
