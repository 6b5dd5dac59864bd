#!/bin/sh
# Start a RabbitMQ node of Shop Jobs' cluster: the user, its password and the cluster's Erlang
# cookie come from the environment.
#
# A definitions file cannot read environment variables, and a node that imports definitions at
# boot skips creating RABBITMQ_DEFAULT_USER ("Will not seed default virtual host and user").
# So the user is written into a copy of definitions.json here, at each start, and imported
# with the vhost, permissions and policies: one import, one source of truth, and a changed
# RABBITMQ_PASSWORD takes effect at the next restart.
#
# The nodes of a cluster, and rabbitmqctl, authenticate each other with a shared secret, the
# Erlang cookie, read from $HOME/.erlang.cookie (the image's HOME is the data directory). The
# image's entrypoint has not handled RABBITMQ_ERLANG_COOKIE since RabbitMQ 3.9 and its docs ask
# for a cookie file, so the file is written here, from RABBITMQ_CLUSTER_COOKIE, at each start:
# owner-only (Erlang refuses anything else), and the same on every node because every node gets
# the same value from docker/.env.
set -eu

: "${RABBITMQ_USER:?RABBITMQ_USER must be set}"
: "${RABBITMQ_PASSWORD:?RABBITMQ_PASSWORD must be set}"
: "${RABBITMQ_CLUSTER_COOKIE:?RABBITMQ_CLUSTER_COOKIE must be set (the cluster's Erlang cookie)}"
# The user and password also go into the services' amqp:// and http:// URLs: keep them
# URL-safe, which also keeps them safe in JSON and in the sed expression below. The cookie is
# held to the same characters (and to a length Erlang takes).
for value in "$RABBITMQ_USER" "$RABBITMQ_PASSWORD" "$RABBITMQ_CLUSTER_COOKIE"; do
  case "$value" in
    *[!A-Za-z0-9._~-]*)
      echo "RABBITMQ_USER, RABBITMQ_PASSWORD and RABBITMQ_CLUSTER_COOKIE may only use" \
        "A-Z a-z 0-9 . _ ~ -" >&2
      exit 1
      ;;
  esac
done
if [ "${#RABBITMQ_CLUSTER_COOKIE}" -lt 20 ] || [ "${#RABBITMQ_CLUSTER_COOKIE}" -gt 255 ]; then
  echo "RABBITMQ_CLUSTER_COOKIE must be 20 to 255 characters long" >&2
  exit 1
fi

# The paths are compose's mount, rabbitmq.conf's load_definitions and the image's HOME (the
# tests change them).
template=${DEFINITIONS_TEMPLATE:-/etc/rabbitmq/shop-jobs/definitions.json}
rendered=${DEFINITIONS_FILE:-/tmp/shop-jobs-definitions.json}
cookie=${ERLANG_COOKIE_FILE:-/var/lib/rabbitmq/.erlang.cookie}
umask 077
sed -e "s/__RABBITMQ_USER__/$RABBITMQ_USER/g" \
    -e "s/__RABBITMQ_PASSWORD__/$RABBITMQ_PASSWORD/g" \
    "$template" > "$rendered"
# Replaced whole (the old file is read-only), never left half-written.
rm -f "$cookie.new"
printf '%s' "$RABBITMQ_CLUSTER_COOKIE" > "$cookie.new"
chmod 400 "$cookie.new"
# The image's entrypoint drops from root to the rabbitmq user, who must read both files.
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
  chown rabbitmq:rabbitmq "$rendered" "$cookie.new"
fi
mv -f "$cookie.new" "$cookie"
# The node reads the file; the variable need not follow it into the server's environment.
unset RABBITMQ_CLUSTER_COOKIE

exec docker-entrypoint.sh "$@"
