#!/usr/bin/env bash
# Installs what the tests run for real and npm does not bring: Debian's QEMU (a real QMP socket),
# Prometheus 2.42, promtool and Alertmanager (rules, alerts, PromQL, routing), Chromium (the live
# page), Java and Maven (the Kafka broker), binutils and lintian (the single executable and the
# .deb); and, built once from the Go module proxy because Debian does not package them, the
# Docker compose plugin (validates docker-compose.yml) and Prometheus 3 with its promtool (the
# rules and dashboards are tested on both Prometheus versions), and Helm and kubeconform with the
# Kubernetes and prometheus-operator JSON schemas (the Helm chart is linted, rendered and
# validated offline). A no-op when everything is present.
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

# Prometheus 3.16.0 (Go module versions v0.3MM.P are Prometheus 3.MM.P), without its web UI's
# assets (the tests use the HTTP API only). About 5 minutes on 2 cores, once; the binaries are kept
# in $PROMETHEUS3_DIR (test/helpers/prometheus.ts looks there) with the version they were built from.
PROMETHEUS3_VERSION=v0.316.0
PROMETHEUS3_DIR="${VFIO_PROMETHEUS3_DIR:-$HOME/.cache/vfio-telemetry/prometheus3}"

install_prometheus3() {
  if [ "$(cat "$PROMETHEUS3_DIR/VERSION" 2>/dev/null)" = "$PROMETHEUS3_VERSION" ] &&
    [ -x "$PROMETHEUS3_DIR/prometheus" ] && [ -x "$PROMETHEUS3_DIR/promtool" ]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "setup: Go is needed once to build Prometheus 3 ($PROMETHEUS3_VERSION)" >&2
    return 1
  fi
  echo "setup: building Prometheus 3 $PROMETHEUS3_VERSION (once, about 5 minutes)" >&2
  local bin
  bin=$(mktemp -d)
  GOBIN="$bin" GOFLAGS=-mod=mod go install \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS3_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS3_VERSION"
  mkdir -p "$PROMETHEUS3_DIR"
  mv "$bin/prometheus" "$bin/promtool" "$PROMETHEUS3_DIR/"
  echo "$PROMETHEUS3_VERSION" >"$PROMETHEUS3_DIR/VERSION"
  rm -rf "$bin"
}

# Helm 4 and kubeconform, built once from the Go module proxy (about 4 minutes on 2 cores, most
# of it Helm), and the JSON schemas kubeconform validates against, generated offline by
# infra/helm/kube-schemas.ts from the Kubernetes OpenAPI v3 spec in the k8s.io/kubernetes module
# and the prometheus-operator module's CRDs (ServiceMonitor, PrometheusRule), both fetched from
# the module proxy. Kept in $KUBE_TOOLS_DIR (test/e2e/infra/helm.test.ts looks there).
HELM_VERSION=v4.3.2
KUBECONFORM_VERSION=v0.7.0
KUBE_OPENAPI_VERSION=v1.34.2
PROMETHEUS_OPERATOR_VERSION=v0.85.0
KUBE_TOOLS_DIR="${VFIO_KUBE_TOOLS_DIR:-$HOME/.cache/vfio-telemetry/kube-tools}"

install_kube_tools() {
  local want="helm $HELM_VERSION kubeconform $KUBECONFORM_VERSION"
  local schemas="$KUBE_TOOLS_DIR/schemas-$KUBE_OPENAPI_VERSION-$PROMETHEUS_OPERATOR_VERSION"
  if [ "$(cat "$KUBE_TOOLS_DIR/VERSION" 2>/dev/null)" = "$want" ] &&
    [ -x "$KUBE_TOOLS_DIR/helm" ] && [ -x "$KUBE_TOOLS_DIR/kubeconform" ] &&
    [ -e "$schemas/.complete" ]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "setup: Go is needed once to build Helm and kubeconform and fetch the Kubernetes schemas" >&2
    return 1
  fi
  local work
  work=$(mktemp -d)
  mkdir -p "$KUBE_TOOLS_DIR"
  if [ "$(cat "$KUBE_TOOLS_DIR/VERSION" 2>/dev/null)" != "$want" ] ||
    [ ! -x "$KUBE_TOOLS_DIR/helm" ] || [ ! -x "$KUBE_TOOLS_DIR/kubeconform" ]; then
    echo "setup: building Helm $HELM_VERSION and kubeconform $KUBECONFORM_VERSION (once, about 4 minutes)" >&2
    # One module per `go install` when versions are given.
    (cd "$work" && GOBIN="$work/bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION")
    (cd "$work" && GOBIN="$work/bin" GOFLAGS=-mod=mod go install \
      "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION")
    mv "$work/bin/helm" "$work/bin/kubeconform" "$KUBE_TOOLS_DIR/"
    echo "$want" >"$KUBE_TOOLS_DIR/VERSION"
  fi
  if [ ! -e "$schemas/.complete" ]; then
    echo "setup: generating the Kubernetes $KUBE_OPENAPI_VERSION and prometheus-operator $PROMETHEUS_OPERATOR_VERSION JSON schemas (once)" >&2
    local k8s operator
    k8s=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBE_OPENAPI_VERSION" |
      sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    operator=$(cd "$work" && go mod download -json \
      "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
      sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    local repo crds
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    crds="$operator/example/prometheus-operator-crd/monitoring.coreos.com"
    rm -rf "$schemas"
    (cd "$repo" && PATH="$repo/node_modules/.bin:$PATH" node --import tsx infra/helm/kube-schemas.ts \
      --openapi "$k8s/api/openapi-spec/v3" \
      --crd "${crds}_servicemonitors.yaml" --crd "${crds}_podmonitors.yaml" \
      --crd "${crds}_prometheusrules.yaml" --out "$schemas")
    touch "$schemas/.complete"
  fi
  rm -rf "$work"
}

declare -A needs=(
  [qemu-system-x86_64]=qemu-system-x86
  [promtool]=prometheus
  [prometheus]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [chromium]=chromium
  [java]=openjdk-17-jre-headless
  [mvn]=maven
  [libvirtd]=libvirt-daemon
  [virsh]=libvirt-clients
  [systemd-analyze]=systemd
  [strace]=strace
  [lintian]=lintian
  [strip]=binutils
  [dpkg-deb]=dpkg
  [faketime]=faketime
  [shellcheck]=shellcheck
)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_compose_plugin
  install_prometheus3
  install_kube_tools
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
install_prometheus3
install_kube_tools
