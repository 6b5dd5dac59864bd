#!/usr/bin/env bash
# Make sure a RabbitMQ 4 can be run here, beside whatever RabbitMQ the system has.
#
# Production runs RabbitMQ 4 (quorum queues, a cluster); Debian 12 ships 3.10. So the tests get
# Debian 13's rabbitmq-server, installed with its Erlang into a minimal Debian 13 tree of its
# own (debootstrap), and run from there by testkit/rabbitmq_nodes.py on ports of their own. Nothing
# of it touches the system's packages or its broker. Built once (about a minute), then reused.
#
#   scripts/ensure-rabbitmq4.sh            prints the tree's path when it is ready
#
# RABBITMQ4_ROOT says where the tree lives (default below). Needs root to build it.
set -euo pipefail

ROOT=${RABBITMQ4_ROOT:-/var/cache/shop-jobs/rabbitmq4-trixie}
SUITE=trixie
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "==> $*" >&2; }
ready() { [ -f "$ROOT/.ready" ] && [ -x "$ROOT/usr/lib/rabbitmq/bin/rabbitmq-server" ]; }

if ready; then
  echo "$ROOT"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "RabbitMQ 4 is not set up in $ROOT, and building it needs root (debootstrap, chroot)." >&2
  echo "Run this script once as root, or point RABBITMQ4_ROOT at a tree built before." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap (Debian package)"
  "$(dirname "$0")/apt-install.sh" debootstrap
fi

# The Debian mirror this machine's apt already uses, so that a machine behind a mirror of its
# own needs nothing more; debootstrap's default mirror otherwise.
mirror() {
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list 2>/dev/null | grep -v -- '-security' |
    sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' |
    awk '{print $1}' | grep -E '/debian/?$' | head -n 1 || true)
  echo "$uri"
}

build=$ROOT.building
cleanup() {
  umount "$build/proc" 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$build"
mkdir -p "$build"

say "building a Debian 13 tree for RabbitMQ 4 in $ROOT (about a minute, once)"
# shellcheck disable=SC2046
debootstrap --variant=minbase "$SUITE" "$build" $(mirror) >"$build.log" 2>&1 ||
  { tail -n 20 "$build.log" >&2; echo "debootstrap failed; see $build.log" >&2; exit 1; }

# Installing a package in the tree must start nothing: its services are ours to run.
printf '#!/bin/sh\nexit 101\n' >"$build/usr/sbin/policy-rc.d"
chmod 755 "$build/usr/sbin/policy-rc.d"
mount -t proc proc "$build/proc"
chroot "$build" apt-get install -y -qq --no-install-recommends rabbitmq-server >>"$build.log" 2>&1 ||
  { tail -n 20 "$build.log" >&2; echo "installing rabbitmq-server failed; see $build.log" >&2; exit 1; }
chroot "$build" apt-get clean
umount "$build/proc"

version=$(chroot "$build" dpkg-query -W -f '${Version}' rabbitmq-server)
rm -rf "$ROOT"
mv "$build" "$ROOT"
echo "$version" >"$ROOT/.ready"
rm -f "$build.log"
say "RabbitMQ $version is ready in $ROOT"
echo "$ROOT"
