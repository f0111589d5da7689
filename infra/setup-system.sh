#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo run for real: QEMU (a real QMP socket),
# Prometheus and promtool (rules, alerts, PromQL), Chromium (the live page), Java and Maven (the
# Kafka broker). A no-op when everything is present.
set -euo pipefail

declare -A needs=(
  [qemu-system-x86_64]=qemu-system-x86
  [promtool]=prometheus
  [prometheus]=prometheus
  [chromium]=chromium
  [java]=openjdk-17-jre-headless
  [mvn]=maven
)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    apt=(sudo apt-get)
  else
    echo "setup: these Debian packages are needed and you are not root: ${packages[*]}" >&2
    echo "setup: install them (apt-get install ${packages[*]}) or run as root" >&2
    exit 1
  fi
else
  apt=(apt-get)
fi
echo "setup: installing ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Debian's prometheus package would start a system service on install; the tests and the demo
# start their own instances on free ports, so keep package scripts from starting any service.
policy=/usr/sbin/policy-rc.d
added_policy=false
if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=true
fi
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
$added_policy && rm -f "$policy"
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "setup: $cmd still missing after install" >&2; exit 1; }
done
