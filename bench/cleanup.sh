#!/usr/bin/env bash
# bench/cleanup.sh [--objects N] [--driver lean|aws-sdk] [--binary PATH]: how long
# `chopsticks cleanup` takes to remove N small objects (1 KiB, default 100000) from a run's prefix.
#
# Writes the objects with a real run (`prefill`, `keep: true`) into a bucket of its own on the
# test RadosGW (tests/rgw/up.sh, 127.0.0.1:7480, shared), then times `chopsticks cleanup
# --run-id` for that run, which lists, deletes in DeleteObjects batches and verifies by listing
# again. Prints one line: objects, seconds, objects/s. The binary defaults to
# target/release/chopsticks (built by `cargo build --release -p chopsticks`); give --binary to
# measure another build (e.g. one from an older commit). Not part of CI.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT"
objects=100000
driver=lean
binary=$ROOT/target/release/chopsticks
while (($#)); do
  case $1 in
    --objects) objects=$2; shift 2 ;;
    --driver) driver=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
set -a
eval "$(tests/rgw/up.sh)"
set +a
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bucket=chopsticks-bench-cleanup-$$-$(date +%s)
run_id=bench-cleanup-$(date +%s)-$$
cat >"$work/s3.yaml" <<YAML
endpoint: $S3_ENDPOINT
access_key: $AWS_ACCESS_KEY_ID
secret_key: $AWS_SECRET_ACCESS_KEY
bucket: $bucket
region: us-east-1
driver: $driver
YAML
cat >"$work/fill.yaml" <<YAML
name: cleanup_bench_fill
users:
  - name: reader
    tasks:
      - {op: head, key: shared}
prefill: {objects: $objects, size: 1KiB}
keep: true
YAML
echo "==> writing $objects objects of 1 KiB (bucket $bucket, run $run_id)" >&2
"$binary" run --headless --workload-config "$work/s3.yaml" -f "$work/fill.yaml" -u 1 -i 1 \
  --run-id "$run_id" --run-dir "$work/run" >"$work/fill.log" 2>&1 \
  || { tail -20 "$work/fill.log" >&2; exit 1; }
echo "==> timing chopsticks cleanup ($binary, driver $driver)" >&2
start=$(date +%s.%N)
"$binary" cleanup --workload-config "$work/s3.yaml" --run-id "$run_id" --runs-dir "$work" \
  --cleanup-timeout 10m >"$work/cleanup.log" 2>&1 || { cat "$work/cleanup.log" >&2; exit 1; }
end=$(date +%s.%N)
tail -1 "$work/cleanup.log" >&2
python3 - "$objects" "$start" "$end" <<'PY'
import sys
n, s, e = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"objects={n} seconds={e - s:.2f} objects_per_s={n / (e - s):.0f}")
PY
# The bucket is empty now (cleanup verified it); remove it.
curl -sf -X DELETE --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
  "$S3_ENDPOINT/$bucket" >/dev/null || echo "note: could not delete bucket $bucket" >&2
