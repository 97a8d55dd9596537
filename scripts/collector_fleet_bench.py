#!/usr/bin/env python3
"""How long the fleet page and API take on a large fleet (docs/collector.md, BENCHMARKS.md):
10,000 instances with 30 days of history. The collector creates its schema, then this script
fills the database directly with SQL (minutes instead of hours of POSTs): one report an hour
per instance, the store's body rule (the first report and the latest keep their ~30 KB JSON
from scripts/collector_reports.py), one instance in ten with problems and two findings per
report. Then it starts the collector again and times `/`, `/api/fleet` and `/metrics`.

    python3 scripts/collector_fleet_bench.py target/release/vpce-collector \
        [--instances 10000] [--days 30] [--every-hours 1] [--runs 10] [--postgres]
"""
import argparse
import http.client
import json
import pathlib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import collector_reports  # noqa: E402
import pg_scratch  # noqa: E402

TOKEN = "fleet-bench-token-0123456789"
HOUR_MS = 3_600_000


def start(binary, db, d):
    (d / "tokens").write_text(f"bench {TOKEN}\n")
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--db", db,
                             "--tokens", str(d / "tokens")], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("listening on "):
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            host, port = line.split()[-1].rsplit(":", 1)
            return proc, (host, int(port))
    proc.kill()
    raise SystemExit("the collector did not start")


def columns(a):
    """SQL expressions of one report row for instance n, report m (the same in both dialects
    but for the string functions, passed in `a`)."""
    return f"""
        {a['id']},
        {a['now']} - ({a['R']} - 1 - m) * {a['iv']},
        {a['now']} - ({a['R']} - 1 - m) * {a['iv']} - 1500,
        {a['key']},
        {a['key']},
        {a['host']},
        {a['account']},
        'eu-west-1',
        {a['vpc']},
        {a['subnet']},
        'eu-west-1a',
        CASE WHEN n % 10 = 0 THEN 'problems' ELSE 'healthy' END,
        CASE WHEN n % 10 = 0 THEN 1 ELSE 0 END,
        CASE WHEN n % 10 = 0 THEN '3 of 12 targets are not reached through the gateway endpoint'
             ELSE 'S3 and DynamoDB are reached through the gateway endpoint' END,
        CASE WHEN n % 10 = 0 THEN 'NACL_OUTBOUND_BLOCKS s3:app-data-05' || char10 || 'NACL_OUTBOUND_BLOCKS s3:app-data-06'
             ELSE '' END,
        'dynamodb:orders-00=gateway-endpoint' || char10 || 's3:app-data-00=gateway-endpoint' || char10 || 's3:app-data-01=gateway-endpoint',
        'bench',
        '0.1.0',
        {a['changed']}"""


def fill_sqlite(path, n_inst, reps, now, body):
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    a = {
        "id": "printf('r-%06d-%05d', n, m)", "now": now, "R": reps, "iv": HOUR_MS,
        "key": "printf('i-%017x', n)", "host": "printf('ip-10-%d-%d', n / 250, n % 250)",
        "account": "printf('1111222233%02d', n % 5)", "vpc": "printf('vpc-%04x', n / 500)",
        "subnet": "printf('subnet-%05x', n / 25)", "changed": "m = 0",
    }
    gen = f"""WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < {n_inst - 1}),
                           k(m) AS (SELECT 0 UNION ALL SELECT m + 1 FROM k WHERE m < {reps - 1})"""
    with con:
        con.execute(f"""{gen} INSERT INTO reports (report_id, received_at, started_at,
            instance_key, instance_id, hostname, account, region, vpc_id, subnet_id, az, status,
            exit_code, summary, root_causes, path_kinds, token_label, tool_version, changed)
            SELECT {columns(a).replace('char10', 'char(10)')} FROM i, k""")
        con.execute(f"""{gen} INSERT INTO findings (report_id, code, target, severity)
            SELECT printf('r-%06d-%05d', n, m), 'NACL_OUTBOUND_BLOCKS', t.target, 'error'
            FROM i, k, (SELECT 's3:app-data-05' AS target UNION ALL SELECT 's3:app-data-06') t
            WHERE n % 10 = 0""")
        con.execute(f"""{gen} INSERT INTO bodies (report_id, json)
            SELECT printf('r-%06d-%05d', n, m), ? FROM i, k WHERE m = 0 OR m = {reps - 1}""",
                    (body,))
        con.execute(f"""{gen} INSERT INTO instances (instance_key, latest_report, latest_started,
            first_received, last_received, interval_ms, reports)
            SELECT printf('i-%017x', n), printf('r-%06d-%05d', n, {reps - 1}),
                {now} - 1500, {now} - ({reps} - 1) * {HOUR_MS}, {now}, {HOUR_MS}, {reps}
            FROM i""")
    con.close()


