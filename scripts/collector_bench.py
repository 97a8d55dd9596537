#!/usr/bin/env python3
"""Ingest throughput and acknowledgement latency of vpce-collector with many concurrent agents
(BENCHMARKS.md, "Collector ingest"; docs/collector.md). Starts the given binary on a loopback
port with a scratch store (a SQLite file, or with --postgres a scratch PostgreSQL server with
durable defaults, scripts/pg_scratch.py), prepares gzip'd reports, then client processes, each
with several threads, POST them, every thread over one keep-alive connection as an agent's sink
does. Each thread is one agent (one instance) sending successive reports of the same verdict.
Every answer must be 201, sent only after the commit. Bounded: a fixed number of reports,
loopback only.

    python3 scripts/collector_bench.py target/release/vpce-collector \
        [--clients 64] [--each 50] [--procs 2] [--report large|small] [--postgres] [--replicas 1]
        [--load-client target/release/examples/ingest_load]

--report large (the default) sends scripts/collector_reports.py's reports (12 targets, 36
checks, ~30 KB of JSON); small sends the healthy fixture (3.7 KB). --replicas N (PostgreSQL
only) starts N collectors on the one database and spreads the agents over them.
"""
import argparse
import gzip
import http.client
import json
import multiprocessing
import os
import pathlib
import statistics
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

TOKEN = "bench-token-0123456789abcdef"


def prepare(kind, proc_n, threads, each):
    """gzip'd bodies per thread: (report_id, body)."""
    if kind == "large":
        base = collector_reports.large_report(problems=(proc_n % 4 == 3))
    else:
        base = json.loads(collector_reports.FIXTURE.read_text())
    out = []
    for t in range(threads):
        instance = f"i-{proc_n:08x}{t:09x}"
        mine = []
        for n in range(each):
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_795_000_000 + 60 * n))
            r = collector_reports.stamped(base, str(uuid.uuid4()), instance, started)
            mine.append((r["report_id"], gzip.compress(json.dumps(r).encode(), 6)))
        out.append(mine)
    return out


def run_clients(proc_n, threads, each, kind, addrs, start_evt, ready_q, result_q):
    """One client process: prepare, wait for the start signal, post, send back latencies."""
    bodies = prepare(kind, proc_n, threads, each)
    ready_q.put(sum(len(b) for mine in bodies for _, b in mine))
    start_evt.wait()
    latencies, failures = [], []
    lock = threading.Lock()

    def client(t, mine):
        host, port = addrs[(proc_n * threads + t) % len(addrs)]
        conn = http.client.HTTPConnection(host, port, timeout=60)
        local, bad = [], []
        for report_id, body in mine:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/reports", body=body, headers={
                "Content-Type": "application/json", "Content-Encoding": "gzip",
                "Authorization": f"Bearer {TOKEN}", "X-Vpce-Probe-Report-Id": report_id,
            })
            resp = conn.getresponse()
            resp.read()
            local.append(time.perf_counter() - t0)
            if resp.status != 201:
                bad.append(resp.status)
        conn.close()
        with lock:
            latencies.extend(local)
            failures.extend(bad)

    ts = [threading.Thread(target=client, args=(t, b)) for t, b in enumerate(bodies)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    result_q.put((latencies, failures))


def cpu_seconds(pid):
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer_cpu_seconds(pid):
    """CPU time of the SQLite store's writer thread (0 when there is none)."""
    total = 0.0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().strip() == "sqlite-writer":
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def start_collector(binary, db, d, n):
    (d / "tokens").write_text(f"bench {TOKEN}\n")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--db", db, "--tokens", str(d / "tokens")],
        stderr=subprocess.PIPE, text=True,
    )
    for line in proc.stderr:
        if line.startswith("listening on "):
            host, port = line.split()[-1].rsplit(":", 1)
            # Keep draining its log so that it never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, (host, int(port))
    proc.kill()
    raise SystemExit(f"collector {n} did not start")


