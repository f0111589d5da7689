#!/usr/bin/env bash
# Puts the jars of a Kafka broker (pom.xml beside this script) into a cache outside git and prints
# the libs directory as the last line of stdout. The first run downloads from Maven Central through
# `mvn dependency:copy-dependencies`; later runs find the stamp and return without Maven or network.
#
# Env: KAFKA_VERSION (default 4.1.1), VFIO_CACHE_DIR (default $XDG_CACHE_HOME/vfio-telemetry,
# else ~/.cache/vfio-telemetry).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${KAFKA_VERSION:-4.1.1}"
cache_root="${VFIO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio-telemetry}"
home_dir="$cache_root/kafka-$version"
libs="$home_dir/libs"
stamp="$home_dir/libs.stamp"
# The stamp names the pom it was made from, so editing pom.xml fetches again.
pom_sum="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"

libs_complete() {
  [[ -f "$stamp" ]] || return 1
  [[ "$(head -n1 "$stamp")" == "pom-sha256 $pom_sum" ]] || return 1
  local jar
  while read -r jar; do
    [[ -f "$libs/$jar" ]] || return 1
  done < <(tail -n +2 "$stamp")
}

if libs_complete; then
  echo "$libs"
  exit 0
fi

mkdir -p "$home_dir"
# Two start.sh runs at once (the suite runner and a private test broker) must not both download
# into the same directory.
exec 9>"$home_dir/fetch.lock"
flock 9
if libs_complete; then
  echo "$libs"
  exit 0
fi

command -v mvn >/dev/null || { echo "fetch.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
echo "fetch.sh: downloading Kafka $version jars into $libs" >&2
staging="$home_dir/libs.partial"
rm -rf "$staging"
mvn -B -q -f "$here/pom.xml" \
  -Dstyle.color=never \
  -Dkafka.version="$version" \
  -DincludeScope=runtime \
  -DoutputDirectory="$staging" \
  dependency:copy-dependencies >&2
[[ -f "$staging/kafka_2.13-$version.jar" ]] || {
  echo "fetch.sh: Maven finished but $staging has no kafka_2.13-$version.jar" >&2
  exit 1
}
rm -rf "$libs"
mv "$staging" "$libs"
{
  echo "pom-sha256 $pom_sum"
  (cd "$libs" && ls -1 -- *.jar)
} >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
echo "$libs"
