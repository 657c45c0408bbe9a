#!/usr/bin/env python3
"""bench/scheduling.py: does the open-model scheduler keep up? (issue 13 item 5)

For each offered rate, runs `chopsticks run --rate R/s` for a fixed time with the whole process
pinned to ONE core (`taskset -c CPU`), against the embedded S3 target (no endpoint configured:
the target runs in the same process, on the same core, so the figure is a lower bound for the
client alone). Each arrival GETs a 1 KiB object of a small prefilled pool. Then a closed-model
run at the same throughput: users with `wait: {pacing: users/R}`.

Reports per rate: achieved rate (issued / duration), its gap to the offered rate, the share of
arrivals that started >= 1 ms late (the scheduler's lateness; p99 lateness < 1 ms when fewer
than 1 % are late), dropped, and client CPU per request (user + system time of the process,
from getrusage, divided by requests) for both models.

    bench/scheduling.py [--rates 1000,2000,5000] [--seconds 10] [--cpu 1] [--binary PATH]

Build first: cargo build --release -p chopsticks. Traffic stays on 127.0.0.1.
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

BASE = """name: scheduling
prefill: {objects: 64, size: 1KiB}
users:
  - name: reader
%s    tasks:
      - {op: get, name: get, key: shared}
verify: false
"""


def run(binary, cpu, scenario_text, args, workdir, label):
    scenario = os.path.join(workdir, label + ".yaml")
    with open(scenario, "w") as f:
        f.write(scenario_text)
    run_dir = os.path.join(workdir, label)
    cmd = ["taskset", "-c", str(cpu), binary, "run", "-f", scenario, "--headless",
           "--run-dir", run_dir] + args
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{label}: chopsticks exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    total = summary["total"]
    return {
        "requests": total["requests"] + total["failures"],
        "failures": total["failures"],
        "arrivals": total.get("arrivals", 0),
        "dropped": total.get("dropped", 0),
        "late": total.get("late", 0),
        "lateness_p99_ms": (total.get("lateness_ms") or {}).get("p99"),
        "duration_s": summary["duration_s"],
        "cpu_s": cpu_s,
        "wall_s": wall,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="1000,2000,5000")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--cpu", type=int, default=1)
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/chopsticks"))
    a = p.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    load1 = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for rate in rates:
            t = f"{a.seconds}s"
            scen_open = BASE % "" + "load:\n  arrival: {rate: %d/s}\n  max_in_flight: 1000\n" % rate
            o = run(a.binary, a.cpu, scen_open, ["-t", t], work, f"open{rate}")
            users = max(1, rate // 100)
            pacing = users / rate
            scen_closed = BASE % ("    wait: {pacing: %g}\n" % pacing)
            c = run(a.binary, a.cpu, scen_closed, ["-u", str(users), "-r", str(users * 10), "-t", t],
                    work, f"closed{rate}")
            achieved = o["requests"] / o["duration_s"]
            rows.append({
                "offered": rate,
                "achieved": achieved,
                "gap_percent": 100.0 * (rate - achieved) / rate,
                "late_percent": 100.0 * o["late"] / max(1, o["arrivals"]),
                "lateness_p99_ms": o["lateness_p99_ms"],
                "dropped": o["dropped"],
                "failures": o["failures"] + c["failures"],
                "open_cpu_us": 1e6 * o["cpu_s"] / max(1, o["requests"]),
                "closed_rate": c["requests"] / c["duration_s"],
                "closed_cpu_us": 1e6 * c["cpu_s"] / max(1, c["requests"]),
            })
    print(f"commit {commit}, load average at start {load1:.2f}, {a.seconds}s per run, "
          f"one core (taskset -c {a.cpu}), embedded target in-process")
    print("| offered/s | achieved/s | gap | late ≥1 ms | lateness p99 of late | dropped | failures"
          " | CPU µs/req open | closed achieved/s | CPU µs/req closed | open/closed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lp = "—" if r["lateness_p99_ms"] is None else f'{r["lateness_p99_ms"]:.2f} ms'
        print(f'| {r["offered"]} | {r["achieved"]:.1f} | {r["gap_percent"]:.2f} % | '
              f'{r["late_percent"]:.2f} % | {lp} | {r["dropped"]} | {r["failures"]} | '
              f'{r["open_cpu_us"]:.1f} | {r["closed_rate"]:.1f} | {r["closed_cpu_us"]:.1f} | '
              f'{r["open_cpu_us"] / r["closed_cpu_us"]:.2f} |')
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
