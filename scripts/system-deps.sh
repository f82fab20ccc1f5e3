#!/usr/bin/env bash
# Debian packages kilnwatch needs. As root they are installed; otherwise the missing ones are named.
#   system-deps.sh run   the demo (mosquitto)
#   system-deps.sh test  the test suite (mosquitto, victoria-metrics, chromium, chromium-driver, docker-compose)
#   system-deps.sh bench the benchmarks (mosquitto, victoria-metrics, wrk; nodejs and npm for the
#                        Node-RED peer, which bench/peer_mqtt_to_historian.py installs from npm)
set -euo pipefail
case "${1:-test}" in
  run)  packages=(mosquitto) ;;
  test) packages=(mosquitto victoria-metrics chromium chromium-driver docker-compose) ;;
  bench) packages=(mosquitto victoria-metrics wrk nodejs npm) ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packaged services are not used: kilnwatch and its tests start their own instances.
  for svc in mosquitto victoria-metrics; do
    (command -v systemctl >/dev/null && systemctl disable --now "$svc" >/dev/null 2>&1) || true
  done
else
  echo "kilnwatch needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
