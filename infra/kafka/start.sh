#!/usr/bin/env bash
# Starts Kafka (KRaft) on 127.0.0.1 and prints its bootstrap address as the last line of stdout.
# Everything else goes to stderr.
#
#   infra/kafka/start.sh [--dir STATE_DIR] [--port PORT]   one node; prints HOST:PORT
#   infra/kafka/start.sh --nodes N [--dir STATE_DIR]        N nodes (3-9); prints HOST:PORT,HOST:PORT,...
#   ... --secure                                            secured, either way (see secure.sh)
#
# --secure: each node has a SASL_SSL listener (SCRAM-SHA-512; its address is what is printed) and
# an SSL listener that requires a client certificate, the StandardAuthorizer with
# allow.everyone.if.no.acl.found=false and one super user, admin. STATE_DIR/tls holds the CA, the
# certificates, a SCRAM password per principal (admin, collector, processor, exporter, audit,
# created at format time) and a file of KAFKA_* settings per principal and listener;
# STATE_DIR/clients.env names both listeners' bootstrap lists and the CA. No principal but admin
# may do anything until ACLs are granted (infra/kafka/acls.ts). A secured directory restarts
# secured without the flag.
#
# One node: STATE_DIR (default $REPO/.cache/kafka) holds server.properties, log4j2.properties,
# data/, kafka.log, kafka.pid and bootstrap. A cluster: STATE_DIR/node-<id>/ (id 1..N) holds those
# files for each node and STATE_DIR/bootstrap the address list. Every node of a cluster is both
# a broker and a voter of the controller quorum; topics get 3 replicas, 2 of which must be in sync.
#
# The first start on a directory picks free ports (unless --port) and formats the storage; later
# starts reuse the ports from server.properties and keep the data. Nodes of the directory that
# are already running and answering are left alone; if all are, it only prints the address. On an
# existing cluster directory --nodes may be left out.
#
# Env: KAFKA_VERSION, VFIO_CACHE_DIR (see fetch.sh), JAVA_HOME (Java 17+), KAFKA_HEAP_OPTS
# (default "-Xms256m -Xmx768m" for one node, "-Xms192m -Xmx512m" for each node of a cluster),
# KAFKA_START_TIMEOUT_S (default 90 for one node, 150 for a cluster).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/kafka/broker-process.sh
source "$here/broker-process.sh"
# shellcheck source=infra/kafka/secure.sh
source "$here/secure.sh"
state_dir="$repo/.cache/kafka"
port=""
nodes=""
secure=false
format_args=()
client_env=""

usage() {
  echo "usage: $0 [--dir STATE_DIR] [--port PORT] [--secure] | $0 --nodes N [--dir STATE_DIR] [--secure]" >&2
  exit 64
}
while (($#)); do
  case "$1" in
    --dir) [[ $# -ge 2 ]] || usage; state_dir="$2"; shift 2 ;;
    --port) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; port="$2"; shift 2 ;;
    --nodes) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; nodes="$2"; shift 2 ;;
    --secure) secure=true; shift ;;
    -h | --help) usage ;;
    *) echo "start.sh: unknown argument $1" >&2; usage ;;
  esac
done

mkdir -p "$state_dir"
state_dir="$(cd "$state_dir" && pwd)"

# One start at a time per state directory (node.sh takes the same lock).
exec 9>"$state_dir/.start.lock"
flock 9

