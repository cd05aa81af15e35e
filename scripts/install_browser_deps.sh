#!/usr/bin/env bash
# What the browser tests (tests/browser/) need besides requirements.txt: Debian's Chromium at
# /usr/bin/chromium. Playwright drives it directly; `playwright install` (a download) is never
# used. Idempotent: does nothing when Chromium is already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
/usr/bin/chromium --version