def bench(args, db, d):
    procs = []
    try:
        addrs = []
        for n in range(args.replicas):
            p, addr = start_collector(args.binary, db, d, n)
            procs.append(p)
            addrs.append(addr)
        per_proc = max(1, args.clients // args.procs)
        if args.load_client:
            results, wall, wire, cpu = rust_clients(args, addrs, d, procs)
            return report(args, results, wall, wire, cpu, per_proc)
        ctx = multiprocessing.get_context("fork")
        start_evt = ctx.Event()
        ready_q, result_q = ctx.Queue(), ctx.Queue()
        workers = [ctx.Process(target=run_clients, args=(
            n, per_proc, args.each, args.report, addrs, start_evt, ready_q, result_q))
            for n in range(args.procs)]
        for w in workers:
            w.start()
        wire = sum(ready_q.get(timeout=600) for _ in range(args.procs))
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.perf_counter()
        start_evt.set()
        results = [result_q.get(timeout=3600) for _ in range(args.procs)]
        wall = time.perf_counter() - t0
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        for w in workers:
            w.join()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    report(args, results, wall, wire, cpu, per_proc)


def rust_clients(args, addrs, d, procs):
    """The same agents, posted by crates/collector/examples/ingest_load.rs."""
    per_proc = max(1, args.clients // args.procs)
    load = d / "load"
    load.mkdir()
    wire = 0
    for p in range(args.procs):
        for t, mine in enumerate(prepare(args.report, p, per_proc, args.each)):
            with open(load / f"agent-{p:03d}-{t:05d}", "wb") as f:
                for report_id, body in mine:
                    rid = report_id.encode()
                    f.write(len(rid).to_bytes(4, "little") + rid)
                    f.write(len(body).to_bytes(4, "little") + body)
                    wire += len(body)
    cpu0 = sum(cpu_seconds(p.pid) for p in procs)
    writer0 = sum(writer_cpu_seconds(p.pid) for p in procs)
    out = subprocess.run([args.load_client, ",".join(f"{h}:{p}" for h, p in addrs), TOKEN,
                          str(load)], check=True, capture_output=True, text=True).stdout
    cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
    args.writer_cpu = sum(writer_cpu_seconds(p.pid) for p in procs) - writer0
    latencies, failures, wall = [], [], None
    for line in out.splitlines():
        kind, *rest = line.split()
        if kind == "wall_s":
            wall = float(rest[0])
        elif kind == "ok":
            latencies.append(int(rest[0]) / 1e6)
        else:
            failures.append(int(rest[0]))
            latencies.append(int(rest[1]) / 1e6)
    return [(latencies, failures)], wall, wire, cpu


def report(args, results, wall, wire, cpu, per_proc):
    print("machine load average (1/5/15 min) at the end: %.1f %.1f %.1f on %d cores"
          % (os.getloadavg() + (os.cpu_count(),)))
    if args.store_name == "postgres":
        print("(PostgreSQL's own CPU is not counted in the collector's)")
    latencies = sorted(x for lat, _ in results for x in lat)
    failures = [f for _, fs in results for f in fs]
    n = len(latencies)
    pct = lambda q: latencies[min(n - 1, int(q * n))] * 1000
    sample = collector_reports.large_report() if args.report == "large" else \
        json.loads(collector_reports.FIXTURE.read_text())
    print(f"store {args.store_name}, replicas {args.replicas}, report {args.report} "
          f"({len(json.dumps(sample))} bytes of JSON, {wire / max(n, 1):.0f} bytes gzip'd on average)")
    client = "ingest_load (Rust)" if args.load_client else f"{args.procs} Python processes"
    print(f"agents {per_proc * args.procs} ({client}), reports {n}, "
          f"failures {len(failures)} {sorted(set(failures))}")
    print(f"throughput  {n / wall:.0f} reports/s; the collector's CPU {cpu * 1000 / max(n, 1):.2f} ms "
          f"per report ({cpu / wall * 100:.0f}% of one core; the clients share the same cores)")
    if getattr(args, "writer_cpu", 0):
        print(f"of which the SQLite writer thread {args.writer_cpu * 1000 / max(n, 1):.2f} ms per "
              f"report ({args.writer_cpu / wall * 100:.0f}% of one core)")
    print(f"ack latency p50 {pct(0.50):.1f} ms, p99 {pct(0.99):.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", nargs="?", default=str(ROOT / "target/release/vpce-collector"))
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--each", type=int, default=50)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--report", choices=["large", "small"], default="large")
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--load-client", help="the ingest_load example's binary (cargo build --release "
                    "-p vpce-collector --example ingest_load): posts with far less CPU than Python")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        if args.postgres:
            with pg_scratch.Server() as pg:
                args.store_name = "postgres"
                bench(args, pg.new_database("bench"), d)
        else:
            if args.replicas != 1:
                raise SystemExit("--replicas needs --postgres")
            args.store_name = "sqlite"
            bench(args, str(d / "reports.db"), d)


if __name__ == "__main__":
    main()
