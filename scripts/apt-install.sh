#!/usr/bin/env bash
# Install Debian packages quietly, without the packages they only recommend: what each
# scripts/ensure-*.sh does when a program is missing and we are root.
#
#   scripts/apt-install.sh PACKAGE...
#
# A fresh machine or container has no package lists at all: they are fetched only then, or
# when the install fails on lists gone stale, not at every bootstrap.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

install() { apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }

if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
  apt-get update -qq
fi
install "$@" || { apt-get update -qq && install "$@"; }