def fill_postgres(pg, db, n_inst, reps, now, body):
    a = {
        "id": "format('r-%s-%s', lpad(n::text, 6, '0'), lpad(m::text, 5, '0'))", "now": now,
        "R": reps, "iv": HOUR_MS, "key": "format('i-%s', lpad(to_hex(n), 17, '0'))",
        "host": "format('ip-10-%s-%s', n / 250, n % 250)",
        "account": "format('1111222233%s', lpad((n % 5)::text, 2, '0'))",
        "vpc": "format('vpc-%s', lpad(to_hex(n / 500), 4, '0'))",
        "subnet": "format('subnet-%s', lpad(to_hex(n / 25), 5, '0'))", "changed": "m = 0",
    }
    gen = f"generate_series(0, {n_inst - 1}) AS n, generate_series(0, {reps - 1}) AS m"
    rid = a["id"]
    pg.psql(db, f"""INSERT INTO reports (report_id, received_at, started_at,
        instance_key, instance_id, hostname, account, region, vpc_id, subnet_id, az, status,
        exit_code, summary, root_causes, path_kinds, token_label, tool_version, changed)
        SELECT {columns(a).replace('char10', 'chr(10)')} FROM {gen}""")
    pg.psql(db, f"""INSERT INTO findings (report_id, ord, code, target, severity)
        SELECT {rid}, t.ord, 'NACL_OUTBOUND_BLOCKS', t.target, 'error'
        FROM {gen}, (VALUES (0, 's3:app-data-05'), (1, 's3:app-data-06')) AS t(ord, target)
        WHERE n % 10 = 0""")
    pg.psql(db, f"""INSERT INTO bodies (report_id, json) SELECT {rid}, $body${body}$body$
        FROM {gen} WHERE m = 0 OR m = {reps - 1}""")
    pg.psql(db, f"""INSERT INTO instances (instance_key, latest_report, latest_started,
        first_received, last_received, interval_ms, reports)
        SELECT {a['key']}, format('r-%s-%s', lpad(n::text, 6, '0'), lpad(({reps - 1})::text, 5, '0')),
            {now} - 1500, {now} - ({reps} - 1) * {HOUR_MS}, {now}, {HOUR_MS}, {reps}
        FROM generate_series(0, {n_inst - 1}) AS n""")
    pg.psql(db, "VACUUM ANALYZE")


def timed_get(addr, path, runs):
    times, size = [], 0
    for _ in range(runs + 1):  # the first is a warm-up
        conn = http.client.HTTPConnection(*addr, timeout=120)
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        times.append(time.perf_counter() - t0)
        conn.close()
        if resp.status != 200:
            raise SystemExit(f"GET {path}: {resp.status} {body[:200]!r}")
        size = len(body)
    times = sorted(times[1:])
    return times, size


def measure(args, db, d, fill):
    proc, _ = start(args.binary, db, d)  # creates the schema
    proc.kill()
    proc.wait()
    reps = args.days * 24 // args.every_hours
    now = int(time.time() * 1000)
    body = json.dumps(collector_reports.large_report())
    t0 = time.monotonic()
    fill(args.instances, reps, now, body)
    print(f"store {args.store_name}: {args.instances} instances x {reps} reports "
          f"({args.instances * reps} reports, {2 * args.instances} bodies of {len(body)} bytes) "
          f"filled in {time.monotonic() - t0:.0f} s")
    proc, addr = start(args.binary, db, d)
    print("machine load average (1/5/15 min): %.1f %.1f %.1f" % __import__("os").getloadavg())
    try:
        for path in ["/", "/api/fleet", "/metrics", "/?subnet=subnet-00001",
                     "/?code=NACL_OUTBOUND_BLOCKS", "/findings/NACL_OUTBOUND_BLOCKS"]:
            times, size = timed_get(addr, path, args.runs)
            print(f"GET {path:<34} median {statistics.median(times) * 1000:7.1f} ms, "
                  f"max {times[-1] * 1000:7.1f} ms ({args.runs} runs), {size} bytes")
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", nargs="?", default=str(ROOT / "target/release/vpce-collector"))
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--every-hours", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        if args.postgres:
            with pg_scratch.Server() as pg:
                args.store_name = "postgres"
                url = pg.new_database("fleet")
                measure(args, url, d,
                        lambda n, r, now, body: fill_postgres(pg, "fleet", n, r, now, body))
        else:
            args.store_name = "sqlite"
            path = d / "reports.db"
            measure(args, str(path), d,
                    lambda n, r, now, body: fill_sqlite(str(path), n, r, now, body))


if __name__ == "__main__":
    main()
