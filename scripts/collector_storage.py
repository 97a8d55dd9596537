#!/usr/bin/env python3
"""Measures the collector's storage per instance per day at one report a minute with no
change (docs/collector.md quotes the result). Starts the given vpce-collector binary on a
loopback port with a scratch database, posts a day of healthy reports for a few instances
(gzip, bearer token, as the agent's HTTP sink does), checkpoints the WAL and divides the
database's growth.

    python3 scripts/collector_storage.py target/debug/vpce-collector [instances] [reports_each]
"""
import copy
import gzip
import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "crates/collector/tests/fixtures/healthy.json"
TOKEN = "storage-measure-token-0123456789"


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/vpce-collector")
    instances = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    per_instance = int(sys.argv[3]) if len(sys.argv) > 3 else 1440
    base = json.loads(FIXTURE.read_text())
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        (d / "tokens").write_text(f"measure {TOKEN}\n")
        db = d / "reports.db"
        proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--db", str(db), "--tokens", str(d / "tokens")],
            stderr=subprocess.PIPE, text=True,
        )
        try:
            addr = None
            for line in proc.stderr:
                if line.startswith("listening on "):
                    addr = line.split()[-1]
                    break
            if addr is None:
                sys.exit("the collector did not start")
            url = f"http://{addr}/v1/reports"
            start = 1_795_000_000  # a fixed day, one report a minute
            body_bytes = 0
            t0 = time.monotonic()
            for n in range(per_instance):
                for i in range(instances):
                    r = copy.deepcopy(base)
                    r["report_id"] = str(uuid.uuid4())
                    r["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 60 * n))
                    r["instance"]["instance_id"] = f"i-{i:017x}"
                    r["host"]["hostname"] = f"ip-10-0-1-{i}"
                    raw = json.dumps(r).encode()
                    body_bytes += len(raw)
                    req = urllib.request.Request(url, data=gzip.compress(raw), method="POST", headers={
                        "Content-Type": "application/json", "Content-Encoding": "gzip",
                        "Authorization": f"Bearer {TOKEN}", "X-Vpce-Probe-Report-Id": r["report_id"],
                    })
                    with urllib.request.urlopen(req) as resp:
                        if resp.status != 201:
                            sys.exit(f"answer {resp.status}")
            elapsed = time.monotonic() - t0
        finally:
            proc.kill()
            proc.wait()
        if os.environ.get("KEEP_DB"):
            import shutil; shutil.copy(db, os.environ["KEEP_DB"]); shutil.copy(str(db) + "-wal", os.environ["KEEP_DB"] + "-wal")
        con = sqlite3.connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0]
        kept = con.execute("SELECT COUNT(*) FROM bodies").fetchone()[0]
        total = con.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
        con.close()
        used = (pages - free) * page_size
        reports = instances * per_instance
        print(f"reports posted        {reports} ({instances} instances x {per_instance}), {reports / elapsed:.0f}/s sequential")
        print(f"report JSON size      {body_bytes // reports} bytes each")
        print(f"rows / bodies kept    {total} / {kept}")
        print(f"database              {used} bytes used ({pages} pages of {page_size}, {free} free)")
        per_report = used / reports
        per_day = per_report * 1440
        print(f"per report            {per_report:.0f} bytes")
        print(f"per instance per day  {per_day / 1024:.0f} KiB at one report a minute with no change")
        print(f"30 days x 1000 inst.  {per_day * 30 * 1000 / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
