# Functions for one broker process and its state directory, sourced by start.sh, stop.sh and
# node.sh (not run on its own). A state directory holds one node: server.properties,
# log4j2.properties, data/, kafka.log and kafka.pid. A single-node broker is such a directory; a
# cluster is a directory with one such directory per node, node-<id>/.
#
# Callers set `set -euo pipefail` and `here` (the directory of this file); start.sh also sets
# the array format_args (see format_storage).
# shellcheck shell=bash disable=SC2154

repo="$(cd "$here/../.." && pwd)"
# shellcheck source=infra/node-runtime.sh
source "$repo/infra/node-runtime.sh"
use_repo_node "$(basename "$0")"

# The PID in DIR/kafka.pid, printed only while it is a live (not zombie) JVM running
# DIR/server.properties: a recycled PID belongs to someone else and is never taken for our broker
# (nor signalled). A paused (SIGSTOP) broker still counts.
broker_pid() { # DIR
  local pid_file="$1/kafka.pid" pid
  [[ -f "$pid_file" ]] || return 1
  pid="$(<"$pid_file")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$1/server.properties" || return 1
  echo "$pid"
}

# The process state letter from /proc (R, S, T for stopped...), empty once it is gone.
process_state() { # PID
  awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true
}

# The port of the first listener of DIR/server.properties: PLAINTEXT, or SASL_SSL when secured.
broker_port() { # DIR
  local port
  port="$(sed -n 's/^listeners=[A-Z_]*:\/\/127.0.0.1:\([0-9]*\),.*/\1/p' "$1/server.properties")"
  [[ -n "$port" ]] || {
    echo "no listeners=NAME://127.0.0.1:PORT,... line in $1/server.properties" >&2
    return 1
  }
  echo "$port"
}

# COUNT distinct free loopback ports, one a line: all are held open at once, so none repeats.
free_ports() { # COUNT
  node -e 'const net = require("node:net");
    const servers = Array.from({ length: Number(process.argv[1]) }, () => net.createServer());
    Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
      process.stdout.write(servers.map((s) => s.address().port).join("\n") + "\n");
      for (const s of servers) s.close();
    });' "$1"
}

java_command() {
  if [[ -n "${JAVA_HOME:-}" ]]; then
    echo "$JAVA_HOME/bin/java"
  elif [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
    echo /usr/lib/jvm/java-17-openjdk-amd64/bin/java
  else
    command -v java
  fi
}

# A Kafka Uuid is 16 random bytes in URL-safe base64 without padding; Kafka's own generator skips
# ids starting with '-' so they cannot be read as a flag.
new_cluster_id() {
  local id="-"
  while [[ "$id" == -* ]]; do
    id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  echo "$id"
}

write_log4j_properties() { # DIR
  cat >"$1/log4j2.properties" <<'LOG4J'
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
}

# Formats DIR/data for CLUSTER_ID unless it already is formatted; the array format_args (e.g.
# --add-scram credentials of a secured setup) is passed on.
format_storage() { # DIR CLUSTER_ID JAVA LIBS
  [[ ! -f "$1/data/meta.properties" ]] || return 0
  echo "start.sh: formatting $1/data with cluster id $2" >&2
  "$3" -Dlog4j2.configurationFile="$1/log4j2.properties" -cp "$4/*" \
    kafka.tools.StorageTool format --config "$1/server.properties" --cluster-id "$2" \
    ${format_args[@]+"${format_args[@]}"} >>"$1/kafka.log" 2>&1 || {
    echo "start.sh: formatting storage failed; see $1/kafka.log" >&2
    tail -n 20 "$1/kafka.log" >&2
    return 1
  }
}

# Starts DIR's broker in the background and sets launched_pid. The broker must not inherit fd 9
# (the callers' flock), or it would hold the lock for its whole life.
launch_broker() { # DIR JAVA LIBS HEAP_OPTS
  local heap_opts
  read -r -a heap_opts <<<"$4"
  echo "==== start.sh $(date -u +%FT%TZ) ====" >>"$1/kafka.log"
  # setsid: the broker gets its own session, so a Ctrl-C aimed at the caller does not reach it and
  # it is only ever stopped through its PID. From a script, the background child is not a
  # process-group leader, so setsid execs in place and $! is the JVM's PID.
  setsid "$2" "${heap_opts[@]}" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$1/log4j2.properties" \
    -cp "$3/*" kafka.Kafka "$1/server.properties" \
    </dev/null >>"$1/kafka.log" 2>&1 9>&- &
  launched_pid=$!
  echo "$launched_pid" >"$1/kafka.pid"
}

# Runs a command with the KAFKA_* settings of the file client_env (a secured setup's admin), if set.
with_client_env() { # COMMAND...
  (
    if [[ -n "${client_env:-}" ]]; then
      set -a
      # shellcheck source=/dev/null
      source "$client_env"
      set +a
    fi
    "$@"
  )
}

# Exit 0 once ADDRESS answers a metadata request; 1 on timeout; 2 when PID exited first.
await_broker() { # ADDRESS PID TIMEOUT_MS
  (cd "$repo" && with_client_env node --import tsx "$here/await-broker.ts" --brokers "$1" --pid "$2" --timeout-ms "$3")
}

# Waits up to TENTHS tenths of a second for PID to stop being DIR's broker.
await_broker_gone() { # DIR PID TENTHS
  local i
  for ((i = 0; i < $3; i++)); do
    [[ "$(broker_pid "$1" || true)" == "$2" ]] || return 0
    sleep 0.1
  done
  [[ "$(broker_pid "$1" || true)" != "$2" ]]
}

# SIGTERM (controlled shutdown), then SIGKILL after TIMEOUT_S; removes DIR/kafka.pid. SIGCONT
# follows SIGTERM so that a paused broker wakes up to shut down instead of waiting for SIGKILL.
stop_broker() { # DIR TIMEOUT_S
  local pid
  if pid="$(broker_pid "$1")"; then
    echo "${0##*/}: stopping broker $pid in $1" >&2
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
    if ! await_broker_gone "$1" "$pid" "$(($2 * 10))"; then
      echo "${0##*/}: broker $pid still running after ${2}s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      await_broker_gone "$1" "$pid" 100 || {
        echo "${0##*/}: broker $pid survived SIGKILL" >&2
        return 1
      }
    fi
  fi
  rm -f "$1/kafka.pid"
}
