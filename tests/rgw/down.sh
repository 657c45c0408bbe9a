#!/usr/bin/env bash
# Stop the Ceph/RadosGW daemons started by tests/rgw/up.sh, using only their pid files
# (nothing is killed by name). --purge also deletes the state dir.
#
# Env: CHOPSTICKS_RGW_DIR (default ${TMPDIR:-/tmp}/chopsticks-rgw), RGW_STOP_TIMEOUT (10 s
# per daemon before SIGKILL).
set -uo pipefail

DIR=${CHOPSTICKS_RGW_DIR:-${TMPDIR:-/tmp}/chopsticks-rgw}
STOP_TIMEOUT=${RGW_STOP_TIMEOUT:-10}
purge=0
case ${1:-} in
  --purge) purge=1 ;;
  "") ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

# Same lock as up.sh, unless up.sh is calling us while holding it.
if [[ -z ${_CHOPSTICKS_RGW_LOCK_HELD:-} ]]; then
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock -w 600 9 || { echo "rgw-down: could not lock $DIR.lock" >&2; exit 1; }
fi

# PID is a live (not zombie) process named COMM. The daemons are reparented to PID 1 when
# they daemonise; if PID 1 is slow to reap (as on these VMs, ~2 s), an exited daemon
# lingers as a zombie that `kill -0` still reports as present.
running() { # pid comm
  local stat
  [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

stop() { # pid-file name, expected process name (/proc/PID/comm)
  local f=$DIR/run/$1.pid pid
  [[ -f $f ]] || return 0
  pid=$(<"$f")
  # Only signal the pid if it is still the daemon we started (guards against pid reuse).
  if [[ -n $pid ]] && running "$pid" "$2"; then
    kill -TERM "$pid" 2>/dev/null
    local deadline=$(($(date +%s) + STOP_TIMEOUT))
    while running "$pid" "$2" && (($(date +%s) < deadline)); do sleep 0.1; done
    if running "$pid" "$2"; then
      kill -KILL "$pid" 2>/dev/null
      echo "rgw-down: killed $1 (pid $pid) after ${STOP_TIMEOUT}s" >&2
    else
      echo "rgw-down: stopped $1 (pid $pid)" >&2
    fi
  fi
  rm -f "$f"
}

# Reverse start order: gateway first, monitor last.
stop client.rgw.x radosgw
stop osd.0 ceph-osd
stop mgr.x ceph-mgr
stop mon.a ceph-mon

if ((purge)); then
  rm -rf "$DIR"
  echo "rgw-down: removed $DIR" >&2
fi
