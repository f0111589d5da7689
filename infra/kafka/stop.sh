#!/usr/bin/env bash
# Stops the broker that start.sh started in STATE_DIR, by the PID in STATE_DIR/kafka.pid and never by
# process name: SIGTERM (controlled shutdown), then SIGKILL after KAFKA_STOP_TIMEOUT_S (default 20).
# Exits 0 when no broker of that directory is running, including when there was none.
#
#   infra/kafka/stop.sh [--dir STATE_DIR]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state_dir="$(cd "$here/../.." && pwd)/.cache/kafka"

usage() { echo "usage: $0 [--dir STATE_DIR]" >&2; exit 64; }
while (($#)); do
  case "$1" in
    --dir) [[ $# -ge 2 ]] || usage; state_dir="$2"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "stop.sh: unknown argument $1" >&2; usage ;;
  esac
done

[[ -d "$state_dir" ]] || exit 0
state_dir="$(cd "$state_dir" && pwd)"
pid_file="$state_dir/kafka.pid"
props="$state_dir/server.properties"
timeout_s="${KAFKA_STOP_TIMEOUT_S:-20}"

[[ -f "$pid_file" ]] || exit 0
pid="$(<"$pid_file")"

# The PID counts only while it is a live (not zombie) JVM running this directory's
# server.properties; a recycled PID belongs to someone else and is left alone.
is_our_broker() {
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$props"
}

wait_gone() { # tenths of a second
  local i
  for ((i = 0; i < $1; i++)); do
    is_our_broker || return 0
    sleep 0.1
  done
  ! is_our_broker
}

if is_our_broker; then
  echo "stop.sh: stopping broker $pid in $state_dir" >&2
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$((timeout_s * 10))"; then
    echo "stop.sh: broker $pid still running after ${timeout_s}s, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone 100 || { echo "stop.sh: broker $pid survived SIGKILL" >&2; exit 1; }
  fi
fi
rm -f "$pid_file"
