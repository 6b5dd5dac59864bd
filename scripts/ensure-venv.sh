#!/usr/bin/env bash
# Create .venv with the machine's Python 3 (3.11 or newer) and install requirements.txt.
set -euo pipefail

if ! command -v python3 >/dev/null; then
  echo "python3 is missing: sudo apt-get install -y python3 python3-venv" >&2
  exit 1
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { echo "Python 3.11 or newer is needed, found $(python3 --version)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  # Debian ships venv's pip bootstrap in a separate package.
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
      echo "==> installing python3-venv (Debian package)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      echo "Python's venv module is missing: sudo apt-get install -y python3-venv" >&2
      exit 1
    fi
  fi
  echo "==> creating .venv"
  python3 -m venv .venv
fi
echo "==> installing requirements.txt into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
