#!/usr/bin/env bash
# Removes what real-systemd test models left behind when their test process was killed (or run
# with CHOPSTICKS_MACHINES_KEEP=1): machines booted from /tmp/chopsticks-machines-*, their
# overlay mounts and cgroups, and the test bridges (br + c + 4 hex digits, on 169.254.S.1/24).
# Only those: nothing else on the host is touched. Needs root.
set -euo pipefail
shopt -s nullglob
for pid in $(pgrep -x systemd-nspawn || true); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--directory=/tmp/chopsticks-machines-"; then
    init=$(pgrep -P "$pid" || true)
    kill -KILL ${init:-} "$pid" 2>/dev/null || true
  fi
done
sleep 0.5
for mnt in $(awk '$2 ~ "^/tmp/chopsticks-machines-" {print $2}' /proc/mounts | sort -r); do
  umount --lazy "$mnt" || true
done
for cg in /sys/fs/cgroup/systemd/c????-* /sys/fs/cgroup/unified/c????-* /sys/fs/cgroup/c????-*; do
  [[ $cg =~ /c[0-9a-f]{4}-[0-9]+$ ]] || continue
  find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done
for br in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^brc[0-9a-f]{4}$' || true); do
  ip -o -4 addr show dev "$br" | grep -q ' 169\.254\.' && ip link del "$br"
done
rm -rf --one-file-system /tmp/chopsticks-machines-*
echo "real-systemd leftovers removed" >&2