shopt -s nullglob
existing_nodes=("$state_dir"/node-*/server.properties)
shopt -u nullglob
if [[ -z "$nodes" ]]; then
  nodes=1
  ((${#existing_nodes[@]} == 0)) || nodes=${#existing_nodes[@]}
fi
# Two voters cannot lose either of them, and three replicas need three brokers.
if [[ "$nodes" != 1 ]] && ((nodes < 3 || nodes > 9)); then
  echo "start.sh: --nodes must be 1 or 3 to 9, not $nodes" >&2
  exit 64
fi
if ((nodes == 1 && ${#existing_nodes[@]} > 0)); then
  echo "start.sh: $state_dir holds a ${#existing_nodes[@]}-node cluster; remove it for one node" >&2
  exit 64
fi
if ((nodes > 1)); then
  [[ -z "$port" ]] || { echo "start.sh: --port is for one node only" >&2; exit 64; }
  if [[ -f "$state_dir/server.properties" ]]; then
    echo "start.sh: $state_dir holds a single-node broker; remove it for a cluster" >&2
    exit 64
  fi
  if ((${#existing_nodes[@]} > 0 && ${#existing_nodes[@]} != nodes)); then
    echo "start.sh: $state_dir holds a ${#existing_nodes[@]}-node cluster, not $nodes; remove it to change" >&2
    exit 64
  fi
fi

# A directory made secured stays secured; a plaintext one cannot become secured in place.
if [[ -f "$state_dir/tls/ca.pem" ]]; then
  secure=true
elif $secure && { [[ -f "$state_dir/server.properties" ]] || ((${#existing_nodes[@]} > 0)); }; then
  echo "start.sh: $state_dir holds a plaintext broker; remove it for --secure" >&2
  exit 64
fi
if $secure; then
  make_secure_material "$state_dir"
  mapfile -t format_args < <(scram_format_args "$state_dir")
  client_env="$state_dir/tls/admin.env"
fi

# The SSL listener's port of DIR/server.properties (a secured node's second listener).
ssl_port() { # DIR
  sed -n 's/^listeners=SASL_SSL:\/\/127.0.0.1:[0-9]*,SSL:\/\/127.0.0.1:\([0-9]*\),.*/\1/p' "$1/server.properties"
}

if ((nodes == 1)); then
  timeout_s="${KAFKA_START_TIMEOUT_S:-90}"
else
  timeout_s="${KAFKA_START_TIMEOUT_S:-150}"
fi

start_single_node() {
  local props="$state_dir/server.properties" pid_file="$state_dir/kafka.pid"
  local log_file="$state_dir/kafka.log" existing_port address pid libs java controller_port

  if [[ -f "$props" ]]; then
    existing_port="$(broker_port "$state_dir")" || exit 1
    if [[ -n "$port" && "$port" != "$existing_port" ]]; then
      echo "start.sh: $props already uses port $existing_port, not $port; remove $state_dir to change it" >&2
      exit 64
    fi
    port="$existing_port"
  fi
  address="127.0.0.1:$port"
  if $secure && [[ -f "$props" ]]; then
    write_client_settings "$state_dir" "$address" "127.0.0.1:$(ssl_port "$state_dir")"
  fi

  if pid="$(broker_pid "$state_dir")"; then
    if await_broker "$address" "$pid" "$((timeout_s * 1000))"; then
      echo "start.sh: broker $pid in $state_dir already running" >&2
      echo "$address"
      exit 0
    fi
    echo "start.sh: broker $pid in $state_dir is running but does not answer; see $log_file" >&2
    exit 1
  fi
  rm -f "$pid_file"

  libs="$("$here/fetch.sh" | tail -n1)"
  java="$(java_command)" || { echo "start.sh: no java; Kafka 4 needs Java 17+" >&2; exit 1; }

  if [[ ! -f "$props" ]]; then
    local ports listener_lines
    mapfile -t ports < <(free_ports 3)
    if [[ -n "$port" ]]; then
      local others=() p
      for p in "${ports[@]}"; do [[ "$p" == "$port" ]] || others+=("$p"); done
      ports=("$port" "${others[@]}")
    fi
    port="${ports[0]}"
    controller_port="${ports[1]}"
    address="127.0.0.1:$port"
    if $secure; then
      listener_lines="listeners=SASL_SSL://$address,SSL://127.0.0.1:${ports[2]},CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=SASL_SSL://$address,SSL://127.0.0.1:${ports[2]}
$(secure_properties "$state_dir/tls")"
      write_client_settings "$state_dir" "$address" "127.0.0.1:${ports[2]}"
    else
      listener_lines="listeners=PLAINTEXT://$address,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://$address
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    fi
    cat >"$props.tmp" <<PROPS
# Written by infra/kafka/start.sh for a single-node local broker; edits survive restarts.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
$listener_lines
log.dirs=$state_dir/data
# One node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
num.partitions=3
# Topics are created explicitly (infra/kafka/create-topics.ts, test helpers), so a typo fails.
auto.create.topics.enable=false
# Tests start consumer groups constantly; the 3 s default delay only slows the first join.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.check.interval.ms=300000
log.segment.bytes=104857600
PROPS
    mv "$props.tmp" "$props"
  fi

  write_log4j_properties "$state_dir"
  format_storage "$state_dir" "$(new_cluster_id)" "$java" "$libs" || exit 1

  echo "start.sh: starting $(basename "$(dirname "$libs")") on $address, log $log_file" >&2
  launch_broker "$state_dir" "$java" "$libs" "${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
  pid="$launched_pid"
  echo "$address" >"$state_dir/bootstrap"

  if ! await_broker "$address" "$pid" "$((timeout_s * 1000))"; then
    echo "start.sh: broker (pid $pid) did not answer on $address within ${timeout_s}s; last lines of $log_file:" >&2
    tail -n 30 "$log_file" >&2
    "$here/stop.sh" --dir "$state_dir" >&2 || true
    exit 1
  fi
  echo "$address"
}

# The listener lines of node ID of a cluster (plaintext or secured).
cluster_listener_lines() { # ID
  local broker="127.0.0.1:${broker_ports[$1 - 1]}" controller="127.0.0.1:${controller_ports[$1 - 1]}"
  if $secure; then
    echo "listeners=SASL_SSL://$broker,SSL://127.0.0.1:${ssl_ports[$1 - 1]},CONTROLLER://$controller"
    echo "advertised.listeners=SASL_SSL://$broker,SSL://127.0.0.1:${ssl_ports[$1 - 1]}"
    secure_properties "$state_dir/tls"
  else
    echo "listeners=PLAINTEXT://$broker,CONTROLLER://$controller"
    echo "advertised.listeners=PLAINTEXT://$broker"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  fi
}

# server.properties of node ID of a cluster whose brokers listen on broker_ports and whose
# controllers listen on controller_ports (arrays of start_cluster, index id-1).
write_cluster_node_properties() { # ID
  local id="$1" node_dir="$state_dir/node-$1" voters="" i
  for ((i = 1; i <= nodes; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${controller_ports[i - 1]}"
  done
  mkdir -p "$node_dir"
  cat >"$node_dir/server.properties.tmp" <<PROPS
# Written by infra/kafka/start.sh for node $id of a $nodes-node local cluster; edits survive restarts.
# Every node is a broker and a controller, and every controller is a voter: any one node can stop
# and the quorum (a majority of voters) and all partitions (3 replicas) stay available.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
$(cluster_listener_lines "$id")
log.dirs=$node_dir/data
# Three replicas, two in sync for acks=all: a write acknowledged to a producer survives the loss of
# any one node, and a replica that fell out of sync never becomes leader (it could lack such writes).
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
num.partitions=3
# Topics are created explicitly (infra/kafka/create-topics.ts, test helpers), so a typo fails.
auto.create.topics.enable=false
# Tests start consumer groups constantly; the 3 s default delay only slows the first join.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
log.retention.check.interval.ms=300000
log.segment.bytes=104857600
PROPS
  mv "$node_dir/server.properties.tmp" "$node_dir/server.properties"
}

# Reports a cluster start that failed at node ID, stops the nodes this run launched (the array
# `launched` of start_cluster) and exits 1.
fail_cluster() { # ID MESSAGE
  local failed_log="$state_dir/node-$1/kafka.log" id
  echo "start.sh: $2; last lines of $failed_log:" >&2
  tail -n 30 "$failed_log" >&2
  for id in "${launched[@]}"; do
    stop_broker "$state_dir/node-$id" "${KAFKA_STOP_TIMEOUT_S:-20}" >&2 || true
  done
  exit 1
}

start_cluster() {
  local id node_dir libs java cluster_id pid port bootstrap deadline remaining_ms formatter
  local ports=() broker_ports=() controller_ports=() ssl_ports=() addresses=() pids=() launched=()
  local to_start=() formatters=() ssl_addresses=()

  if ((${#existing_nodes[@]} == 0)); then
    mapfile -t ports < <(free_ports "$((3 * nodes))")
    broker_ports=("${ports[@]:0:nodes}")
    controller_ports=("${ports[@]:nodes:nodes}")
    ssl_ports=("${ports[@]:2*nodes}")
    for ((id = 1; id <= nodes; id++)); do
      write_cluster_node_properties "$id"
    done
  fi
  for ((id = 1; id <= nodes; id++)); do
    [[ -f "$state_dir/node-$id/server.properties" ]] || {
      echo "start.sh: $state_dir has no node-$id/server.properties; remove $state_dir to start over" >&2
      exit 1
    }
    port="$(broker_port "$state_dir/node-$id")" || exit 1
    addresses+=("127.0.0.1:$port")
    ! $secure || ssl_addresses+=("127.0.0.1:$(ssl_port "$state_dir/node-$id")")
  done
  bootstrap="$(IFS=,; echo "${addresses[*]}")"
  ! $secure || write_client_settings "$state_dir" "$bootstrap" "$(IFS=,; echo "${ssl_addresses[*]}")"

  for ((id = 1; id <= nodes; id++)); do
    if pid="$(broker_pid "$state_dir/node-$id")"; then
      echo "start.sh: node $id (broker $pid) in $state_dir already running" >&2
      pids[id - 1]="$pid"
    else
      rm -f "$state_dir/node-$id/kafka.pid"
      to_start+=("$id")
    fi
  done

  if ((${#to_start[@]} > 0)); then
    libs="$("$here/fetch.sh" | tail -n1)"
    java="$(java_command)" || { echo "start.sh: no java; Kafka 4 needs Java 17+" >&2; exit 1; }
    # All nodes share one cluster id: that of a node formatted before, or a new one.
    cluster_id="$(awk -F= '$1 == "cluster.id" { print $2; exit }' \
      "$state_dir"/node-*/data/meta.properties 2>/dev/null || true)"
    [[ -n "$cluster_id" ]] || cluster_id="$(new_cluster_id)"
    # Formatting is a JVM start of its own: all at once, and before any broker competes for the CPU.
    for id in "${to_start[@]}"; do
      write_log4j_properties "$state_dir/node-$id"
      format_storage "$state_dir/node-$id" "$cluster_id" "$java" "$libs" &
      formatters+=("$!")
    done
    for formatter in "${formatters[@]}"; do
      wait "$formatter" || exit 1
    done
    for id in "${to_start[@]}"; do
      node_dir="$state_dir/node-$id"
      echo "start.sh: starting node $id of $nodes ($(basename "$(dirname "$libs")")) on ${addresses[id - 1]}, log $node_dir/kafka.log" >&2
      launch_broker "$node_dir" "$java" "$libs" "${KAFKA_HEAP_OPTS:--Xms192m -Xmx512m}"
      pids[id - 1]="$launched_pid"
      launched+=("$id")
    done
  fi
  echo "$bootstrap" >"$state_dir/bootstrap"

  # The nodes come up together: none can serve before a majority of voters has elected a leader.
  deadline=$((SECONDS + timeout_s))
  for ((id = 1; id <= nodes; id++)); do
    remaining_ms=$(((deadline - SECONDS) * 1000))
    ((remaining_ms > 0)) || remaining_ms=1
    await_broker "${addresses[id - 1]}" "${pids[id - 1]}" "$remaining_ms" ||
      fail_cluster "$id" "node $id (pid ${pids[id - 1]}) did not answer on ${addresses[id - 1]} within ${timeout_s}s"
  done
  remaining_ms=$(((deadline - SECONDS) * 1000))
  ((remaining_ms > 0)) || remaining_ms=1
  (cd "$repo" && with_client_env node --import tsx "$here/await-cluster.ts" --brokers "$bootstrap" \
    --count "$nodes" --timeout-ms "$remaining_ms") ||
    fail_cluster 1 "the metadata of $bootstrap did not list $nodes brokers within ${timeout_s}s"
  ((${#launched[@]} > 0)) || echo "start.sh: all $nodes nodes in $state_dir already running" >&2
  echo "$bootstrap"
}

if ((nodes == 1)); then
  start_single_node
else
  start_cluster
fi
