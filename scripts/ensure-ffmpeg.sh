#!/usr/bin/env bash
# Make sure ffmpeg and ffprobe are on the PATH: the media worker makes the poster frame and the
# preview of product videos with them (media_jobs/video.py).
#
# If they are missing and we are root, install Debian's `ffmpeg` package (it ships both);
# otherwise print the one command that would, and exit 1. Pictures do not need ffmpeg: without
# it, video uploads are refused with that same advice, and the video tests are skipped.
set -euo pipefail

say() { echo "==> $*"; }
have_ffmpeg() { command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; }

if have_ffmpeg; then
  say "ffmpeg is installed ($(ffmpeg -hide_banner -version | head -n 1 | cut -d' ' -f1-3))"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ffmpeg is not installed (product videos need it). Install it with:" >&2
  echo "    sudo apt-get install -y --no-install-recommends ffmpeg" >&2
  exit 1
fi

say "installing ffmpeg (Debian package)"
"$(dirname "$0")/apt-install.sh" ffmpeg
have_ffmpeg || { echo "ffmpeg was installed but ffmpeg/ffprobe are not on the PATH" >&2; exit 1; }
say "ffmpeg is installed"
