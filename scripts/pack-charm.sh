#!/usr/bin/env bash
# Builds chopsticks_ubuntu@24.04-amd64.charm without charmcraft: the same layout
# `charmcraft pack` produces from charmcraft.yaml — dispatch (0755) at the root, the yaml
# files, manifest.yaml, bin/chopsticks, scenarios/ and templates/.
#
# Usage: scripts/pack-charm.sh [--from-test-build] [OUTPUT_DIR]   (default: the repository root)
#
# --from-test-build: take the binaries from the build the test suite uses
# (`cargo test --release --workspace --no-run`, a no-op once the suite is built) instead of
# `cargo build --bins`. The dev-dependencies switch on features of crates the binaries share
# (fantoccini, through hyper-rustls's defaults, turns on rustls's logging, for one), so the two
# builds each compile aws-sdk-s3, rustls, hyper and the engine: the charm tests pass
# this flag so the suite does not build the binaries twice (minutes on a two-core CI machine).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=(cargo build --release --locked --workspace --bins)
if [[ ${1:-} == --from-test-build ]]; then
  build=(cargo test --release --locked --workspace --no-run)
  shift
fi
out=${1:-$top}
name=chopsticks_ubuntu@24.04-amd64.charm
cd "$top"

echo "building release binaries: ${build[*]}" >&2
"${build[@]}" >&2

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 target/release/dispatch "$stage/dispatch"
install -D -m 0755 target/release/chopsticks "$stage/bin/chopsticks"
strip "$stage/dispatch" "$stage/bin/chopsticks"
install -d "$stage/scenarios" "$stage/templates"
install -m 0644 engine/scenarios/*.yaml "$stage/scenarios/"
install -m 0644 templates/*.j2 "$stage/templates/"
install -m 0644 metadata.yaml config.yaml actions.yaml charmcraft.yaml README.md "$stage/"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
cat >"$stage/manifest.yaml" <<MANIFEST
analysis:
  attributes:
  - name: language
    result: unknown
  - name: framework
    result: unknown
charmcraft-started-at: '$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)'
charmcraft-version: 3.2.0
bases:
- architectures:
  - amd64
  channel: '24.04'
  name: ubuntu
chopsticks-version: '$version'
MANIFEST
echo "$version" >"$stage/version"

mkdir -p "$out"
# Python's zipfile keeps the unix modes (dispatch must stay executable); no zip tool needed.
python3 - "$stage" "$out/$name" <<'PY'
import os, stat, sys, zipfile
stage, target = sys.argv[1], sys.argv[2]
tmp = target + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(stage):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(root, f)
            arc = os.path.relpath(path, stage)
            info = zipfile.ZipInfo(arc)
            mode = stat.S_IMODE(os.stat(path).st_mode)
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as src:
                z.writestr(info, src.read())
os.replace(tmp, target)
PY
echo "$out/$name"
