#!/bin/sh
# Start RabbitMQ with Shop Jobs' definitions: the user and password come from the environment.
#
# A definitions file cannot read environment variables, and a node that imports definitions at
# boot skips creating RABBITMQ_DEFAULT_USER ("Will not seed default virtual host and user").
# So the user is written into a copy of definitions.json here, at each start, and imported
# with the vhost, permissions and policies: one import, one source of truth, and a changed
# RABBITMQ_PASSWORD takes effect at the next restart.
set -eu

: "${RABBITMQ_USER:?RABBITMQ_USER must be set}"
: "${RABBITMQ_PASSWORD:?RABBITMQ_PASSWORD must be set}"
# The same values go into the services' amqp:// and http:// URLs: keep them URL-safe, which
# also keeps them safe in JSON and in the sed expression below.
for value in "$RABBITMQ_USER" "$RABBITMQ_PASSWORD"; do
  case "$value" in
    *[!A-Za-z0-9._~-]*)
      echo "RABBITMQ_USER and RABBITMQ_PASSWORD may only use A-Z a-z 0-9 . _ ~ -" >&2
      exit 1
      ;;
  esac
done

# The paths are compose's mount and rabbitmq.conf's load_definitions (the tests change them).
template=${DEFINITIONS_TEMPLATE:-/etc/rabbitmq/shop-jobs/definitions.json}
rendered=${DEFINITIONS_FILE:-/tmp/shop-jobs-definitions.json}
umask 077
sed -e "s/__RABBITMQ_USER__/$RABBITMQ_USER/g" \
    -e "s/__RABBITMQ_PASSWORD__/$RABBITMQ_PASSWORD/g" \
    "$template" > "$rendered"
# The image's entrypoint drops from root to the rabbitmq user, who must read the file.
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
  chown rabbitmq:rabbitmq "$rendered"
fi

exec docker-entrypoint.sh "$@"
