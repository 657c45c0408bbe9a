#!/usr/bin/env bash
# Bring up a throwaway single-node Ceph RadosGW on 127.0.0.1 for Chopsticks' real-S3 tests.
#
#   1 mon + 1 mgr + 1 memstore OSD (RAM-backed) + radosgw (beast), from Debian's ceph
#   packages (16.2.x "pacific" on Debian 12), started as plain daemons (no systemd).
#
# Usage:
#   set -a; eval "$(tests/rgw/up.sh)"; set +a      # exports S3_ENDPOINT, AWS_* ...
#   tests/rgw/down.sh [--purge]                     # stop (and delete the state dir)
#
# stdout carries ONLY eval-able KEY=VALUE lines; all progress and logs go to stderr.
#
# Idempotent: if the cluster in the state dir is alive and answers signed S3 requests with
# the requested configuration, it only re-prints the lines (well under a second). When only
# radosgw died (mon, mgr and OSD alive), radosgw alone is restarted and every bucket is kept.
# A state dir with other dead daemons (or a different configuration) is torn down and
# rebuilt; all state is throwaway (memstore lives in the OSD's RAM).
#
# Env (all optional):
#   CHOPSTICKS_RGW_DIR      state dir            (default ${TMPDIR:-/tmp}/chopsticks-rgw)
#   RGW_PORT                S3 port on 127.0.0.1 (default 7480)
#   RGW_TLS_PORT            S3 over TLS on 127.0.0.1 (default 7443), same radosgw; its
#                           certificate (for 127.0.0.1 and localhost) is signed by a CA this
#                           script generates: printed as S3_TLS_ENDPOINT and CHOPSTICKS_TEST_CA_FILE
#   MON_PORT_V2/MON_PORT_V1 mon ports            (default 3300 / 6789)
#   MEMSTORE_BYTES          OSD capacity in RAM  (default 4 GiB; only used as it fills)
#   RGW_ACCESS_KEY / RGW_SECRET_KEY                    main S3 user (fixed test defaults)
#   RGW_NOBUCKET_ACCESS_KEY / RGW_NOBUCKET_SECRET_KEY  user that may not create buckets
#   RGW_UP_TIMEOUT          seconds to wait for each daemon (default 120)
set -euo pipefail

# Everything this script (and the tools it runs) writes to stdout goes to stderr; only the
# final KEY=VALUE block is written to the saved stdout (fd 3).
exec 3>&1 1>&2

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${CHOPSTICKS_RGW_DIR:-${TMPDIR:-/tmp}/chopsticks-rgw}
RGW_PORT=${RGW_PORT:-7480}
RGW_TLS_PORT=${RGW_TLS_PORT:-7443}
MON_PORT_V2=${MON_PORT_V2:-3300}
MON_PORT_V1=${MON_PORT_V1:-6789}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-$((4 * 1024 * 1024 * 1024))}
AK=${RGW_ACCESS_KEY:-CHOPSTICKSTESTKEY001}
SK=${RGW_SECRET_KEY:-chopsticksTestSecretKey0000000000000001}
NB_AK=${RGW_NOBUCKET_ACCESS_KEY:-CHOPSTICKSNOBUCKET01}
NB_SK=${RGW_NOBUCKET_SECRET_KEY:-chopsticksNoBucketSecretKey000000000001}
UP_TIMEOUT=${RGW_UP_TIMEOUT:-120}
REGION=us-east-1
ENDPOINT=http://127.0.0.1:$RGW_PORT
TLS_ENDPOINT=https://127.0.0.1:$RGW_TLS_PORT
CONF=$DIR/ceph.conf
TLS=$DIR/tls
T0=$(date +%s)

log() { printf '[rgw-up %3ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# run CMD... quietly; show its output only if it fails
quiet() {
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; die "failed: $*"; }
}

# Start a ceph daemon (it forks into the background and writes its own pid file).
# Close fd 3 (our real stdout) and fd 9 (the lock): the daemon would otherwise inherit them,
# keeping `$(up.sh)` waiting for EOF forever and holding the lock for its whole life.
start_daemon() { "$@" 3>&- 9>&- </dev/null; }

