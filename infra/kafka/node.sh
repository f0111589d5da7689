#!/usr/bin/env bash
# One node of a cluster that `start.sh --nodes N --dir STATE_DIR` started, for fault tests. The node
# is found by the PID in STATE_DIR/node-ID/kafka.pid, never by process name, and only while that
# PID runs the node's own server.properties.
#
#   infra/kafka/node.sh --dir STATE_DIR --node ID ACTION
#
#   stop     SIGTERM (controlled shutdown), SIGKILL after KAFKA_STOP_TIMEOUT_S (default 20); waits
#            until the process is gone. Exits 0 when the node was not running. A node without a
#            controller quorum (the last one up) cannot finish a controlled shutdown and ends by
#            SIGKILL; stop.sh stops all nodes at once instead.
#   kill     SIGKILL; waits until the process is gone. Exits 0 when the node was not running.
#   pause    SIGSTOP; waits until the process is stopped. The node keeps its sockets open but
#            answers nothing, like a hung machine.
#   resume   SIGCONT; waits until the process runs again.
#   start    starts the node again with its data and ports (unless it runs) and waits until it
#            answers a metadata request (KAFKA_START_TIMEOUT_S, default 90); prints its address.
#   pid      prints the PID.
#   address  prints HOST:PORT of the node's broker listener.
#
# pause, resume and pid exit 3 when the node is not running.
#
# Env: KAFKA_HEAP_OPTS (default "-Xms192m -Xmx512m"), and those of start.sh for `start`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/kafka/broker-process.sh
source "$here/broker-process.sh"
state_dir=""
node=""
action=""

usage() {
  echo "usage: $0 --dir STATE_DIR --node ID stop|kill|pause|resume|start|pid|address" >&2
  exit 64
}
while (($#)); do
  case "$1" in
    --dir) [[ $# -ge 2 ]] || usage; state_dir="$2"; shift 2 ;;
    --node) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; node="$2"; shift 2 ;;
    -h | --help) usage ;;
    stop | kill | pause | resume | start | pid | address)
      [[ -z "$action" ]] || usage; action="$1"; shift ;;
    *) echo "node.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ -n "$state_dir" && -n "$node" && -n "$action" ]] || usage

node_dir="$state_dir/node-$node"
[[ -f "$node_dir/server.properties" ]] || {
  echo "node.sh: no node $node in $state_dir (no node-$node/server.properties)" >&2
  exit 1
}
state_dir="$(cd "$state_dir" && pwd)"
node_dir="$state_dir/node-$node"
# A secured cluster (start.sh --secure) is asked whether a node answers as its admin.
client_env=""
[[ ! -f "$state_dir/tls/admin.env" ]] || client_env="$state_dir/tls/admin.env"

running_pid() {
  broker_pid "$node_dir" || {
    echo "node.sh: node $node in $state_dir is not running" >&2
    exit 3
  }
}

# Waits up to 10 s until PID's state letter is (or, with !, is not) STATE.
await_state() { # PID [!] STATE
  local i want_not=false label="$2"
  [[ "$2" != "!" ]] || { want_not=true; shift; label="not $2"; }
  for ((i = 0; i < 100; i++)); do
    if $want_not; then
      [[ "$(process_state "$1")" != "$2" ]] && return 0
    else
      [[ "$(process_state "$1")" == "$2" ]] && return 0
    fi
    sleep 0.1
  done
  echo "node.sh: process $1 did not reach state $label within 10 s" >&2
  return 1
}

case "$action" in
  address) echo "127.0.0.1:$(broker_port "$node_dir")" ;;
  pid) running_pid ;;
  stop) stop_broker "$node_dir" "${KAFKA_STOP_TIMEOUT_S:-20}" ;;
  kill)
    if pid="$(broker_pid "$node_dir")"; then
      echo "node.sh: killing node $node (broker $pid) in $state_dir" >&2
      kill -KILL "$pid"
      await_broker_gone "$node_dir" "$pid" 100 || {
        echo "node.sh: broker $pid survived SIGKILL" >&2
        exit 1
      }
    fi
    rm -f "$node_dir/kafka.pid"
    ;;
  pause)
    pid="$(running_pid)"
    echo "node.sh: pausing node $node (broker $pid) in $state_dir" >&2
    kill -STOP "$pid"
    await_state "$pid" T
    ;;
  resume)
    pid="$(running_pid)"
    echo "node.sh: resuming node $node (broker $pid) in $state_dir" >&2
    kill -CONT "$pid"
    await_state "$pid" ! T
    ;;
  start)
    exec 9>"$state_dir/.start.lock"
    flock 9
    address="127.0.0.1:$(broker_port "$node_dir")"
    timeout_ms="$((${KAFKA_START_TIMEOUT_S:-90} * 1000))"
    launched_pid=""
    if pid="$(broker_pid "$node_dir")"; then
      echo "node.sh: node $node (broker $pid) in $state_dir already running" >&2
    else
      [[ -f "$node_dir/data/meta.properties" ]] || {
        echo "node.sh: node $node in $state_dir was never formatted; run start.sh --dir $state_dir" >&2
        exit 1
      }
      libs="$("$here/fetch.sh" | tail -n1)"
      java="$(java_command)" || { echo "node.sh: no java; Kafka 4 needs Java 17+" >&2; exit 1; }
      write_log4j_properties "$node_dir"
      echo "node.sh: starting node $node on $address, log $node_dir/kafka.log" >&2
      launch_broker "$node_dir" "$java" "$libs" "${KAFKA_HEAP_OPTS:--Xms192m -Xmx512m}"
      pid="$launched_pid"
    fi
    await_broker "$address" "$pid" "$timeout_ms" || {
      echo "node.sh: node $node (pid $pid) did not answer on $address; last lines of $node_dir/kafka.log:" >&2
      tail -n 30 "$node_dir/kafka.log" >&2
      [[ -z "$launched_pid" ]] || stop_broker "$node_dir" "${KAFKA_STOP_TIMEOUT_S:-20}" || true
      exit 1
    }
    echo "$address"
    ;;
esac
