"""Shared parts of the bench's Locust users (boto3_user.py, s5cmd_user.py).

The workload comes from the environment, set by bench/bench.py:

  BENCH_WORKLOAD    small | large | mixed | idle | bare
  BENCH_SMALL_SIZE  bytes of the small workload's objects (default 4096)
  BENCH_LARGE_SIZE  bytes of the large workload's objects (default 64 MiB)
  BENCH_BUCKET      bucket (must exist)
  BENCH_PREFIX      key prefix of this run
  BENCH_OUT         where to write the JSON report at exit (per-name counts, p50/p99 as
                    Locust computes them, and a once-a-second series of cumulative requests
                    and bytes with Unix timestamps)
  S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION

Each user runs one "iteration" per Locust task, back to back (no wait):
  small  PUT a new object, then GET it
  large  PUT a new object, GET it, DELETE it
  mixed  one of put 40 / get 40 / list 10 / delete 10 (random, weighted); PUT sizes
         4 KiB x6, 256 KiB x3, 4 MiB x1; get and delete pick one of the user's own objects
  idle   PUT one small object, then wait an hour (memory per idle user)
  bare   no request at all, wait an hour (memory of a bare Locust user)

Every request is reported with events.request.fire, as the seed's S3Client wrapper does.
"""

import json
import os
import random
import time

import gevent
from locust import events

WORKLOAD = os.environ.get("BENCH_WORKLOAD", "small")
SMALL_SIZE = int(os.environ.get("BENCH_SMALL_SIZE", "4096"))
LARGE_SIZE = int(os.environ.get("BENCH_LARGE_SIZE", str(64 * 1024 * 1024)))
BUCKET = os.environ.get("BENCH_BUCKET", "chopsticks-bench")
PREFIX = os.environ.get("BENCH_PREFIX", "bench-locust")
OUT = os.environ.get("BENCH_OUT")
ENDPOINT = os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:7480")
ACCESS_KEY = os.environ.get("AWS_ACCESS_KEY_ID", "")
SECRET_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
REGION = os.environ.get("AWS_REGION", "us-east-1")

MIXED_SIZES = [(4 * 1024, 6), (256 * 1024, 3), (4 * 1024 * 1024, 1)]

_bodies = {}


def body(size):
    """One in-memory body per size, shared by all users (the bare loop does the same)."""
    b = _bodies.get(size)
    if b is None:
        b = bytes((i * 0x9E3779B1 >> 24) & 0xFF for i in range(min(size, 4096)))
        b = (b * (size // len(b) + 1))[:size]
        _bodies[size] = b
    return b


def report(name, started, length, exc):
    events.request.fire(
        request_type="S3",
        name=name,
        response_time=(time.perf_counter() - started) * 1000.0,
        response_length=length,
        exception=exc,
        context={},
    )


class Iterations:
    """The workload's request pattern on top of a client with put/get/delete/list."""

    def __init__(self, user_index):
        self.prefix = f"{PREFIX}/u{user_index}/"
        self.seq = 0
        self.own = []
        self.rng = random.Random(user_index)

    def new_key(self):
        self.seq += 1
        return f"{self.prefix}{self.seq}"

    def timed(self, name, fn, *args):
        started = time.perf_counter()
        try:
            length = fn(*args)
        except Exception as e:  # every failure is counted, as Locust users do
            report(name, started, 0, e)
            return False
        report(name, started, length, None)
        return True

    def one(self, client):
        if WORKLOAD == "small":
            key = self.new_key()
            if self.timed("put", client.put, key, SMALL_SIZE):
                self.timed("get", client.get, key)
        elif WORKLOAD == "large":
            key = self.new_key()
            if self.timed("put", client.put, key, LARGE_SIZE):
                self.timed("get", client.get, key)
                self.timed("delete", client.delete, key)
        elif WORKLOAD == "mixed":
            pick = self.rng.randrange(100)
            if pick < 40:
                w = self.rng.randrange(10)
                size = MIXED_SIZES[0][0]
                for s, weight in MIXED_SIZES:
                    if w < weight:
                        size = s
                        break
                    w -= weight
                key = self.new_key()
                if self.timed("put", client.put, key, size):
                    self.own.append(key)
            elif pick < 80:
                if self.own:
                    self.timed("get", client.get, self.rng.choice(self.own))
            elif pick < 90:
                self.timed("list", client.list, self.prefix)
            else:
                if self.own:
                    i = self.rng.randrange(len(self.own))
                    self.own[i], self.own[-1] = self.own[-1], self.own[i]
                    self.timed("delete", client.delete, self.own.pop())
        elif WORKLOAD == "idle":
            if self.seq == 0:
                self.timed("put", client.put, self.new_key(), SMALL_SIZE)
        # "bare": nothing


_user_counter = [0]


def next_user_index():
    _user_counter[0] += 1
    return _user_counter[0]


_series = []


def _sample(environment):
    while True:
        total = environment.stats.total
        _series.append((time.time(), total.num_requests, total.total_content_length))
        gevent.sleep(1.0)


@events.init.add_listener
def _on_init(environment, **_kw):
    if OUT:
        gevent.spawn(_sample, environment)


@events.quitting.add_listener
def _on_quit(environment, **_kw):
    if not OUT:
        return
    stats = environment.stats
    total = stats.total
    _series.append((time.time(), total.num_requests, total.total_content_length))

    def row(e):
        return {
            "requests": e.num_requests,
            "failures": e.num_failures,
            "bytes": e.total_content_length,
            "p50_ms": e.get_response_time_percentile(0.5) if e.num_requests else 0.0,
            "p99_ms": e.get_response_time_percentile(0.99) if e.num_requests else 0.0,
        }

    errors = [f"{e.name}: {e.error}" for e in list(stats.errors.values())[:3]]
    out = {
        "tool": "locust",
        "workload": WORKLOAD,
        "ops": {name: row(e) for (name, _method), e in stats.entries.items()},
        "total": row(total),
        "first_error": errors[0] if errors else None,
        "errors": errors,
        "series": _series,
    }
    with open(OUT, "w") as f:
        json.dump(out, f)
