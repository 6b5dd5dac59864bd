#!/usr/bin/env bash
# The test suite as `make test` runs it, once per broker topology (docs/quorum-queues.md):
#
# - production: RabbitMQ 4 with quorum queues (RABBITMQ_QUEUE_TYPE=quorum), on SQLite, with the
#   3-node cluster tests (tests/test_cluster.py). RabbitMQ 4 runs from the tree that
#   scripts/ensure-rabbitmq4.sh builds, on ports of its own (testkit/rabbitmq_nodes.py);
# - the system's RabbitMQ with classic priority queues, on PostgreSQL when one answers.
#
# The two runs go side by side, each with a RabbitMQ vhost and a test database of its own:
# most of a run is spent waiting on worker processes, the broker and the SMTP sink, so two
# runs on 2 cores take little longer than one. The RabbitMQ restart test stops its broker for
# everyone on it, so it runs alone at the end (on RabbitMQ 4).
#
#   scripts/run-tests.sh [TEST_DATABASE_URL]
set -uo pipefail

PY=${PYTHON:-.venv/bin/python}
PG_URL=${1:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
VHOST=${TEST_RABBITMQ_VHOST:-shop_jobs_test}
# The tests that restart the broker under test run alone, after the others.
RESTARTS=(-m restarts_rabbitmq)
OTHERS=(-m "not restarts_rabbitmq")
# Left out of the classic run: a one-minute mail server outage, whose database side the
# shorter outage tests run too, and the cluster tests, which are about quorum queues.
CLASSIC_DESELECT=(
  --deselect tests/test_worker_lifecycle.py::test_emails_wait_out_a_mail_server_outage_and_arrive_once
  --ignore tests/test_cluster.py
)

# Left out of the quorum run, which is the longer one: the monitoring tests (alert rules,
# Prometheus and Alertmanager, the dashboard's day), which are not about the queue type. The
# quorum run's /metrics are checked by tests/test_metrics.py.
QUORUM_DESELECT=(
  --ignore tests/test_alert_rules.py
  --ignore tests/test_alerting_flow.py
  --ignore tests/test_dashboard_history.py
)

# Waits in the tests only bound a hang: give them room on a machine running two suites.
export TEST_TIMEOUT_SCALE=${TEST_TIMEOUT_SCALE:-3}

# Each line of a run's output goes out with the run's name in front, and into
# test-results/<name>.log; its JUnit report goes to test-results/<name>.xml (times per test).
RESULTS=test-results
mkdir -p "$RESULTS"
run() {
  local name=$1
  shift
  "$@" --junitxml="$RESULTS/$name.xml" 2>&1 | tee "$RESULTS/$name.log" | sed -u "s/^/[$name] /"
}

# pytest's short summary (-ra) of a run's failures and errors, so that they are the last lines
# of the output, where CI shows them, not a screen above the other run's progress.
failures_of() {
  grep -E '^(FAILED|ERROR) ' "$RESULTS/$1.log" | sed "s/^/[$1] /"
}

# RabbitMQ 4: its URLs, as `env` takes them (CELERY_BROKER_URL=... RABBITMQ_MANAGEMENT_URL=...).
if scripts/ensure-rabbitmq4.sh >/dev/null && rabbitmq4=$("$PY" -m testkit.rabbitmq_nodes start); then
  # shellcheck disable=SC2206 # its words are the variables
  quorum_env=($rabbitmq4 RABBITMQ_QUEUE_TYPE=quorum)
  quorum_name="quorum queues on RabbitMQ 4"
elif [ "${CI:-}" = true ]; then
  echo "==> FAILED: RabbitMQ 4 could not be set up (scripts/ensure-rabbitmq4.sh)" >&2
  exit 1
else
  echo "==> RabbitMQ 4 could not be set up (scripts/ensure-rabbitmq4.sh says why): both runs" >&2
  echo "    use the system's broker with classic queues, and the cluster tests are skipped" >&2
  quorum_env=(RABBITMQ_QUEUE_TYPE=classic)
  quorum_name="classic queues on the system's RabbitMQ"
fi

echo "==> $quorum_name, SQLite (vhost ${VHOST}_quorum)"
run quorum env -u DATABASE_URL "${quorum_env[@]}" TEST_RABBITMQ_VHOST="${VHOST}_quorum" \
  TEST_SCREENSHOTS_DIR=test-results/screenshots/quorum \
  "$PY" -m pytest "${OTHERS[@]}" "${QUORUM_DESELECT[@]}" &
quorum=$!

failed=()
classic_db=(env -u DATABASE_URL)
db_name=SQLite
if scripts/ensure-postgres.sh "$PG_URL"; then
  classic_db=(env DATABASE_URL="$PG_URL")
  db_name=PostgreSQL
elif [ "${CI:-}" = true ]; then
  failed+=("no PostgreSQL at $PG_URL")
fi
echo "==> classic queues on the system's RabbitMQ, $db_name, side by side (vhost ${VHOST}_classic)"
run classic "${classic_db[@]}" RABBITMQ_QUEUE_TYPE=classic TEST_RABBITMQ_VHOST="${VHOST}_classic" \
  TEST_SCREENSHOTS_DIR=test-results/screenshots/classic \
  "$PY" -m pytest "${OTHERS[@]}" "${CLASSIC_DESELECT[@]}" &
classic=$!

wait "$quorum" || failed+=(quorum)
wait "$classic" || failed+=(classic)

echo "==> the RabbitMQ restart tests, alone"
run restart env -u DATABASE_URL "${quorum_env[@]}" TEST_RABBITMQ_VHOST="${VHOST}_restart" \
  "$PY" -m pytest -q "${RESTARTS[@]}" || failed+=(restart)

# Every run deletes its vhost, also when it fails: one left behind would show in Flower and the
# management UI of whoever runs the suite.
left=$("$PY" - "${quorum_env[@]}" <<'PY'
import os, sys, urllib.parse
from testkit.rabbitmq import ManagementAPI
env = dict(arg.split("=", 1) for arg in sys.argv[1:])
brokers = {
    (os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
     os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672/api")),
    (env.get("CELERY_BROKER_URL", ""), env.get("RABBITMQ_MANAGEMENT_URL", "")),
}
for url, api in brokers:
    if url and api:
        try:
            vhosts = ManagementAPI(url, api).call("GET", "/vhosts")
        except OSError as exc:
            print(f"cannot list the vhosts at {api}: {exc}", file=sys.stderr)
            continue
        for vhost in vhosts:
            if vhost["name"].startswith("shop_jobs_test"):
                print(f"{vhost['name']} ({urllib.parse.urlsplit(api).netloc})")
PY
)
if [ -n "$left" ]; then
  failed+=("test vhosts left behind: $(echo $left)")
fi

if [ ${#failed[@]} -gt 0 ]; then
  for name in quorum classic restart; do
    failures_of "$name" >&2
  done
  echo "==> FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "==> all test runs passed"
