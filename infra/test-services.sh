# shellcheck shell=bash
# Services for the test suite, sourced by infra/test.sh (not run on its own):
#
#   source infra/test-services.sh
#   trap stop_test_kafka EXIT
#   start_test_kafka        # exports KAFKA_BROKERS
#
# start_test_kafka uses KAFKA_BROKERS when it is set (a broker someone else runs). Otherwise it
# starts a fresh broker with infra/kafka/start.sh in $REPO/.cache/test-kafka (wiped first, so each
# run starts empty), exports KAFKA_BROKERS and creates the project's topics. stop_test_kafka stops
# that broker by PID, and only if start_test_kafka started it. Neither changes the caller's shell
# options.

_test_services_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_test_kafka_dir="$_test_services_repo/.cache/test-kafka"
_test_kafka_started=false
# shellcheck source=infra/node-runtime.sh
source "$_test_services_repo/infra/node-runtime.sh"

start_test_kafka() {
  if [[ -n "${KAFKA_BROKERS:-}" ]]; then
    echo "test-services: using KAFKA_BROKERS=$KAFKA_BROKERS" >&2
    return 0
  fi
  # A broker left by an interrupted run would keep the directory's files open; stop it first.
  bash "$_test_services_repo/infra/kafka/stop.sh" --dir "$_test_kafka_dir" || return 1
  rm -rf "$_test_kafka_dir"
  _test_kafka_started=true
  use_repo_node test-services.sh
  local address
  address="$(bash "$_test_services_repo/infra/kafka/start.sh" --dir "$_test_kafka_dir" | tail -n1)" ||
    return 1
  [[ -n "$address" ]] || return 1
  export KAFKA_BROKERS="$address"
  echo "test-services: Kafka at $KAFKA_BROKERS, log $_test_kafka_dir/kafka.log" >&2
  (cd "$_test_services_repo" &&
    node --import tsx infra/kafka/create-topics.ts --brokers "$KAFKA_BROKERS" >&2) || return 1
}

stop_test_kafka() {
  if [[ "$_test_kafka_started" == true ]]; then
    bash "$_test_services_repo/infra/kafka/stop.sh" --dir "$_test_kafka_dir"
    _test_kafka_started=false
  fi
}
