#!/usr/bin/env python3
"""bench/scheduling.py: does the open-model scheduler keep up? (issue 13 item 5)

For each offered rate, runs `chopsticks run --rate R/s` for a fixed time with the client process
pinned to ONE core (`taskset -c CPU`). The server is the embedded S3 target, run on its own in
another process pinned to another core (`engine/examples/embedded_target.rs`, `--server-cpu`),
so the CPU figures are the client's alone. (`--in-process` runs the target inside the client
process instead, on the same core, as `chopsticks run` does with no endpoint.) Each arrival GETs
a 1 KiB object of a small prefilled pool. Then two closed-model runs at the same throughput,
R/100 users with `wait: {pacing: users/R}`:
- "even": users spawned at R per second, one every 1/R s, so each keeps its own phase and
  the requests go out evenly spaced, as the open model sends them;
- "in step": users spawned at 10 per pacing period, so every user starts on the same phase
  and they send in bursts of R/100 requests every pacing period (the comparison used up to
  session 25; bursts share their wake-ups, so they cost less CPU per request).

Reports per rate: achieved rate (issued / duration), its gap to the offered rate, the share of
arrivals that started >= 1 ms late (the scheduler's lateness; p99 lateness < 1 ms when fewer
than 1 % are late), dropped, and client CPU per request for each model, two ways:
- whole run: user + system time of the client process (getrusage) divided by its requests,
  so start-up, prefill and writing the report are spread over the requests;
- steady: the process's CPU clock read at the start of the run's second 1 and of its last
  second, divided by the requests completed in between (stats_history.csv): the per-request
  cost alone, which item 5 asks about; "unknown" when the window could not be read.

First it measures the machine's own floor: a loop that sleeps 200 us at a time on the client
core, doing nothing else, for --seconds. Every wake-up >= 1 ms after its deadline is a stall of
the machine (the kernel or, on a VM, the hypervisor), not of any scheduler; the share of time
covered by such stalls is the share of evenly spaced arrivals that no scheduler on this core
could send less than 1 ms late.

    bench/scheduling.py [--rates 1000,2000,5000] [--seconds 10] [--repeat 1]
                        [--max-in-flight 1000] [--max-connections N|closed] [--cpu 1]
                        [--server-cpu 0] [--in-process] [--move-kdamond] [--binary PATH]

--move-kdamond (root only) pins the kernel's DAMON memory-monitor threads (`kdamond.*`) to the
server's core for the measurement, floor included, and gives them back every core after: on
the VM measured, kdamond.0 ran on the client's core and caused most of its stalls
(docs/benchmarks.md, "Session 24"). The header line says whether it was done.

--max-connections sets the open model's load.max_connections (default: unset, one connection
per request in flight); `closed` gives it as many as the closed model has users at that rate
(one connection each), so both models run on the same connections.

--repeat N runs N rounds over the rates, each an open run and its two closed runs back to
back, and ends with the median of each rate's figures: on a machine whose speed drifts from
minute to minute, only a round's own ratios mean much.

Build first: cargo build --release -p chopsticks --bin chopsticks, and
cargo build --release -p chopsticks --example embedded_target --features bench-server.
Traffic stays on 127.0.0.1.
"""
import argparse
import csv
import datetime
import json
import os
import re
import resource
import statistics
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


