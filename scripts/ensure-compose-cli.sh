#!/bin/sh
# Make sure a compose CLI can validate docker/compose.yaml (tests/test_deployment.py), even on
# machines without a Docker engine: `docker compose` (v2) if there is one, else Debian's
# docker-compose package (v1, a few MB of Python, without the engine it recommends),
# installed when we are root. Never fails: without a CLI the validation tests are skipped
# and say why.
if command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no docker-compose; the compose file validation will be skipped" \
    "(sudo apt-get install --no-install-recommends docker-compose)" >&2
  exit 0
fi
echo "==> installing docker-compose (Debian package), to validate docker/compose.yaml"
"$(dirname "$0")/apt-install.sh" docker-compose 2>/dev/null ||
  echo "warning: could not install docker-compose; the compose file validation will be skipped" >&2
exit 0
