#!/usr/bin/env bash
# What `make demo` prints before it starts everything.
alerting="(alerts: docs/alerting.md)"
command -v prometheus >/dev/null || alerting="(not installed: sudo scripts/ensure-prometheus.sh)"
cat <<BANNER

  Shop Jobs is starting. Ctrl-C stops everything.

  Shop            http://127.0.0.1:8000/
  Mailbox (email) http://127.0.0.1:8000/mailbox/
  Admin           http://127.0.0.1:8000/admin/      staff / ${DEMO_STAFF_PASSWORD}
  Flower          http://127.0.0.1:5555/            ${FLOWER_USER} / ${FLOWER_PASSWORD}
  Prometheus      http://127.0.0.1:9090/alerts      ${alerting}
  Alertmanager    http://127.0.0.1:9093/            (mails alerts to the mailbox above)
  RabbitMQ        http://127.0.0.1:15672/           guest / guest (local broker)
  SMTP sink       127.0.0.1:1025
  Supplier site   http://127.0.0.1:8100/            (the local site the price feed reads)

BANNER
