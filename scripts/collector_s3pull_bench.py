#!/usr/bin/env python3
"""Time of `vpce-collector pull` over an S3 sink's prefix (docs/collector.md, "Pulling from an
S3 sink"): moto on a loopback port (the test venv's moto_server), N reports of the healthy
fixture (3.7 KB, on one line as the S3 sink writes them) spread over `instances` instances and
today's day prefix, then three pulls into a scratch database: the first fetches and stores
everything, the second only lists, the third after 10 more objects. Bounded: a fixed number of
objects, loopback only. Run it with the venv's Python (it has boto3):

    /opt/vpce-probe-test/venv/bin/python scripts/collector_s3pull_bench.py \\
        target/release/vpce-collector [reports] [instances]
"""
import copy
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "crates/collector/tests/fixtures/healthy.json"
MOTO = pathlib.Path(os.environ.get("VPCE_PROBE_MOTO", "/opt/vpce-probe-test/venv/bin/moto_server"))
BUCKET = "bench-reports"
PREFIX = "vpce-probe/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=20):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"moto did not answer on 127.0.0.1:{port}")


def reports(n, instances, now):
    base = json.loads(FIXTURE.read_text())
    day = time.strftime("%Y/%m/%d", time.gmtime(now))
    for i in range(n):
        r = copy.deepcopy(base)
        r["report_id"] = str(uuid.uuid4())
        r["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - i))
        inst = f"i-{i % instances:017x}"
        r["instance"]["instance_id"] = inst
        yield f"{PREFIX}{day}/{inst}/{r['report_id']}.json", json.dumps(r, separators=(",", ":")) + "\n"


def pull(binary, db, endpoint, tmp):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp / "empty"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "empty"),
        "VPCE_COLLECTOR_LOG": "warn",
    })
    started = time.monotonic()
    out = subprocess.run([binary, "pull", "--db", str(db), "--pull-s3", f"s3://{BUCKET}/{PREFIX}",
                          "--pull-s3-path-style"], env=env, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - started
    if out.returncode != 0:
        sys.exit(f"pull failed ({out.returncode}): {out.stdout}{out.stderr}")
    return took, out.stdout.strip()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/release/vpce-collector")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    instances = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    port = free_port()
    moto = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench",
                          config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
        s3.create_bucket(Bucket=BUCKET)
        now = int(time.time())
        objects = list(reports(n, instances, now))
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda kv: s3.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1].encode()), objects))
        size = sum(len(v) for _, v in objects) / len(objects)
        # moto's own pace: the same GETs from boto3, 8 at a time (the pull's concurrency).
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda kv: s3.get_object(Bucket=BUCKET, Key=kv[0])["Body"].read(), objects))
        baseline = time.monotonic() - started
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            (tmp / "empty").write_text("")
            db = tmp / "reports.db"
            first, line1 = pull(binary, db, endpoint, tmp)
            second, line2 = pull(binary, db, endpoint, tmp)
            more = list(reports(10, instances, now + 5))
            for k, v in more:
                s3.put_object(Bucket=BUCKET, Key=k, Body=v.encode())
            third, line3 = pull(binary, db, endpoint, tmp)
        print(f"{n} objects of {size / 1024:.1f} KB, {instances} instances, moto on loopback")
        print(f"boto3 GETs alone, 8 at a time: {baseline:.2f} s, {n / baseline:.0f} objects/s")
        print(f"first pull (GET + store each): {first:.2f} s, {n / first:.0f} objects/s  [{line1}]")
        print(f"second pull (list only):       {second:.2f} s  [{line2}]")
        print(f"third pull (10 new objects):   {third:.2f} s  [{line3}]")
    finally:
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
