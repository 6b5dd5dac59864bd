#!/usr/bin/env bash
# Make sure a RabbitMQ answers at CELERY_BROKER_URL.
#
# If it does not and the URL points at this machine, start the local rabbitmq-server,
# installing Debian's package first when it is missing and we are root. Enables two plugins
# on a local broker: management (Flower's broker page and the tests use its API) and
# prometheus (its memory and disk alarms on :15692/metrics, for the alerts: docs/alerting.md).
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
URL=${CELERY_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//}
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "==> $*"; }
as_root() { [ "$(id -u)" -eq 0 ]; }
broker_answers() { "$PYTHON" scripts/wait_for_broker.py "$URL" --timeout "${1:-0}"; }

host=$("$PYTHON" -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).hostname or "")' "$URL")
case "$host" in
  127.0.0.1|localhost|::1|"") local_broker=1 ;;
  *) local_broker=0 ;;
esac

if broker_answers; then
  say "RabbitMQ answers at $host"
elif [ "$local_broker" -eq 0 ]; then
  echo "RabbitMQ does not answer at $host (CELERY_BROKER_URL); start it there, or unset" >&2
  echo "CELERY_BROKER_URL to use a local one." >&2
  exit 1
else
  if ! command -v rabbitmq-server >/dev/null; then
    if as_root; then
      say "installing rabbitmq-server (Debian package)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    else
      echo "RabbitMQ is not installed. Install it with:" >&2
      echo "    sudo apt-get install -y rabbitmq-server" >&2
      exit 1
    fi
  fi
  if ! broker_answers; then
    if ! as_root; then
      echo "RabbitMQ is installed but not running. Start it with:" >&2
      echo "    sudo systemctl start rabbitmq-server" >&2
      exit 1
    fi
    if rabbitmqctl -q ping >/dev/null 2>&1; then
      # The Erlang node runs but RabbitMQ inside it was stopped (`rabbitmqctl stop_app`,
      # as the restart test does): starting the server again would find the node taken.
      say "starting RabbitMQ in its running node"
      rabbitmqctl -q start_app
    elif [ -d /run/systemd/system ]; then
      say "starting the local rabbitmq-server"
      systemctl start rabbitmq-server
    else
      say "starting the local rabbitmq-server"
      rabbitmq-server -detached
    fi
  fi
  broker_answers 90 || { echo "RabbitMQ did not come up; see /var/log/rabbitmq/" >&2; exit 1; }
  say "RabbitMQ is up"
fi

if [ "$local_broker" -eq 1 ] && command -v rabbitmq-plugins >/dev/null; then
  enabled=$(rabbitmq-plugins list --enabled --minimal 2>/dev/null || true)
  for plugin in rabbitmq_management rabbitmq_prometheus; do
    if ! grep -qx "$plugin" <<<"$enabled"; then
      if as_root; then
        say "enabling the RabbitMQ plugin $plugin"
        rabbitmq-plugins enable "$plugin" >/dev/null
      else
        echo "warning: the RabbitMQ plugin $plugin is off; enable it with:" >&2
        echo "    sudo rabbitmq-plugins enable $plugin" >&2
      fi
    fi
  done
  "$PYTHON" scripts/wait_for_broker.py "http://127.0.0.1:15672/api/overview" --timeout 60 ||
    echo "warning: RabbitMQ's management API does not answer on port 15672" >&2
  "$PYTHON" scripts/wait_for_broker.py "http://127.0.0.1:15692/metrics" --timeout 30 ||
    echo "warning: RabbitMQ's Prometheus metrics do not answer on port 15692" >&2
fi
