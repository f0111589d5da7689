#!/usr/bin/env bash
# Starts a single-node Kafka (KRaft, broker and controller in one JVM) on 127.0.0.1 and prints its
# bootstrap address (HOST:PORT) as the last line of stdout. Everything else goes to stderr.
#
#   infra/kafka/start.sh [--dir STATE_DIR] [--port PORT]
#
# STATE_DIR (default $REPO/.cache/kafka) holds server.properties, log4j2.properties, data/,
# kafka.log, kafka.pid and bootstrap. The first start on a directory picks free ports (unless
# --port) and formats the storage; later starts reuse the ports from server.properties and keep the
# data. If the directory's broker is already running and answering, prints its address and exits 0.
#
# Env: KAFKA_VERSION, VFIO_CACHE_DIR (see fetch.sh), JAVA_HOME (Java 17+), KAFKA_HEAP_OPTS
# (default "-Xms256m -Xmx768m"), KAFKA_START_TIMEOUT_S (default 90).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state_dir="$repo/.cache/kafka"
port=""

usage() { echo "usage: $0 [--dir STATE_DIR] [--port PORT]" >&2; exit 64; }
while (($#)); do
  case "$1" in
    --dir) [[ $# -ge 2 ]] || usage; state_dir="$2"; shift 2 ;;
    --port) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; port="$2"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "start.sh: unknown argument $1" >&2; usage ;;
  esac
done

mkdir -p "$state_dir"
state_dir="$(cd "$state_dir" && pwd)"
props="$state_dir/server.properties"
pid_file="$state_dir/kafka.pid"
log_file="$state_dir/kafka.log"
timeout_s="${KAFKA_START_TIMEOUT_S:-90}"

# One start at a time per state directory. The broker must not inherit fd 9 (see the launch below),
# or it would hold the lock for its whole life.
exec 9>"$state_dir/.start.lock"
flock 9

# A PID file is trusted only if that process is a Kafka JVM running this directory's config, so a
# recycled PID is never taken for our broker (and stop.sh never signals a stranger).
broker_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid
  pid="$(<"$pid_file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$props" || return 1
  echo "$pid"
}

await_broker() { # address pid timeout_ms
  (cd "$repo" && node --import tsx "$here/await-broker.ts" --brokers "$1" --pid "$2" --timeout-ms "$3")
}

if [[ -f "$props" ]]; then
  existing_port="$(sed -n 's/^listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\),.*/\1/p' "$props")"
  [[ -n "$existing_port" ]] || {
    echo "start.sh: no listeners=PLAINTEXT://127.0.0.1:PORT,... line in $props" >&2
    exit 1
  }
  if [[ -n "$port" && "$port" != "$existing_port" ]]; then
    echo "start.sh: $props already uses port $existing_port, not $port; remove $state_dir to change it" >&2
    exit 64
  fi
  port="$existing_port"
fi
address="127.0.0.1:$port"

if pid="$(broker_pid)"; then
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

if [[ -n "${JAVA_HOME:-}" ]]; then
  java="$JAVA_HOME/bin/java"
elif [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
  java=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
else
  java="$(command -v java)" || { echo "start.sh: no java; Kafka 4 needs Java 17+" >&2; exit 1; }
fi

free_port() {
  node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => {
    process.stdout.write(String(s.address().port)); s.close(); });'
}

if [[ ! -f "$props" ]]; then
  [[ -n "$port" ]] || port="$(free_port)"
  controller_port="$(free_port)"
  while [[ "$controller_port" == "$port" ]]; do controller_port="$(free_port)"; done
  address="127.0.0.1:$port"
  cat >"$props.tmp" <<PROPS
# Written by infra/kafka/start.sh for a single-node local broker; edits survive restarts.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
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

cat >"$state_dir/log4j2.properties" <<'LOG4J'
# Written by infra/kafka/start.sh. Console output is redirected to kafka.log by start.sh.
appender.console.type=Console
appender.console.name=STDOUT
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
logger.state-change.name=state.change.logger
logger.state-change.level=WARN
logger.request.name=kafka.request.logger
logger.request.level=WARN
logger.controller.name=org.apache.kafka.controller
logger.controller.level=INFO
LOG4J

if [[ ! -f "$state_dir/data/meta.properties" ]]; then
  # A Kafka Uuid is 16 random bytes in URL-safe base64 without padding; Kafka's own generator skips
  # ids starting with '-' so they cannot be read as a flag.
  cluster_id="-"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  echo "start.sh: formatting $state_dir/data with cluster id $cluster_id" >&2
  "$java" -Dlog4j2.configurationFile="$state_dir/log4j2.properties" -cp "$libs/*" \
    kafka.tools.StorageTool format --config "$props" --cluster-id "$cluster_id" \
    >>"$log_file" 2>&1 || {
    echo "start.sh: formatting storage failed; see $log_file" >&2
    tail -n 20 "$log_file" >&2
    exit 1
  }
fi

echo "start.sh: starting $(basename "$(dirname "$libs")") on $address, log $log_file" >&2
echo "==== start.sh $(date -u +%FT%TZ) ====" >>"$log_file"
read -r -a heap_opts <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
# setsid: the broker gets its own session, so a Ctrl-C aimed at the caller does not reach it and it
# is only ever stopped through stop.sh and its PID. From a script, the background child is not a
# process-group leader, so setsid execs in place and $! is the JVM's PID.
setsid "$java" "${heap_opts[@]}" \
  -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
  -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$state_dir/log4j2.properties" \
  -cp "$libs/*" kafka.Kafka "$props" \
  </dev/null >>"$log_file" 2>&1 9>&- &
pid=$!
echo "$pid" >"$pid_file"
echo "$address" >"$state_dir/bootstrap"

if ! await_broker "$address" "$pid" "$((timeout_s * 1000))"; then
  echo "start.sh: broker (pid $pid) did not answer on $address within ${timeout_s}s; last lines of $log_file:" >&2
  tail -n 30 "$log_file" >&2
  "$here/stop.sh" --dir "$state_dir" >&2 || true
  exit 1
fi
echo "$address"
