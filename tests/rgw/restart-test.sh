#!/usr/bin/env bash
# Checks that up.sh restarts radosgw alone when only radosgw died, keeping every bucket.
#
# It never touches the shared cluster: it builds its own throwaway cluster in its own state
# dir on its own ports (override with the same env as up.sh), kills that cluster's radosgw
# by its pid file, runs up.sh again, checks that an object written before is still there
# and that the mon was not restarted, and stops its cluster with down.sh --purge.
#
# Usage: tests/rgw/restart-test.sh        (exit 0 = pass)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CHOPSTICKS_RGW_DIR=${CHOPSTICKS_RGW_DIR:-${TMPDIR:-/tmp}/chopsticks-rgw-restart-test}
export RGW_PORT=${RGW_PORT:-17480} RGW_TLS_PORT=${RGW_TLS_PORT:-17443} MON_PORT_V2=${MON_PORT_V2:-13300} MON_PORT_V1=${MON_PORT_V1:-16789}
export MEMSTORE_BYTES=${MEMSTORE_BYTES:-$((512 * 1024 * 1024))}
DIR=$CHOPSTICKS_RGW_DIR
trap '"$HERE/down.sh" --purge >/dev/null 2>&1 || true' EXIT

fail() { echo "restart-test: FAIL: $*" >&2; exit 1; }
eval "$("$HERE/up.sh")"
s3() { # method path -> HTTP status
  curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X "$1" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    "$S3_ENDPOINT$2" ${3:+--data-binary "$3"} 2>/dev/null || true
}
[[ $(s3 PUT /restart-test) == 200 ]] || fail "cannot create a bucket"
[[ $(s3 PUT /restart-test/kept hello) == 200 ]] || fail "cannot write an object"

mon=$(<"$DIR/run/mon.a.pid") rgw=$(<"$DIR/run/client.rgw.x.pid")
[[ $(cat "/proc/$rgw/comm") == radosgw ]] || fail "pid file does not name radosgw"
kill -KILL "$rgw"
for _ in {1..100}; do [[ $(s3 GET /) == 200 ]] || break; sleep 0.1; done

log=$("$HERE/up.sh" 2>&1 >/dev/null)
grep -q "only radosgw is down: restarting it alone" <<<"$log" || fail "up.sh did not restart radosgw alone: $log"
[[ $(<"$DIR/run/mon.a.pid") == "$mon" ]] || fail "the mon was restarted (cluster rebuilt)"
[[ $(<"$DIR/run/client.rgw.x.pid") != "$rgw" ]] || fail "radosgw pid did not change"
[[ $(s3 GET /restart-test/kept) == 200 ]] || fail "the object written before the restart is gone"
tls() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$CHOPSTICKS_TEST_CA_FILE" "$S3_TLS_ENDPOINT/" 2>/dev/null || true; }
[[ $(tls) == 200 ]] || fail "the TLS endpoint did not come back with radosgw"

# A radosgw from before the TLS endpoint (plain frontends line): up.sh restarts it alone
# with ssl_endpoint, keeping the cluster (same mon) and the object.
rgw=$(<"$DIR/run/client.rgw.x.pid")
sed -i "s|^[[:space:]]*rgw frontends = .*|        rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1|" "$DIR/ceph.conf"
kill -TERM "$rgw"
for _ in {1..100}; do [[ $(s3 GET /) == 200 ]] || break; sleep 0.1; done
for _ in {1..100}; do [[ $(cat "/proc/$rgw/comm" 2>/dev/null) == radosgw ]] || break; sleep 0.1; done
radosgw -c "$DIR/ceph.conf" -n client.rgw.x --keyring "$DIR/rgw.x/keyring" </dev/null 3>&- 9>&-
for _ in {1..100}; do [[ $(s3 GET /) == 200 ]] && break; sleep 0.1; done
[[ $(tls) != 200 ]] || fail "the plain radosgw still serves TLS"
log=$("$HERE/up.sh" 2>&1 >/dev/null)
grep -q "serves no TLS" <<<"$log" || fail "up.sh did not bring radosgw's TLS endpoint back: $log"
[[ $(<"$DIR/run/mon.a.pid") == "$mon" ]] || fail "the mon was restarted (cluster rebuilt) to add TLS"
[[ $(tls) == 200 ]] || fail "no TLS endpoint after up.sh"
[[ $(s3 GET /restart-test/kept) == 200 ]] || fail "the object is gone after adding TLS"
echo "restart-test: pass (radosgw restarted alone, object kept; TLS endpoint added to an old radosgw alone)"
