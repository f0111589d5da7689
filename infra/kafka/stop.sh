#!/usr/bin/env bash
# Stops what start.sh started in STATE_DIR, by the PIDs in its kafka.pid files and never by process
# name: the single-node broker (STATE_DIR/kafka.pid) or every node of a cluster
# (STATE_DIR/node-*/kafka.pid, all at once). SIGTERM (controlled shutdown), then SIGKILL after
# KAFKA_STOP_TIMEOUT_S (default 20); a paused node is resumed to shut down. Exits 0 when nothing of
# that directory is running, including when nothing was.
#
#   infra/kafka/stop.sh [--dir STATE_DIR]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/kafka/broker-process.sh
source "$here/broker-process.sh"
state_dir="$repo/.cache/kafka"

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
timeout_s="${KAFKA_STOP_TIMEOUT_S:-20}"

shopt -s nullglob
node_dirs=("$state_dir" "$state_dir"/node-*/)
shopt -u nullglob

# All nodes at once: stopped one after the other, the last node of a cluster has no controller
# quorum left to approve its controlled shutdown and hangs until SIGKILL (over 20 s here, against
# about 5 s for all three together).
stoppers=()
for dir in "${node_dirs[@]}"; do
  dir="${dir%/}"
  [[ -f "$dir/kafka.pid" ]] || continue
  stop_broker "$dir" "$timeout_s" &
  stoppers+=("$!")
done
status=0
for stopper in "${stoppers[@]}"; do
  wait "$stopper" || status=1
done
exit "$status"
