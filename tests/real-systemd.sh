#!/usr/bin/env bash
# Runs the charm's real-systemd suite alone (tests/charm_real_systemd.rs): every unit of the
# simulated model is a container booted with systemd-nspawn (real systemd as PID 1), on a
# bridge of its own, against the local RadosGW. Exits 0 only when the suite ran and passed.
#
#   tests/real-systemd.sh                 # the four tests
#   tests/real-systemd.sh rebooted        # extra arguments go to the test binary (a filter)
#
# Needs root: it installs systemd-container and debootstrap when missing, builds the cached
# rootfs (tests/real-systemd/rootfs.sh, about 2 minutes the first time) and brings up RadosGW
# (tests/rgw/up.sh). tests/run.sh runs this suite too, with everything else.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*" >&2; }

((EUID == 0)) || { say "the real-systemd suite boots containers: run it as root"; exit 1; }
tests/real-systemd/prerequisites.sh

say "bringing up RadosGW (tests/rgw/up.sh)"
rgw_env=$(tests/rgw/up.sh)
set -a
eval "$rgw_env"
set +a

say "cargo test --release --workspace --test charm_real_systemd -- $*"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
began=$SECONDS
set +e
cargo test --release --workspace --test charm_real_systemd -- "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# A filter that matched nothing would "pass" having run no test: that is not a pass.
if ((status == 0)) && ! grep -Eq '^test result: ok\. [1-9][0-9]* passed; 0 failed' "$log"; then
  say "no real-systemd test ran"
  status=1
fi
say "real-systemd suite: $( ((status == 0)) && echo passed || echo FAILED ) in $((SECONDS - began)) s"
exit "$status"
