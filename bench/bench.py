#!/usr/bin/env python3
"""The harness behind bench/run.sh: runs the contenders on the same workloads against the same
RadosGW, one after another, rotating their order every round, and reports medians and spreads.

Measured per run (one contender, one workload):
  * a steady-state window, from the tool's own once-a-second series of cumulative requests and
    bytes (engine: stats_history.csv; Locust: a sampler in bench/locust/benchlib.py; native:
    its report), skipping the first WARMUP_S seconds of load and the last second;
  * client CPU: user+sys of the client's process tree, read from /proc/<pid>/stat
    (utime+stime+cutime+cstime of every live process of the tree, so s5cmd children that were
    waited for are included) five times a second, interpolated at the window's ends. Divided
    by the requests completed in the window: CPU seconds per 1000 requests. The whole run's
    getrusage (wait4 on the client) is kept too (start-up and shutdown included);
  * ops/s and MB/s over the window; p50/p99 as the tool itself reports them (whole run);
  * peak RSS: ru_maxrss from wait4 (the largest single process of the tree);
  * server CPU (the bench cluster's radosgw + ceph-osd + mon + mgr) and the whole machine's busy
    CPU over the same window (from /proc/stat), so the rest (other people's work) is visible.
"""

import argparse
import csv
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
WARMUP_S = 3.0
BUCKET = "chopsticks-bench"

# ----------------------------------------------------------------------------- /proc sampling


def proc_stat(pid):
    """(cpu seconds incl. waited-for children, rss bytes) of one process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK, int(fields[21]) * PAGE


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in glob.glob(f"/proc/{p}/task/*/children"):
            try:
                with open(task) as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def machine_busy():
    """(busy, total) CPU seconds of the whole machine so far."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK, sum(v[:8]) / CLK_TCK


class Sampler(threading.Thread):
    """Samples client-tree CPU and RSS, server CPU and machine CPU, five times a second."""

    def __init__(self, pid, server_pids, period=0.2):
        super().__init__(daemon=True)
        self.pid, self.server_pids, self.period = pid, server_pids, period
        self.points = []  # (t, client_cpu, client_rss, server_cpu, machine_busy)
        self.halt = threading.Event()

    def sample(self):
        t = time.time()
        if proc_stat(self.pid) is None:
            return  # reaped: its numbers are in the rusage now
        cpu = rss = 0.0
        for p in tree(self.pid):
            s = proc_stat(p)
            if s:
                cpu += s[0]
                rss += s[1]
        server = sum((proc_stat(p) or (0.0, 0))[0] for p in self.server_pids)
        self.points.append((t, cpu, rss, server, machine_busy()[0]))

    def run(self):
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.period)

    def stop(self):
        self.halt.set()
        self.join()

    def at(self, t, column):
        """Linear interpolation of a column at time t."""
        pts = self.points
        if not pts:
            return 0.0
        if t <= pts[0][0]:
            return pts[0][column]
        for a, b in zip(pts, pts[1:]):
            if a[0] <= t <= b[0]:
                if b[0] == a[0]:
                    return b[column]
                return a[column] + (b[column] - a[column]) * (t - a[0]) / (b[0] - a[0])
        return pts[-1][column]


def background_busy(seconds, exclude_pids):
    """Cores busy on the machine over `seconds`, minus the listed processes (our server)."""
    b0, _ = machine_busy()
    s0 = sum((proc_stat(p) or (0.0, 0))[0] for p in exclude_pids)
    time.sleep(seconds)
    b1, _ = machine_busy()
    s1 = sum((proc_stat(p) or (0.0, 0))[0] for p in exclude_pids)
    return max(0.0, (b1 - b0) - (s1 - s0)) / seconds


def wait_for_quiet(max_wait, server_pids, threshold=0.6):
    """Waits (up to max_wait s) until other work uses less than `threshold` cores."""
    deadline = time.time() + max_wait
    while True:
        busy = background_busy(2.0, server_pids)
        if busy < threshold or time.time() >= deadline:
            return busy, os.getloadavg()[0]
        log(f"  (machine busy with other work: {busy:.2f} cores; waiting for a quieter moment)")
        time.sleep(8)


