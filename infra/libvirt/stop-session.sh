#!/usr/bin/env bash
# Stops what start-session.sh started in STATE_DIR, by PID only: every domain's QEMU (the pid
# files under run/libvirt/qemu/run), then libvirtd (libvirtd.pid). Exits 0 when nothing runs.
#
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
[[ -d "$state_dir" ]] || exit 0

shopt -s nullglob
for file in "$state_dir"/run/libvirt/qemu/run/*.pid; do
  [[ "$(basename "$file")" == driver.pid ]] && continue
  pid="$(cat "$file")"
  if [[ "$pid" =~ ^[0-9]+$ ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
done
if [[ -f "$state_dir/libvirtd.pid" ]]; then
  pid="$(cat "$state_dir/libvirtd.pid")"
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state_dir/libvirtd.pid"
fi
