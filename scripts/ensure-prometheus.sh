#!/usr/bin/env bash
# Make sure Prometheus and Alertmanager can run here: the demo's alerting (docs/alerting.md)
# runs `prometheus` and `prometheus-alertmanager` from the Procfile, and the tests check the
# configuration and the alert rules with `promtool` and `amtool`.
#
# If one is missing and we are root, install Debian's packages (`prometheus` ships promtool,
# `prometheus-alertmanager` ships amtool); otherwise print the one command that would, and
# exit 1. Without them the demo runs without alerting and the rule tests are skipped.
#
# The packages come with services of their own (Prometheus on :9090, Alertmanager on :9093,
# scraping /etc/prometheus/). The demo runs its own, with its configuration and var/ data, on
# those same ports: so the install must start nothing, and leave nothing enabled to start at
# the next boot.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

PACKAGES=(prometheus prometheus-alertmanager)

say() { echo "==> $*"; }
have_all() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null &&
    command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null
}

if have_all; then
  say "Prometheus and Alertmanager are installed ($(prometheus --version 2>&1 | head -n 1 | cut -d' ' -f1-3))"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "Prometheus or Alertmanager is missing (the demo's alerting needs them). Install them with:" >&2
  echo "    sudo scripts/ensure-prometheus.sh" >&2
  exit 1
fi

say "installing Prometheus and Alertmanager (Debian packages, their services left off)"
export DEBIAN_FRONTEND=noninteractive

# A policy-rc.d that answers 101 ("action forbidden") makes invoke-rc.d and deb-systemd-invoke
# start no service during the install. One that is already there is someone's policy: keep it.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# Left by scripts/ensure-prometheus.sh while it installs packages.\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  trap 'rm -f "$POLICY"' EXIT
fi

# Without recommends (apt-install.sh): the prometheus package recommends
# prometheus-node-exporter, one more service (on :9100) that the demo does not use.
"$(dirname "$0")/apt-install.sh" "${PACKAGES[@]}"

# Not started now, and not started at the next boot either (where systemd runs).
if [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus prometheus-alertmanager >/dev/null 2>&1 || true
else
  for service in prometheus prometheus-alertmanager; do
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  done
fi

have_all || { echo "the packages are installed but prometheus/promtool/amtool are not on the PATH" >&2; exit 1; }
say "Prometheus and Alertmanager are installed (services not started)"
