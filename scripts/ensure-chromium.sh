#!/usr/bin/env bash
# Make sure Debian's Chromium is installed, for the browser tests (tests/browser/).
#
# When it is missing and we are root, install Debian's `chromium` package. Playwright drives
# that browser; it never downloads one of its own (no `playwright install`). Never fails the
# bootstrap: without Chromium the browser tests are skipped, and say why in one line.
set -uo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

say() { echo "==> $*"; }
version() { "$CHROMIUM" --version 2>/dev/null | head -n 1; }

if [ -x "$CHROMIUM" ]; then
  say "Chromium is installed: $(version || echo "$CHROMIUM")"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "==> Chromium is not installed: the browser tests will be skipped. Install it with:" >&2
  echo "    sudo apt-get install -y chromium" >&2
  exit 0
fi

say "installing chromium (Debian package) for the browser tests"
if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
  say "Chromium is installed: $(version || echo "$CHROMIUM")"
else
  echo "==> could not install chromium: the browser tests will be skipped" >&2
fi
exit 0
