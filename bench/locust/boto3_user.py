"""Locust + boto3: what a Locust user writes when asked for an S3 load test.

One boto3 client per virtual user (Locust's usual on_start pattern), path-style addressing,
no retries, checksums only when required (the engine's settings). PUT bodies are in memory,
GET bodies are read in 1 MiB chunks and dropped. See benchlib.py for the workloads.
"""

import boto3
from botocore.config import Config
from locust import User, constant, task

import benchlib

_session = boto3.session.Session()


class Boto3Client:
    def __init__(self):
        self.s3 = _session.client(
            "s3",
            endpoint_url=benchlib.ENDPOINT,
            aws_access_key_id=benchlib.ACCESS_KEY,
            aws_secret_access_key=benchlib.SECRET_KEY,
            region_name=benchlib.REGION,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": 1},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def put(self, key, size):
        self.s3.put_object(Bucket=benchlib.BUCKET, Key=key, Body=benchlib.body(size))
        return size

    def get(self, key):
        resp = self.s3.get_object(Bucket=benchlib.BUCKET, Key=key)
        n = 0
        for chunk in resp["Body"].iter_chunks(1 << 20):
            n += len(chunk)
        return n

    def delete(self, key):
        self.s3.delete_object(Bucket=benchlib.BUCKET, Key=key)
        return 0

    def list(self, prefix):
        self.s3.list_objects_v2(Bucket=benchlib.BUCKET, Prefix=prefix, MaxKeys=100)
        return 0


class Boto3User(User):
    wait_time = constant(3600) if benchlib.WORKLOAD in ("idle", "bare") else constant(0)

    def on_start(self):
        self.iterations = benchlib.Iterations(benchlib.next_user_index())
        self.client = Boto3Client() if benchlib.WORKLOAD != "bare" else None

    @task
    def iteration(self):
        if self.client is not None:
            self.iterations.one(self.client)