# ----------------------------------------------------------------------------- running


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_measured(cmd, env, out_log, timeout, server_pids, cwd=None):
    """Runs cmd; returns (exit status, rusage, sampler, start time, end time)."""
    started = time.time()
    with open(out_log, "wb") as logf:
        p = subprocess.Popen(
            cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
        sampler = Sampler(p.pid, server_pids)
        sampler.sample()
        sampler.start()
        killer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            killer.cancel()
            sampler.stop()
        p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru, sampler, started, time.time()


def window(series):
    """Indexes (a, b) of the steady-state window in a [(t, ops, bytes)] series."""
    started = [i for i, (_, ops, _) in enumerate(series) if ops > 0]
    if len(started) < 3:
        return None
    t0 = series[max(started[0] - 1, 0)][0]
    growing = [i for i in range(1, len(series)) if series[i][1] > series[i - 1][1]]
    t_end = series[growing[-1]][0] if growing else series[-1][0]
    a = next((i for i, p in enumerate(series) if p[0] >= t0 + WARMUP_S), None)
    b = max((i for i, p in enumerate(series) if p[0] <= t_end - 1.0), default=None)
    if a is None or b is None or b - a < 2:
        # Too short for a warm-up: use what there is.
        a, b = started[0], growing[-1] if growing else len(series) - 1
    if b <= a:
        return None
    return a, b


def engine_report(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        s = json.load(f)

    def row(t):
        return {
            "requests": t["requests"],
            "failures": t["failures"],
            "bytes": t["bytes"],
            "p50_ms": t["latency_ms"]["p50"],
            "p99_ms": t["latency_ms"]["p99"],
        }

    series, total_bytes = [], 0.0
    with open(os.path.join(run_dir, "stats_history.csv")) as f:
        for r in csv.DictReader(f):
            if r["Name"] != "Aggregated":
                continue
            total_bytes += float(r["MB/s"] or 0) * 1e6
            series.append((float(r["Timestamp"]), int(r["Total Request Count"]), total_bytes))
    fails = [f"{x['name']}: {x['error']} {x.get('sample', '')}" for x in s.get("failures", [])]
    return {
        "ops": {t["name"]: row(t) for t in s["tasks"] if t["requests"]},
        "total": row(s["total"]),
        "first_error": fails[0] if fails else None,
        "series": series,
    }


class ServerGone(Exception):
    pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.join(HERE, ".bin")
        self.engine = os.path.join(self.bin, "chopsticks")
        self.native = os.path.join(self.bin, "chopsticks-bench-native")
        self.venv = os.path.join(HERE, ".venv", "bin")
        self.s5cmd = args.s5cmd
        stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
        self.stamp = stamp
        self.work = os.path.join(HERE, "results", f"{stamp}.raw")
        os.makedirs(self.work, exist_ok=True)
        self.endpoint = os.environ["S3_ENDPOINT"]
        self.rgw_dir = os.environ.get("CHOPSTICKS_RGW_DIR", "")
        self.server_pids = []
        for name in ("client.rgw.x", "osd.0", "mon.a", "mgr.x"):
            try:
                with open(os.path.join(self.rgw_dir, "run", f"{name}.pid")) as f:
                    self.server_pids.append(int(f.read().strip()))
            except (OSError, ValueError):
                pass
        self.env = dict(os.environ)
        self.env["S3_ENDPOINT_URL"] = self.endpoint
        self.env.pop("CHOPSTICKS_LOG", None)
        # One workload config per engine driver: `lean` (the default) and the stock `aws-sdk`.
        self.wl_configs = {}
        for driver in ("lean", "aws-sdk"):
            path = os.path.join(self.work, f"workload-{driver}.yaml")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(
                    f"endpoint: {self.endpoint}\naccess_key: {os.environ['AWS_ACCESS_KEY_ID']}\n"
                    f"secret_key: {os.environ['AWS_SECRET_ACCESS_KEY']}\nbucket: {BUCKET}\n"
                    f"region: us-east-1\ndriver: {driver}\n"
                )
            self.wl_configs[driver] = path
        self.runs = []
        # Cores other work used just before each memory run (the memory runs' conditions).
        self.memory_busy = []

    # -- contenders: each returns (cmd, env, report-reader)

    def contender(self, name, workload, users, duration, tag):
        scen = os.path.join(HERE, "scenarios", f"{workload}.yaml")
        out = os.path.join(self.work, f"{tag}.json")
        prefix = f"bench/{tag}"
        if name in ("engine", "engine-verify", "engine-aws"):
            run_dir = os.path.join(self.work, tag)
            if name == "engine-verify":
                scen = os.path.join(HERE, "scenarios", f"{workload}_verify.yaml")
            config = self.wl_configs["aws-sdk" if name == "engine-aws" else "lean"]
            cmd = [
                self.engine, "run", "--headless", "--workload-config", config,
                "-f", scen, "-u", str(users), "-r", str(users), "-t", f"{duration}s",
                "--run-dir", run_dir, "--run-id", tag, "--log-level", "warn",
            ]  # fmt: skip
            return cmd, self.env, lambda: engine_report(run_dir), f"chopsticks/{tag}/"
        if name.startswith("locust-"):
            kind = name.split("-", 1)[1]
            env = dict(self.env)
            env.update(
                BENCH_WORKLOAD=workload, BENCH_BUCKET=BUCKET, BENCH_PREFIX=prefix,
                BENCH_OUT=out, BENCH_S5CMD=self.s5cmd,
            )  # fmt: skip
            cmd = [
                os.path.join(self.venv, "locust"), "-f",
                os.path.join(HERE, "locust", f"{kind}_user.py"), "--headless",
                "-u", str(users), "-r", str(users), "-t", f"{duration}s", "--only-summary",
                "--loglevel", "WARNING", "--host", self.endpoint,
            ]  # fmt: skip
            return cmd, env, lambda: json.load(open(out)), prefix + "/"
        if name in ("native", "native-stream", "native-lean"):
            cmd = [
                self.native, "--bucket", BUCKET, "run", "--workload", workload,
                "--concurrency", str(users), "--duration", str(duration),
                "--prefix", prefix, "--out", out,
            ]  # fmt: skip
            if name == "native-stream":
                cmd += ["--body", "stream"]
            if name == "native-lean":
                cmd += ["--client", "lean"]
            return cmd, self.env, lambda: json.load(open(out)), prefix + "/"
        raise ValueError(name)

    def cleanup(self, prefix, gc):
        t0 = time.time()
        self._cleanup(prefix, gc)
        if time.time() - t0 > 5:
            log(f"    (cleanup of {prefix} took {time.time() - t0:.0f} s)")

    def _cleanup(self, prefix, gc):
        try:
            subprocess.run(
                [self.native, "--bucket", BUCKET, "cleanup", "--prefix", prefix],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
            )  # fmt: skip
            if gc and self.rgw_dir:
                # Tails of deleted large objects live in the RAM-backed OSD until RGW's garbage
                # collection; collect them now so every run starts from the same state.
                subprocess.run(
                    ["radosgw-admin", "-c", os.path.join(self.rgw_dir, "ceph.conf"), "gc",
                     "process", "--include-all"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
                )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ServerGone(f"cleanup of {prefix} did not finish within 300 s")

    def measure(self, name, workload, users, duration, rnd):
        tag = f"{workload}-{name}-r{rnd}"
        cmd, env, read, prefix = self.contender(name, workload, users, duration, tag)
        quiet_busy, load1 = wait_for_quiet(self.args.max_quiet_wait, self.server_pids)
        log(f"  {tag}: {users} users, {duration}s (other work: {quiet_busy:.2f} cores, load {load1:.2f})")
        code, ru, sampler, t_start, t_end = run_measured(
            cmd, env, os.path.join(self.work, f"{tag}.log"), duration + 120, self.server_pids
        )
        with open(os.path.join(self.work, f"{tag}.samples.json"), "w") as f:
            json.dump(sampler.points, f)
        rec = {
            "contender": name, "workload": workload, "round": rnd, "users": users,
            "duration_s": duration, "exit": code, "other_work_cores_before": round(quiet_busy, 3),
            "load1_before": load1, "wall_s": round(t_end - t_start, 2),
            "total_cpu_s": ru.ru_utime + ru.ru_stime, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
            "peak_rss_kib": ru.ru_maxrss,
            "peak_tree_rss_kib": int(max((p[2] for p in sampler.points), default=0) / 1024),
        }  # fmt: skip
        try:
            rep = read()
        except (OSError, ValueError, KeyError) as e:
            rec["error"] = f"no report: {e}"
            log(f"    FAILED: {rec['error']} (see {tag}.log)")
            self.cleanup(prefix, workload != "small")
            self.runs.append(rec)
            return rec
        series = rep["series"]
        rec["ops"] = rep["ops"]
        rec["total"] = rep["total"]
        rec["first_error"] = rep.get("first_error")
        w = window(series)
        if w is None:
            rec["error"] = "too few requests for a window"
        else:
            (ta, oa, ba), (tb, ob, bb) = series[w[0]], series[w[1]]
            dt, dops = tb - ta, ob - oa
            dcpu = sampler.at(tb, 1) - sampler.at(ta, 1)
            dsrv = sampler.at(tb, 3) - sampler.at(ta, 3)
            dbusy = sampler.at(tb, 4) - sampler.at(ta, 4)
            rec.update(
                window_s=round(dt, 2), window_requests=dops,
                ops_s=dops / dt, mb_s=(bb - ba) / dt / 1e6,
                cpu_s_per_1k=dcpu / dops * 1000 if dops else None,
                cpu_ms_per_64mib=(dcpu / (bb - ba) * 64 * 2**20 * 1000) if bb > ba else None,
                client_cores=dcpu / dt, server_cores=dsrv / dt,
                server_cpu_s_per_1k=dsrv / dops * 1000 if dops else None,
                other_cores=max(0.0, dbusy - dcpu - dsrv) / dt,
                total_cpu_s_per_1k=rec["total_cpu_s"] / rep["total"]["requests"] * 1000
                if rep["total"]["requests"] else None,
            )  # fmt: skip
        fails = rep["total"]["failures"]
        log(
            f"    {rec.get('ops_s', 0):8.1f} op/s {rec.get('mb_s', 0):8.1f} MB/s  "
            f"cpu {rec.get('cpu_s_per_1k') or 0:.3f} s/1k  client {rec.get('client_cores', 0):.2f} "
            f"server {rec.get('server_cores', 0):.2f} other {rec.get('other_cores', 0):.2f} cores  "
            f"rss {rec['peak_rss_kib'] / 1024:.0f} MiB  failures {fails}"
            + (f"  first error: {rec['first_error']}" if fails else "")
        )
        self.cleanup(prefix, workload != "small")
        self.runs.append(rec)
        self.check_server()
        return rec

    def check_server(self):
        """Stops the bench if the server no longer answers (a hung OSD makes every later
        number meaningless)."""
        try:
            r = subprocess.run(
                [self.native, "--bucket", BUCKET, "cleanup", "--prefix", "bench/health-check/"],
                env=self.env, capture_output=True, timeout=60,
            )  # fmt: skip
            bad = r.stderr.decode()[-300:] if r.returncode != 0 else None
        except subprocess.TimeoutExpired:
            bad = "no answer within 60 s"
        if bad:
            raise ServerGone(f"the S3 server stopped answering: {bad}")

    # -- memory per virtual user

    def idle_rss(self, cmd, env, tag, settle):
        code, ru, sampler, t0, t1 = run_measured(
            cmd, env, os.path.join(self.work, f"{tag}.log"), settle + 600, self.server_pids
        )
        # The plateau: the median of the tree's RSS over the last 5 s before the stop.
        stop_at = t1 - 2.0
        tail = [p[2] for p in sampler.points if stop_at - 5 <= p[0] <= stop_at]
        tail = tail or [p[2] for p in sampler.points]
        return code, statistics.median(tail) / 2**20, ru.ru_maxrss

    def ensure_bucket(self):
        """The Locust rows PUT into BUCKET, which only the load runs create otherwise."""
        code = (
            "import os, boto3\n"
            "s3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], region_name='us-east-1',"
            " aws_access_key_id=os.environ['AWS_ACCESS_KEY_ID'],"
            " aws_secret_access_key=os.environ['AWS_SECRET_ACCESS_KEY'])\n"
            "try:\n    s3.create_bucket(Bucket=os.environ['BENCH_BUCKET'])\n"
            "except s3.exceptions.BucketAlreadyOwnedByYou:\n    pass\n"
        )
        env = dict(self.env, BENCH_BUCKET=BUCKET)
        r = subprocess.run([os.path.join(self.venv, "python"), "-c", code], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        if r.returncode != 0:
            log(f"  cannot create bucket {BUCKET}: {r.stderr.strip()[-300:]}")

    def memory(self, counts_idle0, counts_put, counts_burst):
        results = []
        env = {k: v for k, v in self.env.items() if k not in ("S3_ENDPOINT_URL", "S3_ENDPOINT")}
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        plans = [
            # No request at all: each user's own state only. Spawned fast.
            ("engine, no request", "idle0.yaml", counts_idle0, 10000),
            # One 4 KiB PUT each, spawned slowly enough (the embedded target does a few
            # hundred PUT/s here) that the pool holds a handful of connections; a burst of
            # thousands of simultaneous first requests opens as many connections, which the
            # pool then keeps while the users idle.
            ("engine, one PUT", "idle.yaml", counts_put, self.args.memory_spawn_rate),
            # The same at 5000 users/s: the PUTs pile up, and every one in flight holds a
            # connection of its own that stays in the pool (client and server side, both in
            # this process) while the users idle.
            ("engine, one PUT, burst", "idle.yaml", counts_burst, 5000),
        ]
        for plan, (label, scen_file, counts, max_rate) in enumerate(plans):
            if not counts:
                continue
            scen = os.path.join(HERE, "scenarios", scen_file)
            base = None
            for n in [1] + counts:
                rate = min(n, max_rate)
                settle = int(n / rate) + 15
                # The plan's index keeps run dirs apart: two plans share the 1-user baseline.
                tag = f"mem{plan}-{scen_file.split('.')[0]}-{n}-r{rate}"
                run_dir = os.path.join(self.work, tag)
                cmd = [
                    self.engine, "run", "--headless", "-f", scen, "-u", str(n), "-r", str(rate),
                    "-t", f"{settle}s", "--run-dir", run_dir, "--log-level", "warn",
                    "--stop-timeout", "5",
                ]  # fmt: skip
                busy, _ = wait_for_quiet(self.args.max_quiet_wait, self.server_pids)
                self.memory_busy.append(busy)
                code, rss, peak = self.idle_rss(cmd, env, tag, settle)
                if code != 0:
                    # No figure from a run that failed (its RSS would be the failure's).
                    log(f"  {label} {n:>6} users: exited {code}, see {tag}.log; skipping {label}")
                    results.append({"tool": label, "users": n, "exit": code, "rss_mib": 0.0})
                    break
                try:
                    with open(os.path.join(run_dir, "summary.json")) as f:
                        t = json.load(f)["total"]
                    done = t["requests"]
                    p50 = t["latency_ms"]["p50"]
                except (OSError, ValueError, KeyError):
                    done = p50 = None
                row = {"tool": label, "users": n, "rss_mib": round(rss, 1), "peak_kib": peak,
                       "requests": done, "put_p50_ms": p50, "spawn_rate": rate, "exit": code}  # fmt: skip
                base = memory_row(results, row, rss, base, f", {done} requests")
        self.ensure_bucket()
        for kind in ("bare", "idle"):
            base = None
            for n in (1, self.args.locust_users):
                tag = f"mem-locust-{kind}-{n}"
                rate = min(n, 100)
                settle = int(n / rate) + 20
                env = dict(self.env)
                env.update(BENCH_WORKLOAD=kind, BENCH_BUCKET=BUCKET, BENCH_PREFIX=f"bench/{tag}")
                cmd = [
                    os.path.join(self.venv, "locust"), "-f",
                    os.path.join(HERE, "locust", "boto3_user.py"), "--headless", "-u", str(n),
                    "-r", str(rate), "-t", f"{settle}s", "--only-summary", "--loglevel",
                    "WARNING", "--host", self.endpoint,
                ]  # fmt: skip
                busy, _ = wait_for_quiet(self.args.max_quiet_wait, self.server_pids)
                self.memory_busy.append(busy)
                code, rss, peak = self.idle_rss(cmd, env, tag, settle)
                label = "locust (bare user)" if kind == "bare" else "locust + boto3 client/user"
                self.cleanup(f"bench/{tag}/", False)
                if code != 0:
                    # No figure from a run that failed, as for the engine.
                    log(f"  {label} {n:>6} users: exited {code}, see {tag}.log; skipping {label}")
                    results.append({"tool": label, "users": n, "exit": code, "rss_mib": 0.0})
                    break
                row = {"tool": label, "users": n, "rss_mib": round(rss, 1), "peak_kib": peak,
                       "exit": code}  # fmt: skip
                base = memory_row(results, row, rss, base, "")
        return results


def memory_row(results, row, rss, base, extra):
    """Logs and appends one memory figure; returns the baseline for the next ones.

    The 1-user run is the baseline; every other run's per-user figure is its RSS above the
    baseline divided by the users it added."""
    n = row["users"]
    if n == 1:
        base = rss
    else:
        row["kib_per_user"] = round((rss - base) * 1024 / (n - 1), 2)
    log(f"  {row['tool']} {n:>6} users: RSS {rss:8.1f} MiB{extra}"
        + (f", {row['kib_per_user']} KiB/user" if "kib_per_user" in row else ""))
    results.append(row)
    return base


# ----------------------------------------------------------------------------- reporting

METRICS = [
    # key, header, format, lower is better
    ("ops_s", "ops/s", "{:.0f}", False),
    ("cpu_s_per_1k", "CPU s/1k ops", "{:.3f}", True),
    ("mb_s", "MB/s", "{:.1f}", False),
    ("p50_ms", "p50 ms", "{:.1f}", True),
    ("p99_ms", "p99 ms", "{:.1f}", True),
    ("peak_rss_mib", "peak RSS MiB", "{:.0f}", True),
]
LARGE_EXTRA = ("cpu_ms_per_64mib", "CPU ms/64MiB", "{:.1f}", True)


def value(rec, key):
    if key in ("p50_ms", "p99_ms"):
        return rec.get("total", {}).get(key)
    if key == "peak_rss_mib":
        return rec["peak_rss_kib"] / 1024
    return rec.get(key)


def summarize(runs):
    """{workload: {contender: {metric: (median, min, max, n)}}}"""
    out = {}
    keys = [m[0] for m in METRICS] + [LARGE_EXTRA[0], "client_cores", "server_cores",
                                       "other_cores", "server_cpu_s_per_1k", "total_cpu_s_per_1k"]
    for r in runs:
        if "error" in r:
            continue
        out.setdefault(r["workload"], {}).setdefault(r["contender"], []).append(r)
    table = {}
    for wl, by in out.items():
        for c, rs in by.items():
            cell = {}
            for k in keys:
                vals = [v for v in (value(r, k) for r in rs) if v is not None]
                if vals:
                    cell[k] = (statistics.median(vals), min(vals), max(vals), len(vals))
            cell["failures"] = sum(r["total"]["failures"] for r in rs)
            cell["requests"] = sum(r["total"]["requests"] for r in rs)
            table.setdefault(wl, {})[c] = cell
    return table


def spread(cell):
    med, lo, hi, n = cell
    if n < 2 or not med:
        return ""
    return f" ±{(hi - lo) / 2 / abs(med) * 100:.0f}%"


def markdown(table, order, workloads_meta, memory, coordinator, meta):
    lines = []
    p = lines.append
    p(f"# Benchmark results {meta['date']}")
    p("")
    if meta.get("aborted"):
        p(f"**Aborted: {meta['aborted']}. Only the runs before that are shown.**")
        p("")
    p(f"Machine: {meta['machine']}. Engine {meta['engine_version']}, commit "
      f"{describe_commit(meta)}.")
    p(f"Rounds: {meta['rounds']} (order rotated every round); windows skip the first "
      f"{WARMUP_S:.0f} s of load. Server: {meta['endpoint']} (RadosGW, memstore).")
    def cores(key):
        v = meta.get(key)
        return "not measured" if v is None else f"{v:.2f}"

    if meta.get("other_before") is not None or meta.get("other_during") is not None:
        p(f"Conditions: other work on the machine before load runs: median "
          f"{cores('other_before')} cores (max {cores('other_before_max')}); during the windows: "
          f"median {cores('other_during')} cores (max {cores('other_during_max')}) of 2.")
    else:
        p("No load runs (memory only).")
    if meta.get("other_before_memory") is not None:
        p(f"Other work on the machine just before the memory runs: median "
          f"{cores('other_before_memory')} cores (max {cores('other_before_memory_max')}) of 2 "
          "(RSS does not depend on it; spawn times would).")
    p("")
    p("Contenders: engine = `chopsticks run` with its default `lean` driver (hyper + aws-sigv4, "
      "streamed bodies); native = bare aws-sdk-s3 loop (in-memory bodies, which the SDK "
      "SHA-256-signs); locust-boto3 = Locust, one boto3 client per user; locust-s5cmd = Locust, "
      "one s5cmd process per request (the seed's driver); engine-aws = `chopsticks run` with "
      "`driver: aws-sdk` (the stock SDK path); engine-verify = the engine checking every GET "
      "body; native-stream = the bare SDK loop with streamed bodies (UNSIGNED-PAYLOAD, as the "
      "engine sends); native-lean = the engine's own lean driver called from the bare loop "
      "(the same requests with no users, scheduling or statistics around them).")
    p("")
    p("Figures are medians over the rounds; ±x% is half the min–max spread relative to the "
      "median. CPU = user+sys of the client's whole process tree per 1000 requests in the "
      "steady-state window. ratio = engine ÷ other (for CPU and RSS below 1 is better for the "
      "engine; for ops/s and MB/s above 1 is).")
    for wl in [w for w in workloads_meta if w in table]:
        meta_w = workloads_meta[wl]
        metrics = list(METRICS) + ([LARGE_EXTRA] if wl == "large" else [])
        p("")
        p(f"## {wl}: {meta_w['what']} — {meta_w['users']} users, {meta_w['duration']} s per run")
        p("")
        p("| contender | " + " | ".join(m[1] for m in metrics) + " | server CPU s/1k | failures |")
        p("|---" * (len(metrics) + 3) + "|")
        row_order = [c for c in order if c in table[wl]]
        for c in row_order:
            cell = table[wl][c]
            vals = []
            for k, _, fmt, _ in metrics:
                vals.append(fmt.format(cell[k][0]) + spread(cell[k]) if k in cell else "–")
            srv = cell.get("server_cpu_s_per_1k")
            srv_txt = f"{srv[0]:.3f}" if srv else "–"
            p(f"| {c} | " + " | ".join(vals)
              + f" | {srv_txt} | {cell['failures']} / {cell['requests']} |")
        if "engine" in table[wl]:
            eng = table[wl]["engine"]
            p("")
            p("| engine ÷ | " + " | ".join(m[1] for m in metrics) + " |")
            p("|---" * (len(metrics) + 1) + "|")
            for c in row_order:
                if c == "engine":
                    continue
                other = table[wl][c]
                vals = []
                for k, _, _, _ in metrics:
                    if k in eng and k in other and other[k][0]:
                        vals.append(f"{eng[k][0] / other[k][0]:.3g}")
                    else:
                        vals.append("–")
                p(f"| {c} | " + " | ".join(vals) + " |")
    if memory:
        p("")
        p("## Memory per virtual user (idle users: a 3600 s wait)")
        p("")
        p("RSS = median resident set of the process tree over the last 5 s before the stop; "
          "per user = (RSS(N) − RSS(1)) ÷ (N − 1). The engine runs against its embedded "
          "target (in the same process, so its memory is included); Locust against RadosGW.")
        p("")
        p("| tool | users | spawn/s | requests | RSS MiB | KiB per user |")
        p("|---|---|---|---|---|---|")
        for r in memory:
            p(f"| {r['tool']} | {r['users']} | {r.get('spawn_rate', '–')} | "
              f"{r.get('requests', '–')} | "
              + (f"failed (exit {r['exit']})" if r.get("exit") else f"{r['rss_mib']:.1f}")
              + f" | {r.get('kib_per_user', '–')} |")
    p("")
    p("## Coordinator scale")
    p("")
    if coordinator:
        p("```")
        p(coordinator.rstrip())
        p("```")
    else:
        p("Not run (bench/run.sh runs it unless --quick or --no-coordinator is given).")
    return "\n".join(lines) + "\n"


def git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def tree_state():
    """(commit, changed files) of the working tree the binaries are built from: tracked changes
    and untracked files, leaving out bench/results/ (where runs write). Unknown = (None, None)."""
    commit = git("rev-parse", "HEAD") or None
    if commit is None:
        return None, None
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":(exclude)bench/results"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return commit, None
    return commit, [line[3:] for line in status.splitlines() if line.strip()]


def describe_commit(meta):
    """The commit line of a results file: the commit, and whether the tree differed from it."""
    commit = meta.get("commit")
    if not commit:
        return "unknown (not a git checkout)"
    if meta.get("dirty") is None:
        return f"{commit[:12]} (whether the tree was dirty is unknown)"
    if meta["dirty"]:
        files = meta.get("dirty_files") or []
        shown = ", ".join(files[:5]) + (f", … ({len(files)} in all)" if len(files) > 5 else "")
        return f"{commit[:12]} **with uncommitted changes** ({shown}): not that commit's figures alone"
    return f"{commit[:12]} (clean tree)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one short round, small memory test")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--workloads", default="small,large,mixed")
    ap.add_argument("--contenders", default="")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-users", default="")
    ap.add_argument("--locust-users", type=int, default=1000)
    ap.add_argument("--memory-put-users", default="")
    ap.add_argument("--memory-spawn-rate", type=int, default=100)
    ap.add_argument("--coordinator", default="", help="file with the coordinator bench's output")
    ap.add_argument("--max-quiet-wait", type=float, default=None)
    ap.add_argument("--s5cmd", required=True)
    ap.add_argument("--commit", default="", help="commit the binaries were built from (bench/run.sh)")
    ap.add_argument("--dirty-files", default=None,
                    help="newline-separated files that differed from --commit at build time")
    ap.add_argument("--dry-run", action="store_true",
                    help="check the arguments, print the plan and exit: no server, no runs")
    args = ap.parse_args()
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    if args.max_quiet_wait is None:
        args.max_quiet_wait = 0.0 if quick else 30.0
    d_small = d_mixed = 10 if quick else 30
    # Every second of a large run leaves ~0.2 GB of deleted tails in the RAM-backed OSD until
    # the harness collects them after the run; keep runs short enough for the 6 GiB memstore.
    d_large = 12 if quick else 20
    workloads_meta = {
        "small": {"what": "4 KiB PUT then GET, no wait", "users": 16, "duration": d_small},
        "large": {"what": "64 MiB PUT, GET, DELETE, no wait", "users": 4, "duration": d_large},
        "mixed": {"what": "put/get/list/delete 40/40/10/10, 4 KiB/256 KiB/4 MiB 6:3:1, no wait",
                  "users": 16, "duration": d_mixed},
    }  # fmt: skip
    default_contenders = {
        "small": ["engine", "native", "locust-boto3", "locust-s5cmd", "engine-aws",
                  "native-lean"],
        "large": ["engine", "native", "locust-boto3", "locust-s5cmd", "engine-aws",
                  "engine-verify", "native-stream", "native-lean"],
        "mixed": ["engine", "native", "locust-boto3", "locust-s5cmd", "engine-aws",
                  "native-lean"],
    }  # fmt: skip
    known = {c for cs in default_contenders.values() for c in cs}
    unknown = [c for c in args.contenders.split(",") if c and c not in known]
    if unknown:
        ap.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    unknown = [w for w in args.workloads.split(",") if w and w not in default_contenders]
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; choose from small, large, mixed")
    wanted = [c for c in args.contenders.split(",") if c]
    if args.commit:
        commit = args.commit
        dirty_files = [f for f in (args.dirty_files or "").splitlines() if f]
        dirty_known = args.dirty_files is not None
    else:
        commit, dirty_files = tree_state()
        dirty_known = dirty_files is not None
    memory_counts = {
        "no request": [int(x) for x in args.memory_users.split(",") if x]
        or ([1000, 10000] if quick else [1000, 10000, 50000, 100000]),
        "one PUT": [int(x) for x in args.memory_put_users.split(",") if x]
        or ([1000] if quick else [1000, 10000]),
        "one PUT, burst": [] if quick else [10000],
    }
    if args.dry_run:
        state = {"commit": commit, "dirty": bool(dirty_files) if dirty_known else None,
                 "dirty_files": dirty_files}  # fmt: skip
        print(f"dry run (nothing is started); commit {describe_commit(state)}")
        for wl in [w for w in args.workloads.split(",") if w]:
            cs = [c for c in default_contenders[wl] if not wanted or c in wanted]
            m = workloads_meta[wl]
            print(f"  {wl}: {rounds} round(s) of {', '.join(cs) or 'nothing'}; "
                  f"{m['users']} users, {m['duration']} s a run")
        if args.no_memory:
            print("  memory per virtual user: skipped")
        else:
            for label, counts in memory_counts.items():
                print(f"  memory, engine {label}: " + (f"{counts} users" if counts else "skipped"))
            print(f"  memory, Locust: {args.locust_users} users")
        return 0
    bench = Bench(args)
    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"{round(os.sysconf('SC_PHYS_PAGES') * PAGE / 2**30)} GiB; client and RadosGW share them",
        "engine_version": subprocess.run([bench.engine, "--version"], capture_output=True,
                                         text=True).stdout.strip(),
        # The commit the binaries were built from, and whether the tree differed from it.
        "commit": commit,
        "dirty": bool(dirty_files) if dirty_known else None,
        "dirty_files": dirty_files,
        "rounds": rounds,
        "endpoint": bench.endpoint,
        "quick": quick,
    }  # fmt: skip
    t_begin = time.time()
    log(f"bench: raw output in {bench.work}")
    aborted = None
    try:
        for rnd in range(1, rounds + 1):
            for wl in [w for w in args.workloads.split(",") if w]:
                cs = [c for c in default_contenders[wl] if not wanted or c in wanted]
                if not cs:
                    continue
                k = (rnd - 1) % len(cs)
                order = cs[k:] + cs[:k]
                log(f"round {rnd}/{rounds}, {wl}: {' -> '.join(order)}")
                m = workloads_meta[wl]
                for c in order:
                    bench.measure(c, wl, m["users"], m["duration"], rnd)
    except ServerGone as e:
        aborted = str(e)
        log(f"ABORTED: {aborted}; writing what was measured")
    meta["aborted"] = aborted
    memory = []
    if not args.no_memory and not aborted:
        log("memory per virtual user")
        memory = bench.memory(*memory_counts.values())
    coordinator = ""
    if args.coordinator and os.path.exists(args.coordinator):
        with open(args.coordinator) as f:
            coordinator = f.read()
    ok = [r for r in bench.runs if "error" not in r]
    # None (said as "not measured") when there were no such runs, never a made-up 0.
    before = [r["other_work_cores_before"] for r in bench.runs]
    during = [r["other_cores"] for r in ok if "other_cores" in r]
    mem_busy = bench.memory_busy
    meta.update(
        other_before=statistics.median(before) if before else None,
        other_before_max=max(before) if before else None,
        other_during=statistics.median(during) if during else None,
        other_during_max=max(during) if during else None,
        other_before_memory=statistics.median(mem_busy) if mem_busy else None,
        other_before_memory_max=max(mem_busy) if mem_busy else None,
        elapsed_s=round(time.time() - t_begin),
    )  # fmt: skip
    table = summarize(bench.runs)
    order = ["engine", "native", "locust-boto3", "locust-s5cmd", "engine-aws", "engine-verify",
             "native-stream", "native-lean"]
    md = markdown(table, order, workloads_meta, memory, coordinator, meta)
    md += f"\nHarness time: {meta['elapsed_s']} s. Raw output: bench/results/{bench.stamp}.raw/\n"
    base = os.path.join(HERE, "results", bench.stamp + ("-quick" if quick else ""))
    with open(base + ".md", "w") as f:
        f.write(md)
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "workloads": workloads_meta, "summary": table,
                   "runs": bench.runs, "memory": memory, "coordinator": coordinator}, f, indent=1)
    print(md)
    log(f"wrote {base}.md and {base}.json")
    failed = [r for r in bench.runs if "error" in r or r.get("exit")]
    if aborted:
        return 2
    if failed:
        log(f"{len(failed)} run(s) failed or exited non-zero: "
            + ", ".join(f"{r['workload']}-{r['contender']}-r{r['round']}" for r in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
