#!/usr/bin/env bash
# Installs what the tests run for real and npm does not bring: Debian's QEMU (a real QMP socket),
# Prometheus and promtool (rules, alerts, PromQL), Chromium (the live page), Java and Maven (the
# Kafka broker); and the Docker compose plugin (validates docker-compose.yml), which Debian does
# not package, built once from the Go module proxy. A no-op when everything is present.
set -euo pipefail

COMPOSE_VERSION=v2.29.7
compose_plugin="$HOME/.docker/cli-plugins/docker-compose"

install_compose_plugin() {
  if docker compose version >/dev/null 2>&1 || [ -x "$compose_plugin" ]; then return 0; fi
  if ! command -v go >/dev/null 2>&1; then
    echo "setup: Go is needed once to build the Docker compose plugin ($COMPOSE_VERSION)" >&2
    return 1
  fi
  echo "setup: building the Docker compose plugin $COMPOSE_VERSION (once, about 2 minutes)" >&2
  local bin
  bin=$(mktemp -d)
  GOBIN="$bin" GOFLAGS=-mod=mod go install "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
  mkdir -p "$(dirname "$compose_plugin")"
  mv "$bin/cmd" "$compose_plugin"
  rm -rf "$bin"
}

declare -A needs=(
  [qemu-system-x86_64]=qemu-system-x86
  [promtool]=prometheus
  [prometheus]=prometheus
  [chromium]=chromium
  [java]=openjdk-17-jre-headless
  [mvn]=maven
  [libvirtd]=libvirt-daemon
  [virsh]=libvirt-clients
  [systemd-analyze]=systemd
  [strace]=strace
  [faketime]=faketime
)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_compose_plugin
  exit 0
fi

# libvirtd alone cannot start a QEMU domain: its QEMU driver is a separate package.
[[ " ${missing[*]} " == *" libvirt-daemon "* ]] && missing+=(libvirt-daemon-driver-qemu)
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
install_compose_plugin
