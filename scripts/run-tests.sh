#!/usr/bin/env bash
# The test suite as `make test` runs it: three runs side by side (docs/quorum-queues.md),
#
# - quorum: RabbitMQ 4 with quorum queues (RABBITMQ_QUEUE_TYPE=quorum), the production broker,
#   on SQLite. RabbitMQ 4 runs from the tree that scripts/ensure-rabbitmq4.sh builds, on ports
#   of its own (testkit/rabbitmq_nodes.py);
# - classic: the system's RabbitMQ with classic priority queues, on PostgreSQL when one answers;
# - nodes: the tests that stop and start a RabbitMQ 4 node (on a node of their own, so nobody
#   else's broker goes away under them) and the 3-node cluster tests (a cluster of their own).
#
# Every test about what the broker does (priorities, retries, dead letters, crashes, outages,
# poison messages, time limits) runs on both topologies. The others run on one of them: a flow
# whose subject is a job's own work (a video, a report, a supplier's pages), the operator
# controls (cancel, pause, limits, rescues, schedules: rows in the database the workers
# follow), the monitoring tests (about Prometheus) and the browser tests (pages, on the demo's
# configuration). Running them twice proved nothing more and cost minutes: the suite must stay
# under 15 minutes on 2 cores. Each run has a RabbitMQ vhost and a test database of its own;
# most of a run is spent waiting on worker processes, the broker and the SMTP sink, so side by
# side they take little longer than one.
#
#   scripts/run-tests.sh [TEST_DATABASE_URL]
set -uo pipefail

PY=${PYTHON:-.venv/bin/python}
PG_URL=${1:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
VHOST=${TEST_RABBITMQ_VHOST:-shop_jobs_test}
NODE_TESTS=(-m "restarts_rabbitmq or own_rabbitmq_nodes")
OTHERS=(-m "not restarts_rabbitmq and not own_rabbitmq_nodes")

# On one topology only (see above).
QUORUM_ONLY=(
  tests/test_sales_reports_flow.py
  tests/test_video_flow.py
  tests/test_rate_limits_flow.py
  tests/test_cancel_flow.py
  tests/test_stalls_flow.py
  tests/test_autoscale.py
  tests/test_schedules.py
)
CLASSIC_ONLY=(
  tests/test_media_flow.py
  tests/test_warehouse_flow.py
  tests/test_supplier_feed.py
  tests/test_pause_flow.py
  tests/test_reconcile_flow.py
  tests/test_retention.py
  tests/test_jobs_page.py
  tests/test_alert_rules.py
  tests/test_alerting_flow.py
  tests/test_dashboard_history.py
  tests/browser
)
QUORUM_DESELECT=()
for path in "${CLASSIC_ONLY[@]}"; do QUORUM_DESELECT+=(--ignore "$path"); done
# Also left out of the classic run: a one-minute mail server outage, whose database side the
# shorter outage tests run too.
CLASSIC_DESELECT=(
  --deselect tests/test_worker_lifecycle.py::test_emails_wait_out_a_mail_server_outage_and_arrive_once
)
for path in "${QUORUM_ONLY[@]}"; do CLASSIC_DESELECT+=(--ignore "$path"); done

# Waits in the tests only bound a hang: give them room on a machine running three suites.
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
# of the output, where CI shows them, not a screen above the other runs' progress.
failures_of() {
  [ -f "$RESULTS/$1.log" ] && grep -E '^(FAILED|ERROR) ' "$RESULTS/$1.log" | sed "s/^/[$1] /"
}

failed=()
# RabbitMQ 4: each node's URLs, as `env` takes them (CELERY_BROKER_URL=... RABBITMQ_MANAGEMENT_URL=...).
if scripts/ensure-rabbitmq4.sh >/dev/null &&
  rabbitmq4=$("$PY" -m testkit.rabbitmq_nodes start) &&
  restart_node=$("$PY" -m testkit.rabbitmq_nodes start --node restart); then
  # shellcheck disable=SC2206 # its words are the variables
  quorum_env=($rabbitmq4 RABBITMQ_QUEUE_TYPE=quorum)
  # shellcheck disable=SC2206
  nodes_env=($restart_node RABBITMQ_QUEUE_TYPE=quorum)
  quorum_name="quorum queues on RabbitMQ 4"
elif [ "${CI:-}" = true ]; then
  echo "==> FAILED: RabbitMQ 4 could not be set up (scripts/ensure-rabbitmq4.sh)" >&2
  exit 1
else
  echo "==> RabbitMQ 4 could not be set up (scripts/ensure-rabbitmq4.sh says why): both runs" >&2
  echo "    use the system's broker with classic queues, and the cluster tests are skipped" >&2
  quorum_env=(RABBITMQ_QUEUE_TYPE=classic)
  nodes_env=(RABBITMQ_QUEUE_TYPE=classic)
  quorum_name="classic queues on the system's RabbitMQ"
fi

echo "==> $quorum_name, SQLite (vhost ${VHOST}_quorum)"
run quorum env -u DATABASE_URL "${quorum_env[@]}" TEST_RABBITMQ_VHOST="${VHOST}_quorum" \
  TEST_SCREENSHOTS_DIR=test-results/screenshots/quorum \
  "$PY" -m pytest "${OTHERS[@]}" "${QUORUM_DESELECT[@]}" &
quorum=$!

classic_db=(env -u DATABASE_URL)
db_name=SQLite
if scripts/ensure-postgres.sh "$PG_URL"; then
  classic_db=(env DATABASE_URL="$PG_URL")
  db_name=PostgreSQL
elif [ "${CI:-}" = true ]; then
  failed+=("no PostgreSQL at $PG_URL")
fi
echo "==> classic queues on the system's RabbitMQ, $db_name (vhost ${VHOST}_classic)"
run classic "${classic_db[@]}" RABBITMQ_QUEUE_TYPE=classic TEST_RABBITMQ_VHOST="${VHOST}_classic" \
  TEST_SCREENSHOTS_DIR=test-results/screenshots/classic \
  "$PY" -m pytest "${OTHERS[@]}" "${CLASSIC_DESELECT[@]}" &
classic=$!

echo "==> RabbitMQ restarted and clustered, on nodes of their own, SQLite (vhost ${VHOST}_nodes)"
run nodes env -u DATABASE_URL "${nodes_env[@]}" TEST_RABBITMQ_VHOST="${VHOST}_nodes" \
  "$PY" -m pytest -q "${NODE_TESTS[@]}" &
nodes=$!

wait "$quorum" || failed+=(quorum)
wait "$classic" || failed+=(classic)
wait "$nodes" || failed+=(nodes)

# Every run deletes its vhost, also when it fails: one left behind would show in Flower and the
# management UI of whoever runs the suite.
left=$("$PY" - "${quorum_env[@]}" -- "${nodes_env[@]}" <<'PY'
import os, sys, urllib.parse
from testkit.rabbitmq import ManagementAPI
brokers = {
    (os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
     os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672/api")),
}
words = " ".join(sys.argv[1:]).split(" -- ")
for part in words:
    env = dict(arg.split("=", 1) for arg in part.split() if "=" in arg)
    brokers.add((env.get("CELERY_BROKER_URL", ""), env.get("RABBITMQ_MANAGEMENT_URL", "")))
for url, api in sorted(brokers):
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
  for name in quorum classic nodes; do
    failures_of "$name" >&2
  done
  echo "==> FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "==> all test runs passed"
