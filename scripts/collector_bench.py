#!/usr/bin/env python3
"""Ingest throughput and acknowledgement latency of vpce-collector with concurrent clients
(BENCHMARKS.md, "Collector ingest"). Starts the given binary on a loopback port with a scratch
database, prepares gzip'd reports (the healthy fixture, 3.7 KB, one instance per client), then
each client thread POSTs its share over one keep-alive connection, as agents do. Bounded: a fixed
number of reports, loopback only.

    python3 scripts/collector_bench.py target/release/vpce-collector [clients] [reports_per_client]
"""
import copy
import gzip
import http.client
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "crates/collector/tests/fixtures/healthy.json"
TOKEN = "bench-token-0123456789abcdef"


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/release/vpce-collector")
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    each = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    base = json.loads(FIXTURE.read_text())
    bodies = []
    for c in range(clients):
        mine = []
        for n in range(each):
            r = copy.deepcopy(base)
            r["report_id"] = str(uuid.uuid4())
            r["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_795_000_000 + 60 * n))
            r["instance"]["instance_id"] = f"i-{c:017x}"
            mine.append((r["report_id"], gzip.compress(json.dumps(r).encode())))
        bodies.append(mine)
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        (d / "tokens").write_text(f"bench {TOKEN}\n")
        proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--db", str(d / "reports.db"),
             "--tokens", str(d / "tokens")],
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
            host, port = addr.rsplit(":", 1)
            latencies = []
            failures = []
            lock = threading.Lock()

            def client(mine):
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                local = []
                for report_id, body in mine:
                    t = time.perf_counter()
                    conn.request("POST", "/v1/reports", body=body, headers={
                        "Content-Type": "application/json", "Content-Encoding": "gzip",
                        "Authorization": f"Bearer {TOKEN}", "X-Vpce-Probe-Report-Id": report_id,
                    })
                    resp = conn.getresponse()
                    resp.read()
                    local.append(time.perf_counter() - t)
                    if resp.status != 201:
                        with lock:
                            failures.append(resp.status)
                conn.close()
                with lock:
                    latencies.extend(local)

            threads = [threading.Thread(target=client, args=(b,)) for b in bodies]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
        finally:
            proc.kill()
            proc.wait()
    latencies.sort()
    n = len(latencies)
    p = lambda q: latencies[min(n - 1, int(q * n))] * 1000
    print(f"clients {clients}, reports {n}, failures {len(failures)}")
    print(f"throughput  {n / wall:.0f} reports/s")
    print(f"ack latency p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms, max {latencies[-1] * 1000:.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
