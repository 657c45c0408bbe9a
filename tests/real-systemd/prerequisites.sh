#!/usr/bin/env bash
# What the real-systemd tests need on the host, made ready: systemd-nspawn (Debian's
# systemd-container) and debootstrap installed, and the containers' rootfs built and cached
# (tests/real-systemd/rootfs.sh). Run as root; used by tests/real-systemd.sh and tests/run.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
say() { printf '==> %s\n' "$*" >&2; }

missing=()
command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
  ((EUID == 0)) || { say "missing ${missing[*]}: run once as root (or apt-get install ${missing[*]})"; exit 1; }
  say "installing ${missing[*]} (real-systemd tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rootfs=$(tests/real-systemd/rootfs.sh)
say "real-systemd rootfs: $rootfs"
