#!/bin/sh
# Write docker/.env, the secrets and settings docker/compose.yaml reads, with fresh random
# secrets. Never overwrites an existing file. docker/.gitignore keeps it out of git and
# .dockerignore out of the image.
#
#   docker/new-env.sh [path]        (default: docker/.env next to this script)
set -eu

target=${1:-$(dirname "$0")/.env}
if [ -e "$target" ]; then
  echo "$target exists; remove it first to start over" >&2
  exit 1
fi

# URL-safe secrets: they go into amqp:// and postgres:// URLs as they are (the cookie does
# not, but the broker's entrypoint takes the same characters).
secret() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"; }

umask 077
cat >"$target" <<ENV
# docker/compose.yaml reads this file. Secrets: letters, digits and . _ ~ - only.
COMPOSE_PROJECT_NAME=shop-jobs
SECRET_KEY=$(secret 50)
POSTGRES_PASSWORD=$(secret 24)
RABBITMQ_USER=shop_jobs
RABBITMQ_PASSWORD=$(secret 24)
# The Erlang cookie the three RabbitMQ nodes (and rabbitmqctl) authenticate each other with.
# Changing it means stopping every node, then starting them all with the new one.
RABBITMQ_CLUSTER_COOKIE=$(secret 40)
FLOWER_USER=admin
FLOWER_PASSWORD=$(secret 16)
# Prometheus sends it to read the shop's /metrics (monitoring/prometheus.compose.yml).
METRICS_TOKEN=$(secret 32)

# Trying it out on http://localhost:8000 without a TLS proxy in front; remove both lines in
# production, where HTTPS is expected.
SECURE_SSL_REDIRECT=0
SECURE_PROXY_SSL_HEADER_ON=0

# ALLOWED_HOSTS=shop.example.com
# CSRF_TRUSTED_ORIGINS=https://shop.example.com
# SITE_URL=https://shop.example.com
# EMAIL_HOST=smtp.example.com
# EMAIL_PORT=587
# EMAIL_USE_TLS=1
# EMAIL_HOST_USER=...
# EMAIL_HOST_PASSWORD=...
# WEB_CONCURRENCY=3
# MEDIA_CONCURRENCY=2
ENV
echo "wrote $target"
