#!/usr/bin/env bash
# What `make demo` prints before it starts everything.
cat <<BANNER

  Shop Jobs is starting. Ctrl-C stops everything.

  Shop            http://127.0.0.1:8000/
  Mailbox (email) http://127.0.0.1:8000/mailbox/
  Admin           http://127.0.0.1:8000/admin/      staff / ${DEMO_STAFF_PASSWORD}
  Flower          http://127.0.0.1:5555/            ${FLOWER_USER} / ${FLOWER_PASSWORD}
  RabbitMQ        http://127.0.0.1:15672/           guest / guest (local broker)
  SMTP sink       127.0.0.1:1025
  Supplier site   http://127.0.0.1:8100/            (the local site the price feed reads)

BANNER
