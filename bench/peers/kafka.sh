#!/usr/bin/env bash
# bench/peers/kafka.sh — Apache Kafka (one KRaft broker) for bench/compare.sh.
#
#   bench/peers/kafka.sh install  print a directory holding the broker's jars
#                                 (kafka_2.13 and its runtime dependencies)
#
# Copies the dependencies of bench/peers/kafka/pom.xml from Maven Central
# with `mvn dependency:copy-dependencies` into $CACHE/kafka-<version>/libs
# (once; ~/.m2 caches the downloads). KAFKA_VERSION overrides the version
# (default 4.1.1). `runnel-bench kafka --kafka-libs DIR` then writes
# server.properties, formats the log directory with kafka.tools.StorageTool
# and starts `java -cp 'DIR/*' kafka.Kafka` on 127.0.0.1 run-time ports, and
# stops it by PID. Needs java >= 17 (Kafka 4 brokers) and mvn. On failure it
# prints one line saying why on stderr and exits 1; compare.sh then records
# the Kafka rows as skipped.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
VERSION=${KAFKA_VERSION:-4.1.1}
DEST="$CACHE/kafka-$VERSION/libs"
case "${1:-}" in
  install)
    command -v java >/dev/null || fail "kafka: no java on PATH (Debian default-jre-headless; Kafka 4 needs >= 17)"
    JV=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
    [ "${JV%%.*}" -ge 17 ] 2>/dev/null || fail "kafka: java $JV is too old (Kafka $VERSION brokers need >= 17)"
    if ! ls "$DEST"/kafka_2.13-"$VERSION".jar >/dev/null 2>&1; then
      command -v mvn >/dev/null || fail "kafka: no mvn on PATH (Debian maven) to fetch kafka_2.13 $VERSION"
      LOG="$CACHE/kafka-install.log"
      echo "kafka.sh: mvn dependency:copy-dependencies of org.apache.kafka:kafka_2.13:$VERSION into $DEST (log: $LOG)" >&2
      rm -rf "$DEST.tmp"
      if ! mvn -q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" -Dkafka.version="$VERSION" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$DEST.tmp" >"$LOG" 2>&1; then
        rm -rf "$DEST.tmp"
        fail "kafka: mvn could not fetch kafka_2.13 $VERSION: $( { grep -m1 -E 'ERROR|Could not' "$LOG" || tail -1 "$LOG"; } | sed 's/\x1b\[[0-9;]*m//g; s/ -> \[Help 1\]//')"
      fi
      rm -rf "$DEST"
      mv "$DEST.tmp" "$DEST"
    fi
    echo "$DEST"
    ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
