#!/usr/bin/env bash
# Builds (once) the Debian bookworm root filesystem that the real-systemd tests boot with
# systemd-nspawn, and prints its path.
#
#   tests/real-systemd/rootfs.sh          # prints e.g. /var/cache/chopsticks-rootfs/3f2a…/rootfs
#
# The rootfs is shared read-only by every container (each gets its own overlay), so it is built
# once and cached under $CHOPSTICKS_ROOTFS_CACHE (default /var/cache/chopsticks-rootfs), in a
# directory named after a hash of what goes into it (suite, variant, package list, this
# script's version line): changing the list builds a new one, an unchanged list reuses it.
# The build goes to a temporary directory that is renamed into place only when complete, so an
# interrupted build is never mistaken for a cached one.
#
# Packages: systemd as PID 1 (systemd, systemd-sysv, dbus), iproute2 (addresses on the test
# bridge), python3 because the fake Juju hook tools (tests/fake-juju) run inside the
# containers, and ca-certificates, which every Ubuntu machine Juju deploys to has (the engine
# loads the system's root CAs at start, even for an http:// endpoint, and exits without them).
# Needs root and debootstrap (Debian package `debootstrap`).
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

SUITE=bookworm
VARIANT=minbase
PACKAGES=systemd,systemd-sysv,dbus,iproute2,python3,ca-certificates
MIRROR=${CHOPSTICKS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the steps below change what ends up in the rootfs.
RECIPE=2
CACHE=${CHOPSTICKS_ROOTFS_CACHE:-/var/cache/chopsticks-rootfs}

key=$(printf '%s\n' "suite=$SUITE" "variant=$VARIANT" "packages=$PACKAGES" "recipe=$RECIPE" |
  sha256sum | cut -c1-16)
dir=$CACHE/$key
if [[ -f $dir/rootfs/usr/lib/systemd/systemd && -f $dir/complete ]]; then
  echo "$dir/rootfs"
  exit 0
fi

((EUID == 0)) || die "building the test rootfs needs root (debootstrap); run as root"
command -v debootstrap >/dev/null 2>&1 ||
  die "debootstrap is not installed: apt-get install debootstrap systemd-container"

mkdir -p "$CACHE"
# One builder at a time; a second caller waits, then finds the finished rootfs.
exec 9>"$CACHE/.lock"
flock 9
if [[ -f $dir/rootfs/usr/lib/systemd/systemd && -f $dir/complete ]]; then
  echo "$dir/rootfs"
  exit 0
fi

tmp=$(mktemp -d "$CACHE/.build-$key.XXXXXX")
trap 'rm -rf --one-file-system "$tmp"' EXIT
say "debootstrap --variant=$VARIANT --include=$PACKAGES $SUITE (about 2 minutes, cached in $dir)"
if ! debootstrap --variant="$VARIANT" --include="$PACKAGES" "$SUITE" "$tmp/rootfs" "$MIRROR" \
  >"$tmp/debootstrap.log" 2>&1; then
  tail -n 30 "$tmp/debootstrap.log" >&2
  die "debootstrap failed (log above)"
fi

root=$tmp/rootfs
# A machine id is made per boot (the overlay is volatile); an empty file lets systemd do so.
: >"$root/etc/machine-id"
# No login prompt on the console, no units that wait for hardware or a network that never comes.
for unit in console-getty.service getty@.service systemd-networkd-wait-online.service \
  systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Addresses come from the test (ip addr inside the container): no DHCP client needed.
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
printf '%s\n' "suite=$SUITE variant=$VARIANT packages=$PACKAGES recipe=$RECIPE" >"$tmp/complete"
rm -rf --one-file-system "$dir"
mv -T "$tmp" "$dir"
trap - EXIT
say "rootfs ready: $dir/rootfs ($(du -sh "$dir/rootfs" | cut -f1))"
echo "$dir/rootfs"
