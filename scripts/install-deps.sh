#!/usr/bin/env bash
# Installs the Debian packages varlab builds against, if missing (needs root; CI and the dev machines run as root).
set -euo pipefail
need=()
for p in pkg-config libopenblas-dev liblapacke-dev libpng-dev libjpeg-dev zlib1g-dev libsqlite3-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