def machine_floor(cpu, seconds):
    """Sleeps 200 us at a time on `cpu` for `seconds`; returns (share of time in wake-ups
    >= 1 ms late, the latest wake-up in ms, wake-ups >= 1 ms late per second)."""
    code = (
        "import time\n"
        "end = time.monotonic() + %d\n"
        "lost = 0.0; worst = 0.0; late = 0\n"
        "start = time.monotonic()\n"
        "while True:\n"
        "    due = time.monotonic() + 0.0002\n"
        "    time.sleep(0.0002)\n"
        "    over = time.monotonic() - due\n"
        "    worst = max(worst, over)\n"
        "    if over >= 0.001:\n"
        "        late += 1; lost += over - 0.001\n"
        "    if due > end: break\n"
        "span = time.monotonic() - start\n"
        "print(lost / span, worst * 1000, late / span)\n" % seconds)
    out = subprocess.run(["taskset", "-c", str(cpu), sys.executable, "-c", code],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def kdamond_threads():
    """The pids of the kernel's DAMON threads (`kdamond.N`)."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().startswith("kdamond."):
                    pids.append(int(pid))
        except (OSError, ValueError):
            continue
    return pids


def pin(pids, cpus):
    """Sets each pid's CPU affinity to `cpus`; returns the pids it could pin."""
    done = []
    for pid in pids:
        try:
            os.sched_setaffinity(pid, cpus)
            done.append(pid)
        except OSError as e:
            print(f"could not pin thread {pid}: {e}", file=sys.stderr)
    return done


class Server:
    """The embedded S3 target in its own process on `cpu`, until closed."""

    def __init__(self, example, cpu, workdir):
        self.config = os.path.join(workdir, "embedded-target.yaml")
        self.proc = subprocess.Popen(["taskset", "-c", str(cpu), example, self.config],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            sys.exit(f"{example} did not start")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def process_cpu_ns(pid):
    """CPU time of process `pid`, all its threads (exited ones too), in nanoseconds: the
    kernel's per-process CPU clock (`clock_getcpuclockid`: ((~pid) << 3) | CPUCLOCK_SCHED).
    Not bench.py's /proc/<pid>/stat sampler: that counts in 10 ms ticks, and a 4 s window at
    1,000/s holds about 0.5 s of client CPU, so one tick is 2 % of it."""
    return time.clock_gettime_ns(((~pid) << 3) | 2)


def run_origin(run_dir, proc, timeout=30.0):
    """The wall time (unix seconds) second 0 of the run began, read from its events.log as the
    run writes it; None if the process ended or `timeout` passed first."""
    events = os.path.join(run_dir, "events.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(events) as f:
                for line in f:
                    m = re.search(r"second 0 of the run begins at (\S+?)Z?$", line.strip())
                    if m:
                        return datetime.datetime.fromisoformat(m.group(1)).replace(
                            tzinfo=datetime.timezone.utc).timestamp()
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    return None


def requests_per_second(run_dir):
    """Requests (failures included) completed in each second of the run, from the Aggregated
    rows of stats_history.csv; None unless there is exactly one row per second."""
    with open(os.path.join(run_dir, "stats_history.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    stamps = [int(r["Timestamp"]) for r in rows]
    if any(b != a + 1 for a, b in zip(stamps, stamps[1:])):
        return None
    totals = [int(r["Total Request Count"]) for r in rows]
    return [b - a for a, b in zip([0] + totals, totals)]


def run(binary, cpu, scenario_text, args, workdir, label, seconds):
    """One run. CPU is read twice: for the whole process (getrusage: start-up, prefill and the
    report included) and in the steady state, seconds 1 to `seconds` - 1 of the run (the
    process's CPU clock read at their bounds, divided by the requests completed in them)."""
    scenario = os.path.join(workdir, label + ".yaml")
    with open(scenario, "w") as f:
        f.write(scenario_text)
    run_dir = os.path.join(workdir, label)
    cmd = ["taskset", "-c", str(cpu), binary, "run", "-f", scenario, "--headless",
           "--run-dir", run_dir] + args
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # The steady window: whole seconds of the run, after its first and before its last.
    first, last = 1, max(2, seconds - 1)
    window_cpu_ns = None
    origin = run_origin(run_dir, proc)
    if origin is not None:
        time.sleep(max(0.0, origin + first - time.time()))
        cpu0 = process_cpu_ns(proc.pid)
        time.sleep(max(0.0, origin + last - time.time()))
        cpu1 = process_cpu_ns(proc.pid)
        if proc.poll() is None:
            window_cpu_ns = cpu1 - cpu0
    _, err = proc.communicate()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{label}: chopsticks exited {proc.returncode}:\n{err[-2000:]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    per_second = requests_per_second(run_dir)
    window_requests = sum(per_second[first:last]) if per_second else 0
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
        # None when the window could not be read (the run ended early, a second had no row).
        "steady_cpu_us": (window_cpu_ns / 1e3 / window_requests
                          if window_cpu_ns is not None and window_requests > 0 else None),
        "wall_s": wall,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="1000,2000,5000")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds over the rates; each rate's medians are printed at the end")
    p.add_argument("--max-in-flight", type=int, default=1000,
                   help="the open model's max_in_flight (each request in flight may open a connection)")
    p.add_argument("--max-connections", default=None,
                   help="the open model's max_connections: a number, or `closed` for the closed model's users")
    p.add_argument("--cpu", type=int, default=1)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--in-process", action="store_true",
                   help="the embedded target inside the client process, on the client's core")
    p.add_argument("--move-kdamond", action="store_true",
                   help="pin the kernel's kdamond threads to the server's core during the runs (root)")
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/chopsticks"))
    p.add_argument("--server", default=os.path.join(ROOT, "target/release/examples/embedded_target"))
    a = p.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    load1 = os.getloadavg()[0]
    moved = pin(kdamond_threads(), {a.server_cpu}) if a.move_kdamond else []
    try:
        floor, rows = measure(a, rates)
    finally:
        pin(moved, set(range(os.cpu_count() or 1)))
    report(a, rates, commit, load1, moved, floor, rows)


def measure(a, rates):
    """The machine's floor, then every round (open, closed even, closed in step); returns (floor, rows)."""
    floor = machine_floor(a.cpu, a.seconds)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        server = None if a.in_process else Server(a.server, a.server_cpu, work)
        target = [] if server is None else ["--workload-config", server.config]
        for n, rate in enumerate(r for _ in range(max(1, a.repeat)) for r in rates):
            t = f"{a.seconds}s"
            users = max(1, rate // 100)
            scen_open = BASE % "" + "load:\n  arrival: {rate: %d/s}\n  max_in_flight: %d\n" % (rate, a.max_in_flight)
            if a.max_connections is not None:
                conns = users if a.max_connections == "closed" else int(a.max_connections)
                scen_open += "  max_connections: %d\n" % conns
            o = run(a.binary, a.cpu, scen_open, target + ["-t", t], work, f"open{rate}-{n}", a.seconds)
            pacing = users / rate
            scen_closed = BASE % ("    wait: {pacing: %g}\n" % pacing)
            c = run(a.binary, a.cpu, scen_closed,
                    target + ["-u", str(users), "-r", str(rate), "-t", t], work, f"closed{rate}-{n}", a.seconds)
            s = run(a.binary, a.cpu, scen_closed,
                    target + ["-u", str(users), "-r", str(users * 10), "-t", t], work, f"instep{rate}-{n}", a.seconds)
            achieved = o["requests"] / o["duration_s"]
            rows.append({
                "offered": rate,
                "achieved": achieved,
                "gap_percent": 100.0 * (rate - achieved) / rate,
                "late_percent": 100.0 * o["late"] / max(1, o["arrivals"]),
                "lateness_p99_ms": o["lateness_p99_ms"],
                "dropped": o["dropped"],
                "failures": o["failures"] + c["failures"] + s["failures"],
                "open_cpu_us": 1e6 * o["cpu_s"] / max(1, o["requests"]),
                "closed_rate": c["requests"] / c["duration_s"],
                "closed_cpu_us": 1e6 * c["cpu_s"] / max(1, c["requests"]),
                "instep_rate": s["requests"] / s["duration_s"],
                "instep_cpu_us": 1e6 * s["cpu_s"] / max(1, s["requests"]),
                "open_steady_us": o["steady_cpu_us"],
                "closed_steady_us": c["steady_cpu_us"],
                "instep_steady_us": s["steady_cpu_us"],
            })
        if server is not None:
            server.close()
    return floor, rows


def fmt(x, digits=1):
    """A figure, or "unknown" when it could not be measured."""
    return "unknown" if x is None else f"{x:.{digits}f}"


def ratio(row, a, b):
    """Steady-state CPU per request of model `a` over model `b` in one round (None if unknown)."""
    x, y = row[a + "_steady_us"], row[b + "_steady_us"]
    return None if x is None or y is None else x / y


def median_known(xs):
    known = [x for x in xs if x is not None]
    return statistics.median(known) if known else None


def report(a, rates, commit, load1, moved, floor, rows):
    where = ("embedded target in-process" if a.in_process else
             f"embedded target in its own process on core {a.server_cpu}")
    print(f"commit {commit}, load average at start {load1:.2f}, {a.seconds}s per run, "
          f"client on one core (taskset -c {a.cpu}), {where}, open model's max_in_flight "
          f"{a.max_in_flight}, max_connections {a.max_connections or 'unset'}, "
          f"kdamond threads moved to core {a.server_cpu}: {len(moved) if moved else 'none'}")
    print(f"machine floor on core {a.cpu}: {100 * floor[0]:.2f} % of the time in stalls "
          f"(wake-ups >= 1 ms late: {floor[2]:.1f}/s, the latest {floor[1]:.2f} ms)")
    print("| offered/s | achieved/s | gap | late ≥1 ms | lateness p99 of late | dropped | failures"
          " | CPU µs/req open | closed even | closed in step | open/closed even | open/closed in step"
          " | steady µs/req open | closed even | closed in step | open/closed even | open/closed in step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lp = "—" if r["lateness_p99_ms"] is None else f'{r["lateness_p99_ms"]:.2f} ms'
        print(f'| {r["offered"]} | {r["achieved"]:.1f} | {r["gap_percent"]:.2f} % | '
              f'{r["late_percent"]:.2f} % | {lp} | {r["dropped"]} | {r["failures"]} | '
              f'{r["open_cpu_us"]:.1f} | {r["closed_cpu_us"]:.1f} | {r["instep_cpu_us"]:.1f} | '
              f'{r["open_cpu_us"] / r["closed_cpu_us"]:.2f} | '
              f'{r["open_cpu_us"] / r["instep_cpu_us"]:.2f} | '
              f'{fmt(r["open_steady_us"])} | {fmt(r["closed_steady_us"])} | '
              f'{fmt(r["instep_steady_us"])} | {fmt(ratio(r, "open", "closed"), 2)} | '
              f'{fmt(ratio(r, "open", "instep"), 2)} |')
    if a.repeat > 1:
        print(f"\nMedians over {a.repeat} rounds per rate (steady: seconds 1 to "
              f"{max(2, a.seconds - 1)} of each run, start-up, prefill and report left out):")
        print("| offered/s | gap | late ≥1 ms | CPU µs/req open | closed even | closed in step"
              " | open/closed even | open/closed in step | steady open/closed even"
              " | steady open/closed in step |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for rate in rates:
            mine = [r for r in rows if r["offered"] == rate]
            med = lambda f: statistics.median(f(r) for r in mine)
            print(f'| {rate} | {med(lambda r: r["gap_percent"]):.2f} % | '
                  f'{med(lambda r: r["late_percent"]):.2f} % | {med(lambda r: r["open_cpu_us"]):.1f} | '
                  f'{med(lambda r: r["closed_cpu_us"]):.1f} | {med(lambda r: r["instep_cpu_us"]):.1f} | '
                  f'{med(lambda r: r["open_cpu_us"] / r["closed_cpu_us"]):.2f} | '
                  f'{med(lambda r: r["open_cpu_us"] / r["instep_cpu_us"]):.2f} | '
                  f'{fmt(median_known([ratio(r, "open", "closed") for r in mine]), 2)} | '
                  f'{fmt(median_known([ratio(r, "open", "instep") for r in mine]), 2)} |')
    print(json.dumps({"floor_late_share": floor[0], "floor_worst_ms": floor[1],
                      "floor_late_per_s": floor[2], "rows": rows}))


if __name__ == "__main__":
    main()