# poll CMD... every 0.5 s until it succeeds (status 0) or $UP_TIMEOUT seconds have passed (1)
poll() {
  local deadline=$(($(date +%s) + UP_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.5
  done
}
wait_for() {
  local what=$1; shift
  poll "$@" || die "timed out after ${UP_TIMEOUT}s waiting for $what (logs: $DIR/log)"
}

# The eval-able output. %q keeps it eval-safe even for overridden keys with odd characters.
base_env_lines() {
  printf '%s=%q\n' \
    S3_ENDPOINT "$ENDPOINT" \
    AWS_ACCESS_KEY_ID "$AK" \
    AWS_SECRET_ACCESS_KEY "$SK" \
    AWS_REGION "$REGION" \
    S3_NOBUCKET_ACCESS_KEY_ID "$NB_AK" \
    S3_NOBUCKET_SECRET_ACCESS_KEY "$NB_SK" \
    CHOPSTICKS_RGW_DIR "$DIR"
}
env_lines() {
  base_env_lines
  printf '%s=%q\n' S3_TLS_ENDPOINT "$TLS_ENDPOINT" CHOPSTICKS_TEST_CA_FILE "$TLS/ca.pem"
}
# What must match for an already-running cluster (mon, OSD, users, buckets) to be reused.
# The TLS endpoint is not part of it, on purpose: checkouts of this script from before the
# TLS endpoint existed share the cluster and would rebuild it (purging every bucket) over a
# fingerprint they do not know. Whether radosgw serves TLS is checked by asking it (tls_ok).
config_fingerprint() {
  base_env_lines
  echo "MON_PORTS=$MON_PORT_V2,$MON_PORT_V1 MEMSTORE_BYTES=$MEMSTORE_BYTES"
}
same_cluster() { [[ -f $DIR/config ]] && [[ $(<"$DIR/config") == "$(config_fingerprint)" ]]; }

# The test CA and the TLS endpoint's certificate (127.0.0.1 and localhost), made once per
# state dir; kept while valid for another 30 days, so restarts keep the same CA.
ensure_tls_material() {
  if [[ -f $TLS/ca.pem && -f $TLS/server.pem && -f $TLS/server.key ]] &&
     openssl x509 -checkend $((30 * 86400)) -noout -in "$TLS/server.pem" >/dev/null 2>&1; then
    return 0
  fi
  command -v openssl >/dev/null || die "openssl is needed for the TLS endpoint; install the openssl package"
  rm -rf "$TLS" && mkdir -p "$TLS"
  quiet openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Chopsticks test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.pem"
  quiet openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$TLS/server.key" -out "$TLS/server.csr"
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$TLS/server.ext"
  quiet openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
    -CAcreateserial -days 825 -extfile "$TLS/server.ext" -out "$TLS/server.pem"
  chmod 600 "$TLS/ca.key" "$TLS/server.key"
}
# The rgw frontends line of ceph.conf: plain HTTP and TLS on one radosgw.
frontends_line() {
  echo "        rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT ssl_endpoint=127.0.0.1:$RGW_TLS_PORT ssl_certificate=$TLS/server.pem ssl_private_key=$TLS/server.key tcp_nodelay=1"
}
tls_ok() { curl -fs -o /dev/null --max-time 5 --cacert "$TLS/ca.pem" "$TLS_ENDPOINT/" 2>/dev/null; }

# HTTP status of a SigV4-signed, body-less request (curl >= 7.75 signs natively; RGW
# rejects curl's signature with SignatureDoesNotMatch unless x-amz-content-sha256 is sent,
# which curl then includes in the signature). Args: access-key secret-key method path
s3_status() {
  curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X "$3" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$1:$2" "$ENDPOINT$4" 2>/dev/null || true
}

# The pid file names a live process of the expected program: guards against pid reuse, and
# against zombies (PID 1 on these VMs reaps exited daemons only after ~2 s).
alive() { # pidfile comm
  local pid stat
  [[ -f $1 ]] && pid=$(<"$1") && [[ -n $pid ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}
all_alive() {
  alive "$DIR/run/mon.a.pid" ceph-mon && alive "$DIR/run/mgr.x.pid" ceph-mgr &&
    alive "$DIR/run/osd.0.pid" ceph-osd && alive "$DIR/run/client.rgw.x.pid" radosgw
}

# ------------------------------------------------------------------ packages
need=()
for pair in ceph-mon:ceph-mon ceph-osd:ceph-osd ceph-mgr:ceph-mgr radosgw:radosgw \
            ceph:ceph-common radosgw-admin:ceph-common uuidgen:uuid-runtime curl:curl \
            openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ((${#need[@]})); then
  ((EUID == 0)) || die "missing ${need[*]}; run once as root to install the ceph packages"
  log "installing ceph packages (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  # Without this, a later `apt-get purge ceph-*` would try to autoremove sudo.
  if dpkg-query -W -f='${Status}' sudo 2>/dev/null | grep -q 'install ok installed'; then
    apt-mark manual sudo >/dev/null
  fi
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl openssl ca-certificates >/dev/null
  log "packages installed"
fi

# Serialise concurrent up.sh/down.sh runs. The lock lives next to (not in) the state dir,
# because the state dir gets wiped.
mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock -w 600 9 || die "could not lock $DIR.lock"
export _CHOPSTICKS_RGW_LOCK_HELD=1 # tells down.sh (called below) not to take the lock again

# ------------------------------------------------------------------ fast path
if [[ -f $DIR/config ]] && [[ $(<"$DIR/config") == "$(config_fingerprint)" ]] && all_alive &&
   [[ $(s3_status "$AK" "$SK" GET /) == 200 ]] && tls_ok; then
  log "already running in $DIR ($ENDPOINT)"
  env_lines >&3
  exit 0
fi

# ------------------------------------------------------------------ radosgw outdated
# The cluster is this configuration's and alive, but radosgw runs without the TLS endpoint
# (a state dir from before it existed) or its certificate is due: write the certificate and
# the frontends line, and stop radosgw so that the next step starts it alone, keeping every
# bucket.
if same_cluster && all_alive && ! tls_ok; then
  ensure_tls_material
  sed -i "s|^[[:space:]]*rgw frontends = .*|$(frontends_line)|" "$CONF"
  log "radosgw serves no TLS on $TLS_ENDPOINT: restarting it alone with ssl_endpoint"
  pid=$(<"$DIR/run/client.rgw.x.pid")
  kill -TERM "$pid"
  rgw_gone() { ! alive "$DIR/run/client.rgw.x.pid" radosgw; }
  poll rgw_gone || die "radosgw (pid $pid) did not stop within ${UP_TIMEOUT}s"
fi

# ------------------------------------------------------------------ only radosgw died
# mon, mgr and OSD alive with this configuration, radosgw gone (killed by a fault test, or
# crashed): start radosgw alone. A rebuild would purge every bucket (memstore is RAM), which
# the other tests using this cluster, and tests of restarts, must not lose.
if same_cluster &&
   alive "$DIR/run/mon.a.pid" ceph-mon && alive "$DIR/run/mgr.x.pid" ceph-mgr &&
   alive "$DIR/run/osd.0.pid" ceph-osd && ! alive "$DIR/run/client.rgw.x.pid" radosgw; then
  for port in "$RGW_PORT" "$RGW_TLS_PORT"; do
    if command -v ss >/dev/null && ss -Htln "sport = :$port" | grep -q .; then
      die "radosgw is down but 127.0.0.1:$port is taken by something else; free the port"
    fi
  done
  ensure_tls_material
  grep -q "ssl_endpoint=127.0.0.1:$RGW_TLS_PORT " "$CONF" ||
    sed -i "s|^[[:space:]]*rgw frontends = .*|$(frontends_line)|" "$CONF"
  log "only radosgw is down: restarting it alone (buckets and objects are kept)"
  start_daemon radosgw -c "$CONF" -n client.rgw.x --keyring "$DIR/rgw.x/keyring"
  s3_ok() { [[ $(s3_status "$AK" "$SK" GET /) == 200 ]]; }
  if poll alive "$DIR/run/client.rgw.x.pid" radosgw && poll s3_ok && poll tls_ok; then
    config_fingerprint >"$DIR/config"
    env_lines >"$DIR/env"
    log "radosgw restarted: $ENDPOINT and $TLS_ENDPOINT (state in $DIR)"
    env_lines >&3
    exit 0
  fi
  log "radosgw did not come back within ${UP_TIMEOUT}s (logs: $DIR/log): rebuilding"
fi

if [[ -e $DIR ]]; then
  log "stale or different cluster in $DIR: tearing down and rebuilding"
  "$HERE/down.sh" --purge
fi

# Fail clearly (instead of a daemon timing out) if a port is taken, e.g. by an orphaned
# daemon whose state dir was deleted by hand.
for port in "$MON_PORT_V2" "$MON_PORT_V1" "$RGW_PORT" "$RGW_TLS_PORT"; do
  if command -v ss >/dev/null && ss -Htln "sport = :$port" | grep -q .; then
    die "127.0.0.1:$port is already in use by something not managed from $DIR"
  fi
done

# ------------------------------------------------------------------ config
mkdir -p "$DIR"/{run,log,mon.a,mgr.x,osd.0,rgw.x,crash}
ensure_tls_material
FSID=$(uuidgen)
cat >"$CONF" <<EOF
# generated by tests/rgw/up.sh -- throwaway single-node cluster on loopback
[global]
        fsid = $FSID
        mon host = [v2:127.0.0.1:$MON_PORT_V2,v1:127.0.0.1:$MON_PORT_V1]
        public addr = 127.0.0.1
        public network = 127.0.0.0/8
        ms bind ipv4 = true
        ms bind ipv6 = false
        auth cluster required = cephx
        auth service required = cephx
        auth client required = cephx
        keyring = $DIR/keyring
        run dir = $DIR/run
        pid file = $DIR/run/\$name.pid
        admin socket = $DIR/run/\$name.asok
        log file = $DIR/log/\$name.log
        log to stderr = false
        err to stderr = true
        crash dir = $DIR/crash
        # one OSD: size-1 pools, few PGs, no autoscaler, CRUSH failure domain = osd
        osd pool default size = 1
        osd pool default min size = 1
        osd pool default pg num = 8
        osd pool default pgp num = 8
        osd pool default pg autoscale mode = off
        osd crush chooseleaf type = 0
        mon allow pool size one = true
        mon allow pool delete = true
        mon warn on pool no redundancy = false
        mon max pg per osd = 1000
        # don't go read-only because the host disk (tmpfs/overlay) looks full-ish
        mon data avail warn = 2
        mon data avail crit = 1
        mon osd full ratio = .99
        mon osd nearfull ratio = .98
        mon osd backfillfull ratio = .985
        osd failsafe full ratio = .995
        mon warn on insecure global id reclaim allowed = false
        mon warn on insecure global id reclaim = false
[mon]
        mon data = $DIR/mon.\$id
        mon cluster log file = $DIR/log/cluster.log
        # The mon batches map changes for 1 s by default, so every pool create/enable costs
        # ~1 s; with one mon there is nothing to batch for.
        paxos propose interval = 0.05
        # no dashboard/prometheus etc.: they only cost memory and start-up time
        mgr initial modules =
[mgr]
        mgr data = $DIR/mgr.\$id
[osd]
        osd data = $DIR/osd.\$id
        osd journal = $DIR/osd.\$id/journal
        osd objectstore = memstore
        memstore device bytes = $MEMSTORE_BYTES
        osd op num shards = 2
        osd op num threads per shard = 2
        osd crush update on start = true
        # RGW needs the rgw/lock/... object classes
        osd class load list = *
        osd class default list = *
[client.rgw.x]
        # tcp_nodelay=1: without it small GETs take ~44 ms (Nagle) instead of ~4 ms.
        # The same radosgw serves S3 over TLS on ssl_endpoint (certificate from tls/).
$(frontends_line)
        rgw data = $DIR/rgw.x
        keyring = $DIR/rgw.x/keyring
        log file = $DIR/log/client.rgw.x.log
        admin socket = $DIR/run/client.rgw.x.asok
        rgw dns name = localhost
        rgw thread pool size = 128
        # Overwritten/deleted objects > 4 MiB leave their tail in RADOS until garbage
        # collection, by default >= 2 h later; with a RAM-backed OSD a large-object load test
        # would fill memory. Collect after ~30 s instead.
        rgw gc obj min wait = 30
        rgw gc processor period = 30
[client]
        log file = $DIR/log/\$name.\$pid.log
        admin socket = $DIR/run/\$name.\$pid.asok
EOF
CEPH=(ceph -c "$CONF" --connect-timeout 10)

# ------------------------------------------------------------------ mon
log "mon: keyrings, monmap, mkfs, start"
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$DIR/keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
monmaptool --create --clobber --fsid "$FSID" \
  --addv a "[v2:127.0.0.1:$MON_PORT_V2,v1:127.0.0.1:$MON_PORT_V1]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
start_daemon ceph-mon -c "$CONF" -i a # daemonises; writes run/mon.a.pid
wait_for "mon quorum" "${CEPH[@]}" mon stat

# ------------------------------------------------------------------ mgr
log "mgr: key, start"
"${CEPH[@]}" auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
  -o "$DIR/mgr.x/keyring"
start_daemon ceph-mgr -c "$CONF" -i x --keyring "$DIR/mgr.x/keyring"

# ------------------------------------------------------------------ osd
log "osd: create, mkfs (memstore, $MEMSTORE_BYTES bytes), start"
OSD_UUID=$(uuidgen)
OSD_SECRET=$(ceph-authtool --gen-print-key)
printf '{"cephx_secret": "%s"}\n' "$OSD_SECRET" >"$DIR/osd.0/new.json"
OSD_ID=$("${CEPH[@]}" osd new "$OSD_UUID" -i "$DIR/osd.0/new.json")
[[ $OSD_ID == 0 ]] || die "unexpected osd id '$OSD_ID'"
printf '[osd.0]\n\tkey = %s\n' "$OSD_SECRET" >"$DIR/osd.0/keyring"
ceph-osd -c "$CONF" -i 0 --mkfs --key "$OSD_SECRET" --osd-uuid "$OSD_UUID" \
  --keyring "$DIR/osd.0/keyring" 2>"$DIR/log/osd-mkfs.err" ||
  { cat "$DIR/log/osd-mkfs.err" >&2; die "osd mkfs failed"; }
# (it prints two harmless "-1 Falling back to public interface / log_to_monitors" lines)
start_daemon ceph-osd -c "$CONF" -i 0 --keyring "$DIR/osd.0/keyring"
osd_up() { [[ $("${CEPH[@]}" osd stat -f json) == *'"num_up_osds":1'* ]]; }
wait_for "osd.0 up" osd_up

# ------------------------------------------------------------------ rgw
# Pre-create RGW's pools: otherwise RGW creates the bucket pools on demand and the first
# CreateBucket / PUT / multipart upload each stall ~2 s. One `ceph` process reads all the
# commands from stdin (each CLI start costs ~0.3 s of Python).
log "rgw: pools, key, start on 127.0.0.1:$RGW_PORT"
pool_cmds=$(for p in .rgw.root default.rgw.control default.rgw.meta default.rgw.log \
                     default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
  echo "osd pool create $p 8 8"
  echo "osd pool application enable $p rgw"
done)
quiet "${CEPH[@]}" <<<"$pool_cmds"
"${CEPH[@]}" auth get-or-create client.rgw.x mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
  -o "$DIR/rgw.x/keyring"
start_daemon radosgw -c "$CONF" -n client.rgw.x --keyring "$DIR/rgw.x/keyring"
wait_for "radosgw on $ENDPOINT" curl -fsS -o /dev/null --max-time 5 "$ENDPOINT/"
wait_for "radosgw on $TLS_ENDPOINT" tls_ok

# ------------------------------------------------------------------ users
# (If anything above fails, the daemons are left running for inspection; the next up.sh
# sees no $DIR/config, tears them down and rebuilds.)
log "rgw: S3 users"
RGWADMIN=(radosgw-admin -c "$CONF")
"${RGWADMIN[@]}" user create --uid=chopsticks --display-name="Chopsticks test user" \
  --access-key="$AK" --secret-key="$SK" >/dev/null
# --max-buckets=-1 means "may not create buckets at all" in Ceph (0 would mean unlimited).
"${RGWADMIN[@]}" user create --uid=chopsticks-nobucket --display-name="Chopsticks no-bucket user" \
  --access-key="$NB_AK" --secret-key="$NB_SK" --max-buckets=-1 >/dev/null

# ------------------------------------------------------------------ self-check
# The main user's keys work, and the no-bucket user really is refused CreateBucket.
code=$(s3_status "$AK" "$SK" GET /)
[[ $code == 200 ]] || die "signed ListBuckets as main user returned HTTP $code"
probe=/chopsticks-rgw-up-probe-$$
code=$(s3_status "$NB_AK" "$NB_SK" PUT "$probe")
if [[ $code != 403 ]]; then
  [[ $code == 200 ]] && s3_status "$NB_AK" "$NB_SK" DELETE "$probe" >/dev/null
  die "CreateBucket as the no-bucket user returned HTTP $code, expected 403"
fi

config_fingerprint >"$DIR/config"
env_lines >"$DIR/env"
log "up: $ENDPOINT and $TLS_ENDPOINT (state in $DIR)"
env_lines >&3
