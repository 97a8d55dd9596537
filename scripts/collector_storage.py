#!/usr/bin/env python3
"""Measures the collector's storage per instance per day at one report a minute with no
change (docs/collector.md quotes the results). Starts the given vpce-collector binary on a
loopback port with a scratch store (a SQLite file, or with --postgres a scratch PostgreSQL
server, scripts/pg_scratch.py), posts a day of healthy reports for a few instances (gzip,
bearer token, as the agent's HTTP sink does; one keep-alive connection per instance), then
divides the database's growth.

    python3 scripts/collector_storage.py target/release/vpce-collector \
        [--instances 5] [--each 1440] [--report small|large] [--postgres]

--report small is the healthy fixture (3.7 KB); large is scripts/collector_reports.py's report
(12 targets, 36 checks, ~30 KB). SQLite: pages in use after a WAL checkpoint (free pages, which
SQLite reuses, are not counted). PostgreSQL: pg_database_size() after the posts minus before
them, after a plain VACUUM (the space of the dropped bodies is reused, not returned), and after
a VACUUM FULL (the size without that reusable space).
"""
import argparse
import gzip
import http.client
import json
import pathlib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import collector_reports  # noqa: E402
import pg_scratch  # noqa: E402

TOKEN = "storage-measure-token-0123456789"


def post_day(addr, base, instances, per_instance):
    """Each instance posts its day over its own connection; returns JSON bytes posted."""
    start = 1_795_000_000  # a fixed day, one report a minute
    totals, errors = [0] * instances, []

    def agent(i):
        conn = http.client.HTTPConnection(*addr, timeout=60)
        for n in range(per_instance):
            r = collector_reports.stamped(
                base, str(uuid.uuid4()), f"i-{i:017x}",
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 60 * n)))
            raw = json.dumps(r).encode()
            totals[i] += len(raw)
            conn.request("POST", "/v1/reports", body=gzip.compress(raw), headers={
                "Content-Type": "application/json", "Content-Encoding": "gzip",
                "Authorization": f"Bearer {TOKEN}", "X-Vpce-Probe-Report-Id": r["report_id"],
            })
            resp = conn.getresponse()
            resp.read()
            if resp.status != 201:
                errors.append(resp.status)
                return
        conn.close()

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(instances)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"answers {errors}")
    return sum(totals)


def run(args, db, d, measure_before, measure_after):
    (d / "tokens").write_text(f"measure {TOKEN}\n")
    proc = subprocess.Popen([args.binary, "serve", "--listen", "127.0.0.1:0", "--db", db,
                             "--tokens", str(d / "tokens")], stderr=subprocess.PIPE, text=True)
    try:
        addr = None
        for line in proc.stderr:
            if line.startswith("listening on "):
                host, port = line.split()[-1].rsplit(":", 1)
                addr = (host, int(port))
                break
        if addr is None:
            raise SystemExit("the collector did not start")
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        before = measure_before()
        base = collector_reports.large_report() if args.report == "large" else \
            json.loads(collector_reports.FIXTURE.read_text())
        t0 = time.monotonic()
        body_bytes = post_day(addr, base, args.instances, args.each)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    used, rows, kept = measure_after()
    used -= before
    reports = args.instances * args.each
    print(f"store {args.store_name}, report {args.report}")
    print(f"reports posted        {reports} ({args.instances} instances x {args.each}), "
          f"{reports / elapsed:.0f}/s")
    print(f"report JSON size      {body_bytes // reports} bytes each")
    print(f"rows / bodies kept    {rows} / {kept}")
    print(f"database growth       {used} bytes")
    per_report = used / reports
    per_day = per_report * 1440
    print(f"per report            {per_report:.0f} bytes")
    print(f"per instance per day  {per_day / 1024:.0f} KiB at one report a minute with no change")
    print(f"30 days x 1000 inst.  {per_day * 30 * 1000 / 2**30:.1f} GiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", nargs="?", default=str(ROOT / "target/release/vpce-collector"))
    ap.add_argument("--instances", type=int, default=5)
    ap.add_argument("--each", type=int, default=1440)
    ap.add_argument("--report", choices=["small", "large"], default="small")
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        if args.postgres:
            with pg_scratch.Server() as pg:
                args.store_name = "postgres"
                url = pg.new_database("storage")

                def size():
                    return int(pg.psql("storage", "SELECT pg_database_size(current_database())"))

                def before():
                    args.pg_before = size()
                    return args.pg_before

                def after():
                    pg.psql("storage", "VACUUM")
                    grown = size()
                    # The dropped bodies' space is reused by the next ones (autovacuum); what a
                    # day really adds is closer to the compacted size.
                    pg.psql("storage", "VACUUM FULL")
                    print(f"after VACUUM FULL     {size() - args.pg_before} bytes of growth "
                          f"({(size() - args.pg_before) / (args.instances * args.each):.0f} per report)")
                    return (grown, int(pg.psql("storage", "SELECT COUNT(*) FROM reports")),
                            int(pg.psql("storage", "SELECT COUNT(*) FROM bodies")))
                run(args, url, d, before, after)
        else:
            args.store_name = "sqlite"
            db = d / "reports.db"

            def after():
                con = sqlite3.connect(db)
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = con.execute("PRAGMA page_count").fetchone()[0]
                page_size = con.execute("PRAGMA page_size").fetchone()[0]
                free = con.execute("PRAGMA freelist_count").fetchone()[0]
                kept = con.execute("SELECT COUNT(*) FROM bodies").fetchone()[0]
                rows = con.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
                con.close()
                return (pages - free) * page_size, rows, kept
            run(args, str(db), d, lambda: 0, after)


if __name__ == "__main__":
    main()
