#!/usr/bin/env bash
# Starts a libvirt session daemon for trying the collector's libvirt source by hand (the tests
# use test/helpers/libvirtd.ts, which does the same): everything under STATE_DIR (XDG config,
# cache, data and runtime dirs; qemu.conf with stdio_handler = "file", so no virtlogd), run as
# `nobody` when started as root, as the caller otherwise. Prints the URI to give the collector
# and virsh:
#
#   uri="$(infra/libvirt/start-session.sh [--dir STATE_DIR])"   (default .cache/libvirtd)
#   virsh -c "$uri" create DOMAIN.xml      (e.g. domainXml() of test/helpers/libvirtd.ts)
#   vfio-telemetry collect --libvirt "$uri" --spool-dir ...
#   infra/libvirt/stop-session.sh [--dir STATE_DIR]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state_dir="$repo/.cache/libvirtd"
usage() { echo "usage: $0 [--dir STATE_DIR]" >&2; exit 64; }
while (($#)); do
  case "$1" in
    --dir) [[ $# -ge 2 ]] || usage; state_dir="$2"; shift 2 ;;
    *) usage ;;
  esac
done

mkdir -p "$state_dir"/{cfg/libvirt,cache,data,run}
state_dir="$(cd "$state_dir" && pwd)"
socket="$state_dir/run/libvirt/libvirt-sock"
uri="qemu+unix:///session?socket=$socket"
if [[ -f "$state_dir/libvirtd.pid" ]] && kill -0 "$(cat "$state_dir/libvirtd.pid")" 2>/dev/null; then
  echo "$uri"
  exit 0
fi
echo 'stdio_handler = "file"' >"$state_dir/cfg/libvirt/qemu.conf"
run=()
if [[ $(id -u) -eq 0 ]]; then
  chown -R nobody:nogroup "$state_dir"
  run=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  if ! "${run[@]}" test -w "$state_dir/run"; then
    echo "start-session.sh: nobody cannot reach $state_dir (a parent directory is closed to it)" >&2
    exit 1
  fi
fi
rm -f "$socket"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$state_dir" \
  XDG_CONFIG_HOME="$state_dir/cfg" XDG_CACHE_HOME="$state_dir/cache" \
  XDG_DATA_HOME="$state_dir/data" XDG_RUNTIME_DIR="$state_dir/run" \
  "${run[@]}" libvirtd >"$state_dir/libvirtd.log" 2>&1 &
echo $! >"$state_dir/libvirtd.pid"
for _ in $(seq 300); do
  if [[ -S "$socket" ]] && virsh -c "$uri" uri >/dev/null 2>&1; then
    echo "$uri"
    exit 0
  fi
  kill -0 "$(cat "$state_dir/libvirtd.pid")" 2>/dev/null || break
  sleep 0.1
done
echo "start-session.sh: libvirtd did not come up; see $state_dir/libvirtd.log" >&2
exit 1
