#!/usr/bin/env bash
# Debian's chromium drives the browser tests (Playwright with executablePath=/usr/bin/chromium).
set -eu
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
