#!/usr/bin/env bash
# Debian's wrk is the HTTP load generator of the read-path benchmarks (bench/http_reads.py).
set -eu
if ! command -v wrk >/dev/null; then
  echo "installing Debian's wrk"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
