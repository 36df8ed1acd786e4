#!/usr/bin/env bash
# Installs Debian's prometheus (the analysis tests and the playground run a
# real Prometheus; see internal/promserver) when it is missing, and links it
# as bin/prometheus. The package's service is never started: the tests run
# their own server on a free port.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p bin

if ! command -v prometheus >/dev/null 2>&1; then
  echo "installing Debian's prometheus (first time only)" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  # Keep the package's init script from starting a server.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    own_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ $own_policy = 1 ]; then $sudo rm -f "$policy"; fi
fi
ln -sfn "$(command -v prometheus)" bin/prometheus
