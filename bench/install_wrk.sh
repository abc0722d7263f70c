#!/usr/bin/env bash
# wrk for the consumer-path benchmark (bench/consumer_path.py): Debian's package, installed once.
set -euo pipefail
command -v wrk >/dev/null && exit 0
[[ $EUID -eq 0 ]] || { echo "wrk is missing: apt-get install wrk (as root)" >&2; exit 1; }
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
