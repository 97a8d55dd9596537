#!/usr/bin/env python3
"""Benchmarks vpce-probe against what users would use instead, in the VPC lab, and writes
BENCHMARKS.md (issue 7).

    sudo bash scripts/bench.sh [--binary PATH] [--no-build] [--quick] [--out FILE]

One command, as root: installs what is missing (hyperfine, dig, curl, /usr/bin/time,
prometheus-blackbox-exporter, the AWS CLI), builds the distribution binary
(`cargo build --profile dist --locked` into $CARGO_TARGET_DIR, default target/bench in the repository),
holds the lab lock for the whole run, brings the lab up, measures, tears it down (also on
failure, Ctrl-C or SIGTERM) and writes the report.

Measurements (all in the lab, in the same run):
  1. healthy one-shot: `vpce-probe probe` vs the manual checklist (dig, curl -w, aws CLI);
     1b. its critical path (IMDS -> credentials -> signed calls) against the emulators' latencies
  2. broken path: 1, 2 and 4 service addresses black-holed
  3. an HTTPS probe of the S3 name every second for a minute: the agent vs blackbox_exporter,
     with a known latency injected on the path (benches/nfq_delay.py: the kernel has no netem)
  4. agent footprint, binary size, cold start
  5. scaling: 1, 10, 50 buckets and tables in one probe, served by the lab's emulator (moto) and
     by the fronts' own canned answers (the probe's own scaling), each against the floor of the
     same calls made by a minimal client
  6. every lab scenario once (lab/run_scenarios.py --timings): each probe's wall time over the
     `--timeout` it was given, against the budget of 1.2x

Network traffic goes only to loopback and to the lab's namespaces. Python 3.11, standard
library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_SH = REPO / "lab" / "lab.sh"
LAB_DIR = Path(os.environ.get("VPL_DIR", "/run/vpce-lab"))
NS_INST, NS_RTR = "vpl-inst", "vpl-rtr"
REGION = "eu-west-1"
S3_NAME = f"s3.{REGION}.amazonaws.com"
DDB_NAME = f"dynamodb.{REGION}.amazonaws.com"
S3_IP = "198.51.100.10"
LAB_CA_NAME = "vpce-probe lab CA"
CANARY = "203.0.113.10:443"
AWS_VENV = Path("/opt/vpce-bench/awscli-venv")
DEFAULT_TARGET_DIR = REPO / "target" / "bench"
INJECTED_MS = 20.0
NFQ_NUM = 7
APT_TOOLS = {  # command -> Debian package
    "hyperfine": "hyperfine",
    "dig": "bind9-dnsutils",
    "curl": "curl",
    "/usr/bin/time": "time",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
}

T0 = time.monotonic()


def shown_path(path) -> str:
    """A path as the report prints it: relative to the repository, never a machine's own layout."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return p.name


def log(msg: str) -> None:
    print(f"bench [{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, env=None, timeout=None, capture=True, **kw) -> subprocess.CompletedProcess:
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    r = subprocess.run(cmd, env=env, timeout=timeout, text=True,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {r.returncode}: {(r.stderr or '')[-2000:]}")
    return r


# ------------------------------------------------------------------ install and build


def install(args) -> str:
    """Installs what is missing; returns the AWS CLI to use (never pyenv's)."""
    missing = sorted({pkg for tool, pkg in APT_TOOLS.items()
                      if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))})
    aws = "/usr/bin/aws"
    updated = False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

    def apt_update():
        nonlocal updated
        if not updated:
            run(["apt-get", "update", "-qq"], env=env)
            updated = True

    if not Path(aws).exists():
        apt_update()
        pol = run(["apt-cache", "policy", "awscli"], check=False).stdout
        if re.search(r"Candidate: (?!\(none\))\S+", pol):
            missing.append("awscli")
        elif not (AWS_VENV / "bin" / "aws").exists():
            log(f"no Debian awscli: pip install awscli into {AWS_VENV}")
            run([sys.executable, "-m", "venv", str(AWS_VENV)])
            run([str(AWS_VENV / "bin" / "pip"), "install", "-q", "awscli"])
    if missing:
        log(f"apt-get install {' '.join(missing)}")
        apt_update()
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
    if not Path(aws).exists():
        aws = str(AWS_VENV / "bin" / "aws")
    # The lab's own dependencies (moto, tinyproxy, dnsmasq, ...).
    if not Path("/opt/vpce-probe-test/venv/bin/moto_server").exists() or not shutil.which("tinyproxy"):
        log("lab dependencies: scripts/install-deps.sh")
        run(["bash", str(REPO / "scripts" / "install-deps.sh")], capture=False)
    return aws


def build(args) -> tuple[Path, Path, float | None]:
    """The dist binary and the lab's servers; returns (probe, lab_servers, build seconds)."""
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", DEFAULT_TARGET_DIR))
    binary = Path(args.binary) if args.binary else target_dir / "dist" / "vpce-probe"
    seconds = None
    if not args.no_build and not args.binary:
        env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
        for attempt in range(1, args.build_attempts + 1):
            log(f"cargo build --profile dist --locked (CARGO_TARGET_DIR={target_dir}), attempt {attempt}")
            started = time.monotonic()
            r = run(["nice", "-n", "10", "cargo", "build", "--profile", "dist", "--locked"],
                    check=False, env=env, cwd=REPO)
            if r.returncode == 0:
                seconds = time.monotonic() - started
                break
            errors = "\n".join(l for l in r.stderr.splitlines() if l.startswith(("error", " -->")))
            log(f"build failed:\n{errors[-1500:]}")
            # The tree is edited concurrently: a broken agent/main/cli is someone's work in
            # progress; wait and retry. Anything else is a real failure.
            if attempt == args.build_attempts or not re.search(r"src/(agent/|main\.rs|cli\.rs)", errors):
                raise SystemExit("bench: the dist build failed")
            time.sleep(args.build_retry_wait)
    if not binary.exists():
        raise SystemExit(f"bench: {binary} missing (build it or pass --binary)")
    # The lab's servers (the stand-ins for AWS) share the machine's cores with the probe: built
    # like the probe (dist), their CPU takes less from what is measured (a debug build's TLS
    # fronts and DNS took ~0.3 s of CPU per 50-target run on 2 cores, the dist build ~0.13 s).
    servers = Path(os.environ.get("VPL_SERVERS", target_dir / "dist" / "examples" / "lab_servers"))
    if "VPL_SERVERS" not in os.environ and not (args.no_build and servers.exists()):
        env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
        log("cargo build --profile dist --example lab_servers (the lab's servers)")
        run(["nice", "-n", "10", "cargo", "build", "--profile", "dist", "--locked", "--example", "lab_servers"],
            env=env, cwd=REPO)
    if not servers.exists():
        raise SystemExit(f"bench: {servers} missing (build it or set VPL_SERVERS)")
    # A private link: a rebuild of the shared one during the run cannot swap it under the lab.
    snap = target_dir / "bench-lab_servers"
    snap.unlink(missing_ok=True)
    try:
        os.link(servers, snap)
    except OSError:
        shutil.copy2(servers, snap)
    return binary, snap, seconds


# ------------------------------------------------------------------ lab


class Lab:
    def __init__(self, binary: Path, servers: Path, work: Path):
        self.env = dict(os.environ, VPL_LOCK_HELD="1", VPL_PROBE=str(binary),
                        VPL_SERVERS=str(servers))
        self.binary = binary
        self.work = work
        self.lock_fd: int | None = None
        self.faults: list[str] = []

    def lock(self) -> None:
        # Same lock as lab.sh and run_scenarios.py; the fd is not inherited by the lab's daemons.
        lock_file = os.environ.get("VPL_LOCK_FILE", "/run/vpce-lab.lock")
        self.lock_fd = os.open(lock_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another lab run holds the lab; waiting")
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def sh(self, *args: str, check=True) -> subprocess.CompletedProcess:
        return run(["bash", str(LAB_SH), *args], env=self.env, check=check)

    def up(self) -> None:
        self.sh("up")

    def down(self) -> None:
        self.sh("down", check=False)

    def set_faults(self, *faults: str) -> None:
        if list(faults) == self.faults:
            return
        self.sh("reset")
        if faults:
            self.sh("apply", *faults)
        self.faults = list(faults)

    def inst_env(self, home: Path, extra: dict[str, str] | None = None) -> list[str]:
        """`ip netns exec` + the clean environment of `lab.sh exec`."""
        envs = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
            "AWS_CONFIG_FILE": str(home / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
            "SSL_CERT_FILE": str(LAB_DIR / "trust.pem"),
        }
        envs.update(extra or {})
        return ["ip", "netns", "exec", NS_INST, "env", "-i", *[f"{k}={v}" for k, v in envs.items()]]

    def exec(self, cmd: list[str], extra: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
        home = Path(tempfile.mkdtemp(dir=self.work, prefix="home."))
        try:
            return run(self.inst_env(home, extra) + cmd, **kw)
        finally:
            shutil.rmtree(home, ignore_errors=True)


def probe_args(timeout: float = 1, buckets=("lab-bucket",), tables=("lab-table",)) -> list[str]:
    """`lab.sh probe`'s standard arguments (cmd_probe), with a chosen --timeout and targets."""
    a = ["probe"]
    for b in buckets:
        a += ["--bucket", b]
    for t in tables:
        a += ["--table", t]
    return a + ["--key", "probe/object.txt", "--item-key", '{"pk":{"S":"id-1"}}',
                "--ip-ranges", str(LAB_DIR / "ip-ranges.json"), "--internet-canary", CANARY,
                "--expect-issuer", LAB_CA_NAME, "--timeout", f"{timeout:g}", "--deadline", "15",
                "--no-progress"]


CHECKLIST = r"""#!/bin/bash
# The manual checklist as a user would script it: every step in turn, each with a timeout of
# T seconds, going on when one fails (the point is to see which one breaks).
T=${T:-1}
R=eu-west-1
AWS="${AWS_BIN:-aws} --region $R --cli-connect-timeout $T --cli-read-timeout $T"
W=${TIMEIT:+/usr/bin/time -a -o $TIMEIT -f %M:%e:%U:%S:%C}
$W dig +time=$T +tries=1 s3.$R.amazonaws.com
$W dig +time=$T +tries=1 dynamodb.$R.amazonaws.com
$W curl -sS -o /dev/null --connect-timeout $T -m $((3 * T)) -w 's3 dns %{time_namelookup} connect %{time_connect} tls %{time_appconnect} total %{time_total}\n' https://s3.$R.amazonaws.com/
$W curl -sS -o /dev/null --connect-timeout $T -m $((3 * T)) -w 'ddb dns %{time_namelookup} connect %{time_connect} tls %{time_appconnect} total %{time_total}\n' https://dynamodb.$R.amazonaws.com/
$W $AWS sts get-caller-identity
$W $AWS s3api head-bucket --bucket lab-bucket
$W $AWS s3api get-bucket-location --bucket lab-bucket
$W $AWS dynamodb describe-table --table-name lab-table --query Table.TableStatus
exit 0
"""


# ------------------------------------------------------------------ measuring helpers


def hyperfine(lab: Lab, commands: dict[str, str], runs: int, extra_env: dict[str, str],
              warmup: int = 1, prepare: str | None = None) -> dict[str, dict]:
    """Runs hyperfine inside the instance namespace; returns name -> {median, mean, min, max, runs}."""
    out = lab.work / f"hf-{time.monotonic_ns()}.json"
    cmd = ["hyperfine", "-N", "-i", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
           "--export-json", str(out)]
    if prepare:
        cmd += ["--prepare", prepare]
    for name, c in commands.items():
        cmd += ["-n", name, c]
    lab.exec(cmd, extra_env, timeout=3600)
    data = json.loads(out.read_text())
    res = {}
    for r in data["results"]:
        times = r["times"]
        res[r["command"]] = {"median": statistics.median(times), "mean": r["mean"], "min": r["min"],
                             "max": r["max"], "runs": len(times),
                             "exit_codes": sorted(set(r.get("exit_codes") or []))}
    return res


def rss_cpu(lab: Lab, cmd: list[str], extra_env: dict[str, str], repeat: int = 3) -> tuple[int, float]:
    """Medians over runs of /usr/bin/time's maximum resident set size (KiB) and CPU seconds
    (user + system)."""
    rss, cpu = [], []
    for _ in range(repeat):
        f = lab.work / f"rss-{time.monotonic_ns()}.txt"
        lab.exec(["/usr/bin/time", "-o", str(f), "-f", "%M %U %S", *cmd], extra_env, check=False)
        m, u, s_ = f.read_text().split()[-3:]
        rss.append(int(m))
        cpu.append(float(u) + float(s_))
    return int(statistics.median(rss)), statistics.median(cpu)


def listen_overflows(ns: str = "vpl-aws") -> int:
    """TcpExt ListenOverflows of a namespace: connections the lab's servers could not accept."""
    lines = run(["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"]).stdout.splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            d = dict(zip(head.split()[1:], vals.split()[1:]))
            return int(d.get("ListenOverflows", 0))
    return 0


def checklist_rss(lab: Lab, script: Path, extra_env: dict[str, str]) -> tuple[int, str, list[tuple[int, float, str, float]]]:
    """Largest single process of the checklist (KiB), which step it was, and every step."""
    f = lab.work / f"ck-rss-{time.monotonic_ns()}.txt"
    lab.exec(["bash", str(script)], dict(extra_env, TIMEIT=str(f)), check=False, timeout=600)
    steps = []
    for line in f.read_text().splitlines():
        m = re.match(r"(\d+):([\d.]+):([\d.]+):([\d.]+):(.*)", line)
        if m:
            steps.append((int(m.group(1)), float(m.group(2)), m.group(5),
                          float(m.group(3)) + float(m.group(4))))
    big = max(steps)
    return big[0], big[2], steps


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def scrape(url: str, timeout: float = 5) -> str:
    r = run(["ip", "netns", "exec", NS_INST, "curl", "-sS", "-m", str(timeout), url], check=False)
    return r.stdout if r.returncode == 0 else ""


def metric_values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            out.append((labels, float(m.group(4))))
        except ValueError:
            pass
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Delay:
    """A known one-way delay toward S3 (router -> aws namespace) with benches/nfq_delay.py."""

    RULE = ["-t", "mangle", "FORWARD", "-o", "gwe", "-p", "tcp", "-d", S3_IP, "--dport", "443",
            "-j", "NFQUEUE", "--queue-num", str(NFQ_NUM), "--queue-bypass"]

    def __init__(self, work: Path, ms: float):
        self.work, self.ms, self.proc = work, ms, None

    def __enter__(self):
        ready = self.work / "nfq.ready"
        ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS_RTR, sys.executable, str(REPO / "benches" / "nfq_delay.py"),
             str(NFQ_NUM), str(self.ms), str(ready)],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "nfq.log", "a"))
        for _ in range(100):
            if ready.exists():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("nfq_delay.py did not start (see nfq.log)")
        r = self.RULE
        run(["ip", "netns", "exec", NS_RTR, "iptables", "-w", r[0], r[1], "-A", *r[2:]])
        return self

    def __exit__(self, *exc):
        r = self.RULE
        run(["ip", "netns", "exec", NS_RTR, "iptables", "-w", r[0], r[1], "-D", *r[2:]], check=False)
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Daemon:
    """A daemon in the instance namespace, started directly (its pid is the Popen's)."""

    def __init__(self, lab: Lab, name: str, cmd: list[str], extra_env: dict[str, str] | None = None):
        self.home = Path(tempfile.mkdtemp(dir=lab.work, prefix=f"{name}."))
        self.log = lab.work / f"{name}.log"
        self.proc = subprocess.Popen(lab.inst_env(self.home, extra_env) + cmd,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


RUNNING: list[Daemon] = []


def watch(d: Daemon, seconds: float, tick=None) -> dict:
    """CPU (utime+stime delta), RSS samples and VmHWM of a daemon over `seconds`; calls tick(i)
    every second (on a fixed schedule)."""
    cpu0 = proc_cpu_s(d.pid)
    rss = []
    start = time.monotonic()
    i = 0
    while True:
        due = start + i
        now = time.monotonic()
        if now - start >= seconds:
            break
        if now < due:
            time.sleep(min(0.1, due - now))
            continue
        if not d.alive():
            raise RuntimeError(f"daemon exited early (see {d.log})")
        rss.append(proc_status_kb(d.pid, "VmRSS"))
        if tick:
            tick(i)
        i += 1
    return {"seconds": time.monotonic() - start, "cpu_s": proc_cpu_s(d.pid) - cpu0,
            "rss_kb_median": int(statistics.median(rss)), "rss_kb_last": rss[-1],
            "hwm_kb": proc_status_kb(d.pid, "VmHWM"), "rss_anon_kb": proc_status_kb(d.pid, "RssAnon"),
            "rss_file_kb": proc_status_kb(d.pid, "RssFile"), "threads": proc_status_kb(d.pid, "Threads")}


# ------------------------------------------------------------------ the measurements


def m_oneshot(lab: Lab, aws: str, script: Path, runs: int, ck_runs: int) -> dict:
    env = {"AWS_BIN": aws, "AWS_CA_BUNDLE": str(LAB_DIR / "trust.pem"),
           "CURL_CA_BUNDLE": str(LAB_DIR / "trust.pem")}
    out = {}
    for variant, faults in (("private", ()), ("nat", ("nat-gateway",))):
        lab.set_faults(*faults)
        ours_cmd = shlex.join([shown_path(lab.binary), *probe_args(1)])
        ck_cmd = f"bash {script}"
        log(f"one-shot ({variant}): vpce-probe x{runs}")
        # Two warm-up runs: moto's first STS and EC2 answers after `nat-gateway` take ~1 s.
        ours = hyperfine(lab, {"vpce-probe": ours_cmd}, runs, env, warmup=2)["vpce-probe"]
        log(f"one-shot ({variant}): checklist x{ck_runs}")
        ck = hyperfine(lab, {"checklist": ck_cmd}, ck_runs, dict(env, T="1"))["checklist"]
        rss, cpu = rss_cpu(lab, [str(lab.binary), *probe_args(1)], env)
        ck_rss, ck_big, steps = checklist_rss(lab, script, dict(env, T="1"))
        verdict = lab.exec([str(lab.binary), *probe_args(1), "--format", "json"], env, check=False)
        try:
            rep = json.loads(verdict.stdout)
            summary = {"exit": verdict.returncode, "duration_ms": rep.get("duration_ms"),
                       "verdict": rep.get("verdict", {}).get("summary") or rep.get("verdict", {}).get("headline")}
        except json.JSONDecodeError:
            summary = {"exit": verdict.returncode}
        out[variant] = {"faults": list(faults), "ours": ours, "checklist": ck, "ours_rss_kb": rss,
                        "ours_cpu_s": cpu, "checklist_cpu_s": sum(st[3] for st in steps),
                        "checklist_rss_kb": ck_rss, "checklist_rss_step": ck_big,
                        "checklist_steps": steps, "ours_cmd": ours_cmd, "report": summary}
    return out


# The healthy critical path's links, each measured alone inside the instance namespace with curl
# (one request per process, so each pays its own connection: IMDS's is a local veth, ~0.1 ms).
LINKS = r"""#!/bin/bash
# Prints "name seconds" per link and run. $1 = runs.
set -uf
IMDS=http://169.254.169.254
R=eu-west-1
CA=${SSL_CERT_FILE}
SIG=(--aws-sigv4 "aws:amz:$R:s3" -u AKIDBENCHEXAMPLE:secret)
DSIG=(--aws-sigv4 "aws:amz:$R:dynamodb" -u AKIDBENCHEXAMPLE:secret)
S3=lab-bucket.s3.$R.amazonaws.com
DDB=dynamodb.$R.amazonaws.com
TOKEN=$(mktemp)
for _ in $(seq "$1"); do
  t=$(curl -s -o "$TOKEN" -w '%{time_total}' -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $IMDS/latest/api/token)
  echo "imds_token $t"
  H="X-aws-ec2-metadata-token: $(cat "$TOKEN")"
  echo "imds_region $(curl -s -o /dev/null -w '%{time_total}' -H "$H" $IMDS/latest/meta-data/placement/region)"
  role=$(curl -s -H "$H" $IMDS/latest/meta-data/iam/security-credentials/)
  echo "imds_roles $(curl -s -o /dev/null -w '%{time_total}' -H "$H" $IMDS/latest/meta-data/iam/security-credentials/)"
  echo "imds_credentials $(curl -s -o /dev/null -w '%{time_total}' -H "$H" $IMDS/latest/meta-data/iam/security-credentials/$role)"
  # The data plane's branch: the name as the applications resolve it, TCP, TLS.
  echo "dataplane $(curl -s -o /dev/null --cacert $CA -w '%{time_appconnect}' -I https://$S3/)"
  for op in "HeadBucket -I https://$S3/" "GetBucketLocation https://$S3/?location" \
            "ListObjectsV2 https://$S3/?list-type=2&max-keys=1" \
            "GetObject -r 0-15 https://$S3/probe/object.txt"; do
    set -- $op
    name=$1; shift
    echo "call_$name $(curl -s -o /dev/null --cacert $CA "${SIG[@]}" -w '%{time_total}' "$@")"
  done
  for op in "DescribeTable {\"TableName\":\"lab-table\"}" \
            "GetItem {\"TableName\":\"lab-table\",\"Key\":{\"pk\":{\"S\":\"id-1\"}}}"; do
    set -- $op
    echo "call_$1 $(curl -s -o /dev/null --cacert $CA "${DSIG[@]}" -w '%{time_total}' \
      -H "X-Amz-Target: DynamoDB_20120810.$1" -H 'Content-Type: application/x-amz-json-1.0' \
      --data "$2" https://$DDB/)"
  done
done
rm -f "$TOKEN"
"""


def m_critical(lab: Lab, runs: int, oneshot: dict | None) -> dict:
    """The healthy critical path (IMDS -> credentials -> signed calls) against the sum of the
    lab emulators' latencies on it, each link measured alone."""
    script = lab.work / "links.sh"
    script.write_text(LINKS)
    lab.set_faults("nat-gateway")
    r = lab.exec(["bash", str(script), str(max(runs, 5))], check=False)
    links: dict[str, list[float]] = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                links.setdefault(parts[0], []).append(float(parts[1]))
            except ValueError:
                pass
    link = {k: statistics.median(v) for k, v in links.items() if v}
    calls = {k[len("call_"):]: v for k, v in link.items() if k.startswith("call_")}
    slowest = max(calls.items(), key=lambda kv: kv[1]) if calls else ("none", 0.0)
    imds = [link.get(k, 0.0) for k in ("imds_token", "imds_region", "imds_roles", "imds_credentials")]
    # Credentials: token, region (the chain starts with the region, reusing the token), role
    # list, credentials; the data plane's DNS -> TCP -> TLS runs beside the last two.
    to_calls = imds[0] + imds[1] + max(imds[2] + imds[3], link.get("dataplane", 0.0))
    limit = to_calls + slowest[1]
    version = hyperfine(lab, {"version": f"{lab.binary} --version"}, max(runs, 5), {},
                        warmup=1)["version"]["median"]
    out = {"links": link, "runs": max(runs, 5), "slowest_call": slowest[0], "limit": limit,
           "region_ready": imds[0] + imds[1], "process": version,
           "states": {}}
    for variant, faults in (("nat", ("nat-gateway",)), ("private", ())):
        lab.set_faults(*faults)
        reports = []
        for _ in range(max(runs, 5)):
            rep = lab.exec([str(lab.binary), *probe_args(1), "--format", "json"], check=False)
            try:
                reports.append(json.loads(rep.stdout))
            except json.JSONDecodeError:
                pass

        def check_ms(rep, *kinds):
            xs = [c.get("duration_ms") or 0 for c in rep.get("checks", []) if c.get("check") in kinds]
            return max(xs) if xs else None

        st = {
            "duration_ms": med([x.get("duration_ms") for x in reports]),
            "imds_ms": med([check_ms(x, "imds") for x in reports]),
            "credentials_ms": med([check_ms(x, "credentials") for x in reports]),
            "call_ms": med([check_ms(x, "s3", "dynamodb") for x in reports]),
            "canary_ms": med([check_ms(x, "canary") for x in reports]),
            "silence_timeout_ms": med([x.get("config", {}).get("silence_timeout_ms") for x in reports]),
            "runs": len(reports),
        }
        if oneshot and variant in oneshot:
            st["wall"] = oneshot[variant]["ours"]["median"]
        else:
            st["wall"] = hyperfine(lab, {"p": shlex.join([str(lab.binary), *probe_args(1)])},
                                   max(runs, 5), {}, warmup=2)["p"]["median"]
        out["states"][variant] = st
    lab.set_faults()
    return out


BROKEN = {
    1: ("blackhole-s3",),
    2: ("blackhole-s3", "blackhole-ddb"),
    4: ("dns-second-address", "blackhole-s3", "blackhole-ddb", "blackhole-second-addresses"),
}


def m_broken(lab: Lab, aws: str, script: Path, runs: int, ck_runs: int, timeout: float = 2) -> dict:
    env = {"AWS_BIN": aws, "AWS_CA_BUNDLE": str(LAB_DIR / "trust.pem"),
           "CURL_CA_BUNDLE": str(LAB_DIR / "trust.pem"), "T": f"{timeout:g}"}
    out = {"timeout": timeout, "cases": {}}
    for n, faults in BROKEN.items():
        lab.set_faults(*faults)
        ours_cmd = shlex.join([shown_path(lab.binary), *probe_args(timeout)])
        log(f"broken ({n} address(es)): vpce-probe x{runs}, checklist x{ck_runs}")
        ours = hyperfine(lab, {"vpce-probe": ours_cmd}, runs, env, warmup=0)["vpce-probe"]
        ck = hyperfine(lab, {"checklist": f"bash {script}"}, ck_runs, env, warmup=0)["checklist"]
        rep = lab.exec([str(lab.binary), *probe_args(timeout), "--format", "json"], env, check=False)
        codes = []
        try:
            codes = sorted({f["code"] for f in json.loads(rep.stdout).get("findings", [])})
        except json.JSONDecodeError:
            pass
        out["cases"][n] = {"faults": list(faults), "ours": ours, "checklist": ck,
                           "exit": rep.returncode, "findings": codes}
    lab.set_faults()
    return out


def m_scenarios(lab: Lab) -> dict:
    """Every lab scenario once (lab/run_scenarios.py, which brings its own lab up and down),
    with each probe's wall time against the `--timeout` it was given."""
    timings = lab.work / "scenario-timings.json"
    log("scenarios: every lab scenario once (lab/run_scenarios.py --timings)")
    proc = run([sys.executable, str(REPO / "lab" / "run_scenarios.py"), "--binary", str(lab.binary),
                "--timings", str(timings)], env=lab.env, check=False, timeout=1800)
    out = json.loads(timings.read_text()) if timings.exists() else {"scenarios": []}
    out["suite_exit"] = proc.returncode
    return out


def agent_available(binary: Path) -> bool:
    r = run([str(binary), "agent", "--help"], check=False)
    return r.returncode == 0


def agent_config(path: Path, work: Path, interval: str, buckets, tables, timeout="500ms",
                 deadline="900ms", port=9731) -> Path:
    spool = work / f"spool-{path.stem}"
    reports = work / f"reports-{path.stem}"
    spool.mkdir(exist_ok=True)
    reports.mkdir(exist_ok=True)
    q = lambda xs: "[" + ", ".join(json.dumps(x) for x in xs) + "]"
    path.write_text(textwrap.dedent(f"""\
        interval = "{interval}"
        jitter = "0s"

        [probe]
        buckets = {q(buckets)}
        tables = {q(tables)}
        timeout = "{timeout}"
        deadline = "{deadline}"
        ip_ranges = "{LAB_DIR / 'ip-ranges.json'}"
        internet_canary = "none"
        expect_issuers = ["{LAB_CA_NAME}"]
        control_plane = false

        [metrics]
        listen = "127.0.0.1:{port}"

        [spool]
        dir = "{spool}"

        [[sink]]
        type = "dir"
        path = "{reports}"
        """))
    return path


BB_CONFIG = """modules:
  http_s3:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      valid_status_codes: [200, 301, 307, 400, 403, 404, 405]
      tls_config:
        ca_file: {ca}
"""


def curl_reference(lab: Lab, n: int = 5) -> dict:
    """What actually happened on the path: curl -w, n times (seconds)."""
    vals = {"connect": [], "tls": [], "ttfb": [], "status": []}
    for _ in range(n):
        r = lab.exec(["curl", "-sS", "-o", "/dev/null", "--http1.1", "--cacert", str(LAB_DIR / "trust.pem"), "-w",
                      "%{time_namelookup} %{time_connect} %{time_appconnect} %{time_starttransfer} %{http_code}",
                      f"https://{S3_NAME}/"], check=False)
        try:
            dns, conn, tls, ttfb, code = map(float, r.stdout.split())
        except ValueError:
            continue
        vals["status"].append(code)
        vals["connect"].append(conn - dns)
        vals["tls"].append(tls - conn)
        vals["ttfb"].append(ttfb - tls)
        time.sleep(0.2)
    return {k: med(v) for k, v in vals.items()}


def m_loop(lab: Lab, seconds: int) -> dict:
    lab.set_faults()
    out = {"seconds": seconds, "injected_ms": INJECTED_MS}
    out["curl_no_delay"] = curl_reference(lab)
    with Delay(lab.work, INJECTED_MS):
        out["curl_reference"] = curl_reference(lab)
        # blackbox_exporter, scraped once a second with curl
        cfg = lab.work / "blackbox.yml"
        cfg.write_text(BB_CONFIG.format(ca=LAB_DIR / "trust.pem"))
        bb = Daemon(lab, "blackbox", ["prometheus-blackbox-exporter", f"--config.file={cfg}",
                                      "--web.listen-address=127.0.0.1:9115", "--log.level=warn"])
        RUNNING.append(bb)
        try:
            url = f"http://127.0.0.1:9115/probe?target=https://{S3_NAME}/&module=http_s3"
            for _ in range(50):
                if scrape("http://127.0.0.1:9115/metrics", 1):
                    break
                time.sleep(0.1)
            phases = {"resolve": [], "connect": [], "tls": [], "processing": [], "transfer": []}
            total, success, status = [], [], []

            def tick(_i):
                text = scrape(url)
                for labels, v in metric_values(text, "probe_http_duration_seconds"):
                    if labels.get("phase") in phases:
                        phases[labels["phase"]].append(v)
                for _, v in metric_values(text, "probe_duration_seconds"):
                    total.append(v)
                for _, v in metric_values(text, "probe_success"):
                    success.append(v)
                for _, v in metric_values(text, "probe_http_status_code"):
                    status.append(v)

            log(f"loop: blackbox_exporter for {seconds} s (delay {INJECTED_MS} ms toward {S3_IP})")
            w = watch(bb, seconds, tick)
            out["blackbox"] = dict(w, scrapes=len(total), success=sum(success),
                                   phases={k: med(v) for k, v in phases.items()},
                                   probe_duration=med(total), status=med(status))
        finally:
            bb.stop()
        # ours: the agent
        if not agent_available(lab.binary):
            out["agent"] = None
            log("loop: `vpce-probe agent` does not exist yet: pending")
            return out
        cfg = agent_config(lab.work / "agent-loop.toml", lab.work, "1s", ["lab-bucket"], [])
        ag = Daemon(lab, "agent-loop", [str(lab.binary), "agent", "--config", str(cfg)])
        RUNNING.append(ag)
        try:
            samples = {}
            runs0 = None

            def tick_ag(_i):
                nonlocal runs0
                text = scrape("http://127.0.0.1:9731/metrics", 2)
                runs = sum(v for _, v in metric_values(text, "vpce_probe_runs_total"))
                if runs0 is None:
                    runs0 = runs
                samples["runs"] = runs
                for labels, v in metric_values(text, "vpce_probe_phase_duration_seconds"):
                    if S3_NAME in labels.get("target", "") or labels.get("target", "").startswith("s3"):
                        samples.setdefault(labels.get("phase"), []).append(v)

            time.sleep(2)  # the first run
            log(f"loop: vpce-probe agent for {seconds} s")
            w = watch(ag, seconds, tick_ag)
            runs = samples.get("runs", 0) - (runs0 or 0)
            out["agent"] = dict(w, runs=runs,
                                phases={k: med(v) for k, v in samples.items() if k != "runs"},
                                cpu_ms_per_run=(w["cpu_s"] * 1000 / runs) if runs else None)
        finally:
            ag.stop()
    return out


def m_footprint(lab: Lab, runs: int, idle_s: int = 20, busy_s: int = 30) -> dict:
    lab.set_faults()
    b = lab.binary
    out = {"binary_bytes": b.stat().st_size}
    stripped = lab.work / "vpce-probe.stripped"
    shutil.copy2(b, stripped)
    run(["strip", str(stripped)], check=False)
    out["stripped_bytes"] = stripped.stat().st_size
    env = {"AWS_CA_BUNDLE": str(LAB_DIR / "trust.pem")}
    drop = "bash -c 'sync; echo 3 > /proc/sys/vm/drop_caches'"
    log("footprint: --version and probe, cold (drop_caches) and warm")
    probe = shlex.join([str(b), *probe_args(1)])
    cold = hyperfine(lab, {"version-cold": f"{b} --version"}, runs, env, warmup=0, prepare=drop)
    warm = hyperfine(lab, {"version-warm": f"{b} --version"}, max(runs, 20), env, warmup=3)
    pcold = hyperfine(lab, {"probe-cold": probe}, max(3, runs // 2), env, warmup=0, prepare=drop)
    out.update(version_cold=cold["version-cold"], version_warm=warm["version-warm"],
               probe_cold=pcold["probe-cold"])
    if not agent_available(b):
        out["agent"] = None
        return out
    agent = {}
    # Busy: a run every second (one bucket + one table): CPU per cycle, RSS while running.
    cfg = agent_config(lab.work / "agent-busy.toml", lab.work, "1s", ["lab-bucket"], ["lab-table"])
    d = Daemon(lab, "agent-busy", [str(b), "agent", "--config", str(cfg)])
    RUNNING.append(d)
    try:
        time.sleep(2)
        r0 = sum(v for _, v in metric_values(scrape("http://127.0.0.1:9731/metrics"), "vpce_probe_runs_total"))
        log(f"footprint: agent, a run every second, {busy_s} s")
        w = watch(d, busy_s)
        r1 = sum(v for _, v in metric_values(scrape("http://127.0.0.1:9731/metrics"), "vpce_probe_runs_total"))
        agent["busy"] = dict(w, runs=r1 - r0, cpu_ms_per_run=(w["cpu_s"] * 1000 / (r1 - r0)) if r1 > r0 else None)
    finally:
        d.stop()
    # Idle: one run at start, then nothing for an hour.
    cfg = agent_config(lab.work / "agent-idle.toml", lab.work, "1h", ["lab-bucket"], ["lab-table"],
                       timeout="1s", deadline="15s")
    d = Daemon(lab, "agent-idle", [str(b), "agent", "--config", str(cfg)])
    RUNNING.append(d)
    try:
        time.sleep(5)
        log(f"footprint: agent idle, {idle_s} s")
        agent["idle"] = watch(d, idle_s)
    finally:
        d.stop()
    out["agent"] = agent
    return out


# The floor for section 5: the probe's signed calls for the given buckets and tables, made by a
# minimal client (boto3, the lab's venv) within the probe's default call bounds (8 in flight per
# address: one pool per service, each service one address in the lab). Credentials, clients and
# the first connections are made before the clock starts: the figure is the calls alone, as the
# servers behind the lab's fronts (moto, or the fronts' canned answers) can serve them.
FLOOR_CLIENT = r"""
import concurrent.futures as cf, json, statistics, sys, time
import boto3, botocore.config
per_address, runs = int(sys.argv[1]), int(sys.argv[2])
buckets, tables = sys.argv[3].split(","), sys.argv[4].split(",")
# Virtual-hosted names, as the probe's SDK uses them (botocore still sends GetBucketLocation
# path-style to the regional name; the fronts' canned rules answer both forms).
cfg = botocore.config.Config(region_name="eu-west-1", max_pool_connections=per_address,
                             retries={"total_max_attempts": 1}, connect_timeout=3, read_timeout=10,
                             s3={"addressing_style": "virtual"})
session = boto3.session.Session()
s3 = session.client("s3", config=cfg)
ddb = session.client("dynamodb", config=cfg)
ddb_account = session.client("dynamodb", config=cfg,
                             endpoint_url="https://123456789012.ddb.eu-west-1.amazonaws.com")
s3_calls, ddb_calls = [], []
for b in buckets:  # HeadBucket, GetBucketLocation, ListObjectsV2, GetObject: as the probe
    s3_calls += [lambda b=b: s3.head_bucket(Bucket=b), lambda b=b: s3.get_bucket_location(Bucket=b),
                 lambda b=b: s3.list_objects_v2(Bucket=b, MaxKeys=1),
                 lambda b=b: s3.get_object(Bucket=b, Key="probe/object.txt", Range="bytes=0-15")["Body"].read()]
for t in tables:  # DescribeTable on both names, GetItem
    ddb_calls += [lambda t=t: ddb.describe_table(TableName=t), lambda t=t: ddb_account.describe_table(TableName=t),
                  lambda t=t: ddb.get_item(TableName=t, Key={"pk": {"S": "id-1"}})]
s3.head_bucket(Bucket=buckets[0]); ddb.describe_table(TableName=tables[0])
ddb_account.describe_table(TableName=tables[0])
walls, errors, first_error = [], 0, None
for _ in range(runs):
    started = time.monotonic()
    with cf.ThreadPoolExecutor(per_address) as s3_pool, cf.ThreadPoolExecutor(per_address) as ddb_pool:
        futures = [s3_pool.submit(c) for c in s3_calls] + [ddb_pool.submit(c) for c in ddb_calls]
        failed = [f.exception() for f in futures if f.exception()]
    walls.append(time.monotonic() - started)
    errors += len(failed)
    first_error = first_error or (repr(failed[0])[:300] if failed else None)
print(json.dumps({"calls": len(s3_calls) + len(ddb_calls), "median": statistics.median(walls),
                  "min": min(walls), "runs": runs, "errors": errors, "first_error": first_error,
                  "per_address": per_address}))
"""


def calls_floor(lab: Lab, buckets: list[str], tables: list[str], runs: int, per_address: int = 8) -> dict | None:
    """The same signed calls as a probe of these buckets and tables, by a minimal client."""
    script = lab.work / "floor_client.py"
    script.write_text(FLOOR_CLIENT)
    r = lab.exec(["/opt/vpce-probe-test/venv/bin/python", str(script), str(per_address), str(runs),
                  ",".join(buckets), ",".join(tables)],
                 {"AWS_CA_BUNDLE": str(LAB_DIR / "trust.pem")}, check=False)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        log(f"floor ({len(buckets)} targets) failed: {(r.stderr or '').strip()[-300:]}")
        return None


# Section 5's two sets of targets: moto's (`lab.sh seed 49`: what the lab's emulator can serve)
# and the fronts' own (`lab.sh seed --canned 50`: the fronts answer every call of these names
# themselves, so the emulator is out of the floor and the figure is the probe's own scaling).
SCALING_TARGETS = {
    "emulator": (lambda n: ["lab-bucket"] + [f"lab-bucket-{i:02d}" for i in range(1, n)],
                 lambda n: ["lab-table"] + [f"lab-table-{i:02d}" for i in range(1, n)]),
    "canned": (lambda n: [f"lab-canned-bucket-{i:02d}" for i in range(1, n + 1)],
               lambda n: [f"lab-canned-table-{i:02d}" for i in range(1, n + 1)]),
}


def scaling_runs(lab: Lab, variant: str, backend: str, runs: int) -> dict:
    env = {"AWS_CA_BUNDLE": str(LAB_DIR / "trust.pem")}
    res = {}
    for n in (1, 10, 50):
        buckets, tables = (names(n) for names in SCALING_TARGETS[backend])
        args = [str(lab.binary), *probe_args(1, buckets, tables)]
        log(f"scaling ({variant}, {backend}): {n} bucket(s) + {n} table(s) x{runs}")
        ov0 = listen_overflows()
        hf = hyperfine(lab, {f"n{n}": shlex.join(args)}, runs, env, warmup=2)[f"n{n}"]
        ov = listen_overflows() - ov0
        rss, cpu = rss_cpu(lab, args, env)
        rep = lab.exec(args + ["--format", "json"], env, check=False)
        try:
            doc = json.loads(rep.stdout)
            checks = len(doc.get("checks", []))
            failed = [c for c in doc.get("checks", []) if c.get("status") == "fail"]
            by_check: dict[str, int] = {}
            for c in failed:
                by_check[c.get("check", "?")] = by_check.get(c.get("check", "?"), 0) + 1
            failing = sorted({f["code"] for f in doc.get("findings", []) if f.get("severity") in ("error", "ERROR")})
        except json.JSONDecodeError:
            checks, failed, failing, by_check = None, [], ["(no JSON)"], {}
        floor = calls_floor(lab, buckets, tables, runs)
        res[n] = {"wall": hf, "rss_kb": rss, "cpu_s": cpu, "exit": rep.returncode, "checks": checks,
                  "failed_checks": len(failed), "failed_by_check": by_check, "errors": failing, "listen_overflows": ov,
                  "calls": n * 4 + n * 3, "floor": floor}
    return res


def m_scaling(lab: Lab, runs: int) -> dict:
    lab.set_faults()
    log("scaling: seeding 49 more buckets and tables in moto, naming 50 canned ones")
    lab.sh("seed", "49")
    lab.sh("seed", "--canned", "50")
    out = {}
    for variant, faults in (("private", ()), ("nat", ("nat-gateway",))):
        lab.set_faults(*faults)
        # "n" stays the emulator's figures (the key older raw files have).
        # The canned runs are short (0.1-0.25 s) and decide the 2x target, whose baseline (one
        # target, where every endpoint answers) is the emulator's control-plane answer and moves
        # by 20-30 ms between runs: three times the runs for steadier medians.
        out[variant] = {"faults": list(faults), "n": scaling_runs(lab, variant, "emulator", runs),
                        "canned": scaling_runs(lab, variant, "canned", runs * 3)}
    lab.set_faults()
    return out


# ------------------------------------------------------------------ report


def machine(aws: str, binary: Path) -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))

    def ver(cmd):
        r = run(cmd, check=False)
        return ((r.stdout or "") + (r.stderr or "")).strip().splitlines()[0] if (r.stdout or r.stderr) else "?"

    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem / 1024 / 1024, 1),
        "kernel": platform.release(), "os": ver(["bash", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "versions": {
            "vpce-probe": ver([str(binary), "--version"]),
            "git": ver(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
            "rustc": ver(["rustc", "--version"]),
            "hyperfine": ver(["hyperfine", "--version"]),
            "dig": ver(["dig", "-v"]),
            "curl": ver(["curl", "--version"]),
            "aws": ver([aws, "--version"]),
            "blackbox_exporter": ver(["prometheus-blackbox-exporter", "--version"]),
            "time": ver(["/usr/bin/time", "--version"]),
            "moto": ver(["/opt/vpce-probe-test/venv/bin/python", "-c", "import moto; print('moto', moto.__version__)"]),
        },
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def ms(s):
    return "—" if s is None else f"{s * 1000:.0f} ms" if s >= 0.0995 else f"{s * 1000:.1f} ms"


def mb(kb):
    return "—" if kb is None else f"{kb / 1024:.1f} MiB"


def short_step(cmd: str) -> str:
    short = re.sub(r"\s+--(cli-connect-timeout|cli-read-timeout|region) \S+", "", cmd)
    short = re.sub(r"^\S*/", "", short)
    short = re.sub(r" -w .*(https://)", r" -w ... \1", short)
    return short[:90]


def verdict(ok: bool | None) -> str:
    return "pending" if ok is None else ("**met**" if ok else "**missed**")


def render(res: dict) -> str:
    m = res["machine"]
    L = []
    a = L.append
    a("# Benchmarks")
    a("")
    a("vpce-probe against what users would use instead (the AWS CLI, dig and curl walked by hand; "
      "Prometheus blackbox_exporter as a probe daemon), measured in the same run in the VPC lab "
      "(`lab/lab.sh`: network namespaces, moto behind TLS fronts). Generated by "
      "`sudo bash scripts/bench.sh` (`benches/bench.py`); do not edit by hand.")
    a("")
    a(f"- date: {res['date']}; whole run {res['run_seconds'] / 60:.1f} min"
      + (f" (+ dist build {res['build_seconds'] / 60:.1f} min)" if (res.get("build_seconds") or 0) >= 60
         else " (the dist binary was already up to date)" if res.get("build_seconds") is not None else ""))
    a(f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, kernel {m['kernel']}, {m['os']}")
    a(f"- load average (1/5/15 min): {res['load_start']} at the start, {res['load_end']} at the end "
      "(a shared machine: other builds ran; figures are medians)")
    a(f"- binary: `{shown_path(res['binary'])}` ({m['versions']['vpce-probe']}, tree {m['versions']['git']}, "
      f"{m['versions']['rustc']}, profile dist: fat LTO, 1 codegen unit, panic=abort)")
    a("- tools: " + "; ".join(f"{k} `{v}`" for k, v in m["versions"].items() if k not in ("vpce-probe", "git", "rustc")))
    a("")
    # ---- targets summary
    t = res["targets"]
    a("## Targets")
    a("")
    a("| target | figure | result |")
    a("|---|---|---|")
    for row in t:
        a(f"| {row[0]} | {row[1]} | {verdict(row[2])} |")
    a("")
    if res.get("notes"):
        a("Causes of the misses, and what would fix them: see \"Findings\" at the end.")
        a("")
    # ---- 1
    o = res.get("oneshot")
    if o:
        a("## 1. Healthy one-shot: vpce-probe vs the manual checklist")
        a("")
        a("Inside the instance namespace, with the environment of `lab.sh exec` (plus `AWS_CA_BUNDLE` "
          "and `CURL_CA_BUNDLE` = the lab's trust bundle for the CLI and curl). Wall time: "
          "`hyperfine -N` (median); peak RSS: `/usr/bin/time -f %M` (median of 3 for vpce-probe; for "
          "the checklist, the largest single process of one walk).")
        a("")
        a("| lab state | vpce-probe wall | checklist wall | ratio | vpce-probe peak RSS | checklist peak RSS (largest process) | CPU: vpce-probe / checklist | probe exit |")
        a("|---|---|---|---|---|---|---|---|")
        names = {"private": "as built: private subnet (STS, EC2 API and the internet canary unreachable)",
                 "nat": "`nat-gateway` fault: STS, EC2 API and canary answer through NAT"}
        for v, r in o.items():
            ratio = r["checklist"]["median"] / r["ours"]["median"]
            a(f"| {names[v]} | {ms(r['ours']['median'])} (n={r['ours']['runs']}, {ms(r['ours']['min'])}–{ms(r['ours']['max'])}) "
              f"| {ms(r['checklist']['median'])} (n={r['checklist']['runs']}) | {ratio:.1f}x | {mb(r['ours_rss_kb'])} "
              f"| {mb(r['checklist_rss_kb'])} (`{short_step(r['checklist_rss_step'])}`) "
              f"| {r['ours_cpu_s'] * 1000:.0f} ms / {r['checklist_cpu_s']:.2f} s | {r['report'].get('exit')} |")
        a("")
        a("Commands (inside `ip netns exec vpl-inst`):")
        a("")
        a("```sh")
        a(o["private"]["ours_cmd"])
        a("T=1 bash checklist.sh   # below")
        a("```")
        a("")
        a("The checklist (`benches/bench.py` writes it; `T` = the timeout given to every tool):")
        a("")
        a("```bash")
        a(CHECKLIST.strip())
        a("```")
        a("")
        a("Per step of one checklist walk (peak RSS, seconds):")
        a("")
        a("| step | private subnet | nat-gateway |")
        a("|---|---|---|")
        pv, nv = o["private"]["checklist_steps"], o.get("nat", {}).get("checklist_steps", [])
        for i, s in enumerate(pv):
            n = nv[i] if i < len(nv) else None
            a(f"| `{short_step(s[2])}` | {mb(s[0])}, {s[1]:.2f} s | " + (f"{mb(n[0])}, {n[1]:.2f} s" if n else "—") + " |")
        a("")
    # ---- 1b
    cp = res.get("critical")
    if cp:
        a("## 1b. The healthy critical path against its physical limit")
        a("")
        a("A healthy run's critical path is IMDS → credentials → signed calls: the SDK's credential "
          "chain reads the instance role's credentials from IMDS, and the signed calls need them. Each "
          "link of the lab's emulators (IMDS: the test suite's IMDSv2 fake in `lab_servers`; S3 and "
          "DynamoDB: moto behind the TLS fronts) measured alone with `curl` inside the instance "
          f"namespace (median of {cp['runs']}; each request on its own connection):")
        a("")
        names = {"imds_token": "IMDS: PUT `/latest/api/token` (the session token)",
                 "imds_region": "IMDS: GET `placement/region`",
                 "imds_roles": "IMDS: GET `iam/security-credentials/` (the role's name)",
                 "imds_credentials": "IMDS: GET `iam/security-credentials/ROLE` (the credentials)",
                 "dataplane": "data plane, beside the credentials: DNS → TCP → TLS to the S3 front"}
        a("| link | median |")
        a("|---|---|")
        for k, label in names.items():
            if k in cp["links"]:
                a(f"| {label} | {ms(cp['links'][k])} |")
        for k, v in sorted(cp["links"].items()):
            if k.startswith("call_"):
                a(f"| signed call `{k[5:]}` (new connection: TCP, TLS, request, answer) | {ms(v)} |")
        a(f"| `vpce-probe --version` (the process alone; hyperfine) | {ms(cp['process'])} |")
        a("")
        lk = cp["links"]
        a(f"Physical limit of the chain, every endpoint answering: token + region + max(role + credentials, "
          f"data plane) + the slowest signed call ({cp['slowest_call']}; the calls run at once) = "
          f"**{ms(cp['limit'])}**, plus the process itself. In a private subnet the internet canary "
          "(from the start) and STS and the EC2 API (from the region: token + region = "
          f"{ms(cp['region_ready'])}) are waited `--silence-timeout` for a TCP connection, so the "
          "limit there is the larger of the chain and the region + that bound.")
        a("")
        a("| lab state | vpce-probe wall (hyperfine) | report `duration_ms` | `imds` check | `credentials` check | slowest signed call | physical limit (+ process) | wall / (limit + process) |")
        a("|---|---|---|---|---|---|---|---|")
        labels = {"nat": "`nat-gateway`: every endpoint answers", "private": "as built: private subnet"}
        for v, st in cp["states"].items():
            lim = cp["limit"]
            if v == "private" and st.get("silence_timeout_ms"):
                lim = max(lim, cp["region_ready"] + st["silence_timeout_ms"] / 1000)
            total = lim + cp["process"]
            a(f"| {labels.get(v, v)} | {ms(st['wall'])} | {st['duration_ms']:.0f} ms | {st['imds_ms']:.0f} ms "
              f"| {st['credentials_ms']:.0f} ms | {st['call_ms']:.0f} ms | {ms(lim)} (+ {ms(cp['process'])}) "
              f"| {st['wall'] / total:.2f}x |")
        a("")
        a("Check durations are medians over "
          f"{cp['states'].get('nat', {}).get('runs', 0)} JSON reports per state; the `credentials` check "
          "counts from the chain's start (after the region), the calls from their own start.")
        a("")
    # ---- 2
    b = res.get("broken")
    if b:
        to = b["timeout"]
        a(f"## 2. Broken path: service addresses black-holed (`--timeout {to:g}`, the checklist's tools `T={to:g}`)")
        a("")
        a("Faults of `lab/lab.sh` (route table: a /32 to a deleted appliance, packets dropped silently); "
          "for 4 addresses the VPC resolver answers two addresses per service (`dns-second-address`) "
          "and all four are black-holed.")
        a("")
        a(f"| black-holed | faults | vpce-probe wall | / timeout ({to:g} s) | checklist wall | ratio | probe exit, findings |")
        a("|---|---|---|---|---|---|---|")
        for n, r in b["cases"].items():
            a(f"| {n} | {', '.join('`' + f + '`' for f in r['faults'])} | {ms(r['ours']['median'])} "
              f"({ms(r['ours']['min'])}–{ms(r['ours']['max'])}) | {r['ours']['median'] / to:.2f}x "
              f"| {r['checklist']['median']:.1f} s (n={r['checklist']['runs']}) | {r['checklist']['median'] / r['ours']['median']:.1f}x "
              f"| {r['exit']}: {', '.join(r['findings'])} |")
        a("")
    # ---- 3
    lp = res.get("loop")
    if lp:
        a(f"## 3. An HTTPS probe of the S3 name every second for {lp['seconds']} s: agent vs blackbox_exporter")
        a("")
        a(f"A known latency: every packet from the router toward {S3_IP}:443 (the S3 front) is held "
          f"{lp['injected_ms']:g} ms (`benches/nfq_delay.py` on an NFQUEUE rule in `vpl-rtr`; the kernel "
          "has no netem), so each round trip to S3 takes ≈ 20 ms more: connect ≈ 1 RTT, TLS 1.3 ≈ 1 RTT, "
          "a request ≈ 1 RTT + the server's time. CPU: utime+stime delta from `/proc/PID/stat`; RSS: "
          "VmRSS sampled every second (median), VmHWM at the end.")
        a("")
        c = lp["curl_reference"]
        bb = lp["blackbox"]
        ag = lp.get("agent")
        a("| | CPU over the minute | CPU per probe | RSS (median / peak) | probes | connect | TLS | request / first byte |")
        a("|---|---|---|---|---|---|---|---|")
        c0 = lp.get("curl_no_delay")
        if c0:
            a(f"| `curl -w` without the delay (5 runs; HTTP {c0['status']:.0f}) | | | | | {ms(c0['connect'])} | {ms(c0['tls'])} | {ms(c0['ttfb'])} |")
        a(f"| what happened: `curl -w` with the delay (5 runs; HTTP {c['status']:.0f}) | | | | | {ms(c['connect'])} | {ms(c['tls'])} | {ms(c['ttfb'])} |")
        bp = bb["phases"]
        a(f"| blackbox_exporter 0.23 (http prober; scraped with curl each second) | {bb['cpu_s']:.2f} s "
          f"| {bb['cpu_s'] * 1000 / max(bb['scrapes'], 1):.1f} ms | {mb(bb['rss_kb_median'])} / {mb(bb['hwm_kb'])} "
          f"(anon {mb(bb['rss_anon_kb'])}, file {mb(bb['rss_file_kb'])}) "
          f"| {bb['scrapes']} ({bb['success']:.0f} ok, HTTP {bb['status'] or 0:.0f}) | {ms(bp['connect'])} | {ms(bp['tls'])} | {ms(bp['processing'])} (processing) |")
        if ag:
            p = ag["phases"]
            a(f"| vpce-probe agent (interval 1s; one bucket; canary off, control plane off) | {ag['cpu_s']:.2f} s "
              f"| {ag['cpu_ms_per_run']:.1f} ms | {mb(ag['rss_kb_median'])} / {mb(ag['hwm_kb'])} "
              f"(anon {mb(ag['rss_anon_kb'])}, file {mb(ag['rss_file_kb'])}) | {ag['runs']:.0f} "
              f"| {ms(p.get('connect'))} | {ms(p.get('tls'))} | {ms(p.get('request'))} |")
        else:
            a("| vpce-probe agent | pending | pending | pending | pending | pending | pending | pending |")
        a("")
        a("Reported figures are medians over the minute. blackbox_exporter's `connect`/`tls`/`processing` "
          "are its `probe_http_duration_seconds` phases; the agent's are `vpce_probe_phase_duration_seconds` "
          "(last run, scraped each second). What the agent does in one cycle is much more than one GET: "
          "IMDS, both resolvers, TCP and TLS to every address, the NACL source-port sweep, signed "
          "calls (and STS, which has no endpoint in the private subnet, so every cycle waits `--silence-timeout` for it).")
        a("")
    # ---- 4
    f = res.get("footprint")
    if f:
        a("## 4. Footprint")
        a("")
        a("| | figure |")
        a("|---|---|")
        a(f"| dist binary as built (`strip = \"symbols\"`) | {f['binary_bytes'] / 1e6:.1f} MB ({f['binary_bytes']} bytes) |")
        a(f"| after `strip` | {f['stripped_bytes'] / 1e6:.1f} MB |")
        a(f"| `vpce-probe --version`, cold (`--prepare 'sync; echo 3 > /proc/sys/vm/drop_caches'`) | {ms(f['version_cold']['median'])} (n={f['version_cold']['runs']}) |")
        a(f"| `vpce-probe --version`, warm | {ms(f['version_warm']['median'])} (n={f['version_warm']['runs']}) |")
        a(f"| healthy probe, cold | {ms(f['probe_cold']['median'])} (n={f['probe_cold']['runs']}; the warm figure is in section 1) |")
        ag = f.get("agent")
        if ag:
            bz, idl = ag["busy"], ag["idle"]
            a(f"| agent, a run every second (1 bucket + 1 table): CPU per cycle | {bz['cpu_ms_per_run']:.1f} ms ({bz['runs']:.0f} runs in {bz['seconds']:.0f} s) |")
            a(f"| agent, a run every second: RSS median / peak | {mb(bz['rss_kb_median'])} / {mb(bz['hwm_kb'])} |")
            a(f"| of which (at the end) anonymous / file-backed (the binary's pages) | {mb(bz['rss_anon_kb'])} / {mb(bz['rss_file_kb'])} ({bz['threads']} threads) |")
            a(f"| agent idle (after its first run): RSS / CPU | {mb(idl['rss_kb_median'])} / {idl['cpu_s'] * 1000:.0f} ms in {idl['seconds']:.0f} s |")
        else:
            a("| agent RSS and CPU, idle and during a run | pending (`vpce-probe agent` did not exist in this build) |")
        a("")
    # ---- 5
    s = res.get("scaling")
    if s:
        a("## 5. Scaling: N buckets and N tables in one probe")
        a("")
        a("Two sets of targets, `--timeout 1`, each bucket with the object and each table with the item of the "
          "standard arguments. **emulator**: `lab-bucket`, `lab-bucket-01..49` and `lab-table`, `lab-table-01..49` "
          "(`lab.sh seed 49`), served by moto (a single Python process) behind the lab's TLS fronts. **canned**: "
          "`lab-canned-bucket-01..50` and `lab-canned-table-01..50` (`lab.sh seed --canned 50`), whose every call "
          "the fronts answer themselves as healthy buckets and tables would (tests/support/front.rs "
          "`healthy_target_rules`): the emulator is out of the path, so this is the probe's own scaling.")
        a("")
        a("The floor: the same signed calls made by a minimal client (boto3 in the lab's venv, 8 in flight "
          "per service address as the probe's default bounds; credentials and first connections made before "
          "the clock starts), i.e. what the servers behind the fronts can serve on this machine. The probe's "
          "wall time over it shows what the probe adds. Against the canned answers the minimal client is the "
          "slower of the two (Python signs and handshakes in one process): there it shows its own limit.")
        a("")
        a("| lab state | served by | N | signed calls | wall (median) | / N=1 | floor: the calls alone (median) | wall / floor "
          "| CPU (user+sys) | peak RSS | checks (failed) | lab servers' listen overflows | exit, errors |")
        a("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for v, r in s.items():
            for backend in ("emulator", "canned"):
                by_n = r["n"] if backend == "emulator" else r.get("canned")
                if not by_n:
                    continue
                base = by_n[1]["wall"]["median"]
                for n, x in by_n.items():
                    fl = x.get("floor")
                    floor_cells = (f"{ms(fl['median'])} (n={fl['runs']}{', ' + str(fl['errors']) + ' errors' if fl.get('errors') else ''}) "
                                   f"| {x['wall']['median'] / fl['median']:.2f}x") if fl and fl.get("median") else "not measured | "
                    a(f"| {v} | {backend} | {n} | {x['calls']} | {ms(x['wall']['median'])} (n={x['wall']['runs']}) | {x['wall']['median'] / base:.2f}x "
                      f"| {floor_cells} "
                      f"| {x['cpu_s'] * 1000:.0f} ms | {mb(x['rss_kb'])} | {x['checks']} ({x['failed_checks']}"
                      + "".join(f", {k} {c}" for k, c in sorted(x.get("failed_by_check", {}).items()))
                      + f") | {x['listen_overflows']} "
                      f"| {x['exit']}{' ' + ', '.join(x['errors']) if x['errors'] else ''} |")
        a("")
    # ---- 6
    sc = res.get("scenarios")
    if sc and sc.get("scenarios"):
        rows = [x for x in sc["scenarios"] if x.get("probe_wall_s") is not None]
        start = sc.get("process_start_s") or 0
        over = [x for x in rows if x.get("over_budget")]
        a("## 6. Broken paths: every lab scenario")
        a("")
        a(f"Each scenario of `lab/run_scenarios.py` once (`--timings`), with its own `--timeout` (1 s unless "
          f"the scenario says otherwise): the probe's wall time from `ip netns exec` to its exit, and that time "
          f"less the process start ({start * 1000:.0f} ms: `ip netns exec ... vpce-probe --version`, median of 5) "
          f"over `--timeout`. The budget: ≤ {sc.get('budget_ratio', 1.2):g}x whatever fails. "
          f"{len(rows) - len(over)} of {len(rows)} within; the suite exited {sc.get('suite_exit')}.")
        a("")
        a("| scenario | --timeout | wall | report's duration | (wall − start) / timeout | exit | scenario passed |")
        a("|---|---|---|---|---|---|---|")
        for x in sorted(rows, key=lambda x: -(x.get("ratio_without_start") or 0)):
            flag = " **over**" if x.get("over_budget") else ""
            dur = f"{x['report_duration_ms']} ms" if x.get("report_duration_ms") is not None else "no report"
            a(f"| `{x['scenario']}` | {x['timeout_s']:g} s | {ms(x['probe_wall_s'])} | {dur} "
              f"| {x['ratio_without_start']:.2f}x{flag} | {x['exit']} | {'yes' if x.get('passed') else 'no'} |")
        a("")
    if res.get("notes"):
        a("## Findings and what would fix the misses")
        a("")
        a(res["notes"].strip())
        a("")
    a("## Reproduce")
    a("")
    a("```sh")
    a("sudo bash scripts/bench.sh            # installs, builds (dist), runs everything, writes BENCHMARKS.md")
    a("sudo bash scripts/bench.sh --quick    # fewer runs, 20 s loops (a smoke test of the script)")
    a("```")
    a("")
    a("Options: `--binary PATH` (skip the build), `--no-build`, `--only oneshot,critical,broken,loop,footprint,scaling,scenarios`, "
      "`--out FILE`, `--raw FILE` (all figures as JSON, default `/var/tmp/vpce-bench/last-run.json`), "
      "`--notes FILE` (the findings section, default `benches/findings.md`), `--render RAW` (rewrite the "
      "report from a raw file, no measuring). The full run takes ~12 min after the build "
      "(a clean `dist` build: ~10 min, 8.5 GB). "
      "The run holds the lab lock (/run/vpce-lab.lock), so scenario runs wait for it.")
    return "\n".join(L) + "\n"


def targets(res: dict) -> list:
    rows = []
    o = res.get("oneshot")
    if o:
        for v, label in (("private", "private subnet"), ("nat", "every endpoint answers")):
            if v in o:
                ours = o[v]["ours"]["median"]
                # A private subnet proves silence (STS, EC2 API, canary) with --silence-timeout.
                goal = 0.300 if v == "private" else 0.150
                rows.append((f"healthy one-shot under {goal * 1000:.0f} ms ({label})", ms(ours), ours < goal))
                ratio = o[v]["checklist"]["median"] / ours
                rows.append((f"≥ 10x faster than the checklist ({label})", f"{ratio:.1f}x", ratio >= 10))
    b = res.get("broken")
    if b:
        for n, r in b["cases"].items():
            x = r["ours"]["median"] / b["timeout"]
            rows.append((f"broken path, {n} address(es) black-holed: ≤ 1.2x `--timeout`", f"{x:.2f}x", x <= 1.2))
    f = res.get("footprint")
    if f:
        ag = f.get("agent")
        rows.append(("agent RSS steady < 15 MB", mb(ag["busy"]["rss_kb_median"]) if ag else "pending",
                     (ag["busy"]["rss_kb_median"] * 1024 < 15e6) if ag else None))
        cpr = ag["busy"]["cpu_ms_per_run"] if ag else None
        rows.append(("agent CPU < 20 ms per cycle (1 bucket + 1 table)", f"{cpr:.1f} ms" if cpr else "pending",
                     (cpr < 20) if cpr else None))
        rows.append(("binary < 20 MB stripped", f"{f['stripped_bytes'] / 1e6:.1f} MB", f["stripped_bytes"] < 20e6))
    s = res.get("scaling")
    if s:
        for v in s:
            label = "private subnet" if v == "private" else "every endpoint answers"
            emu = s[v]["n"]
            canned = s[v].get("canned")
            # The target is the probe's own scaling: measured against the fronts' canned answers
            # when the run has them (the emulator's floor alone lies above 2x one target).
            r = canned or emu
            x = r[50]["wall"]["median"] / r[1]["wall"]["median"]
            failed = r[50].get("failed_checks") or 0
            fig = f"{x:.2f}x" + (" against the fronts' canned answers (section 5, 'canned')" if canned else "")
            if failed:
                fig += f" ({failed} of {r[50]['checks']} checks failed)"
            fl = r[50].get("floor")
            if fl and fl.get("median") and canned:
                # Against the fronts' answers the minimal client is slower than the probe: it
                # shows the client's own limit, not the servers'.
                fig += (f"; a minimal boto3 client needs {ms(fl['median'])} for its {fl['calls']} calls alone "
                        f"(the probe {r[50]['wall']['median'] / fl['median']:.2f}x of it)")
            elif fl and fl.get("median"):
                fig += (f"; the floor for its {fl['calls']} calls is {ms(fl['median'])} "
                        f"({fl['median'] / r[1]['wall']['median']:.2f}x of one target's probe), the probe {r[50]['wall']['median'] / fl['median']:.2f}x of it")
            if canned:
                ex = emu[50]["wall"]["median"] / emu[1]["wall"]["median"]
                efl = emu[50].get("floor")
                fig += (f"; against the emulator {ex:.2f}x"
                        + (f", {emu[50]['wall']['median'] / efl['median']:.2f}x of its floor" if efl and efl.get("median") else ""))
            rows.append((f"50 targets < 2x the wall time of 1 ({label})", fig, x < 2))
    sc = res.get("scenarios")
    timed = [x for x in (sc or {}).get("scenarios", []) if x.get("ratio_without_start") is not None]
    if timed:
        worst = max(timed, key=lambda x: x["ratio_without_start"])
        n_over = sum(1 for x in timed if x.get("over_budget"))
        rows.append(("every lab scenario ≤ 1.2x `--timeout` after the process start (section 6)",
                     f"{worst['ratio_without_start']:.2f}x at worst (`{worst['scenario']}`); {n_over} of {len(timed)} over",
                     n_over == 0))
    lp = res.get("loop")
    if lp is not None and not lp.get("agent"):
        rows.append(("loop: agent vs blackbox_exporter (section 3)", "blackbox measured; agent pending", None))
    return rows


# ------------------------------------------------------------------ main


# BENCHMARKS.md also holds sections that other scripts measure (the collector's benchmarks, the
# application-faithful view's cost), below this line; a run of this script keeps them as they are.
OTHER_SCRIPTS_MARKER = "<!-- the sections below come from other scripts (see each); bench.py keeps them -->"


def write_report(out: Path, text: str) -> None:
    kept = ""
    if out.exists():
        old = out.read_text()
        at = old.find(OTHER_SCRIPTS_MARKER)
        if at >= 0:
            kept = "\n" + old[at:]
    out.write_text(text.rstrip("\n") + "\n" + kept)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="vpce-probe to measure (default: $CARGO_TARGET_DIR/dist/vpce-probe, built)")
    ap.add_argument("--no-build", action="store_true", help="do not build; use the binary that is there")
    ap.add_argument("--build-attempts", type=int, default=5)
    ap.add_argument("--build-retry-wait", type=int, default=180)
    ap.add_argument("--quick", action="store_true", help="fewer runs and 20 s loops")
    ap.add_argument("--only", default="oneshot,critical,broken,loop,footprint,scaling,scenarios")
    ap.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    ap.add_argument("--raw", default="/var/tmp/vpce-bench/last-run.json")
    ap.add_argument("--notes", default=str(REPO / "benches" / "findings.md"),
                    help="a Markdown file of findings to include in the report (default benches/findings.md)")
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--render", metavar="RAW",
                    help="only write the report again from the figures of an earlier run (its --raw file)")
    args = ap.parse_args()
    if args.render:
        res = json.loads(Path(args.render).read_text())
        for v in (res.get("scaling") or {}).values():
            v["n"] = {int(k): x for k, x in v["n"].items()}
            if v.get("canned"):
                v["canned"] = {int(k): x for k, x in v["canned"].items()}
        if res.get("broken"):
            res["broken"]["cases"] = {int(k): x for k, x in res["broken"]["cases"].items()}
        res["targets"] = targets(res)
        res.pop("notes", None)
        if args.notes and Path(args.notes).exists():
            res["notes"] = Path(args.notes).read_text()
        write_report(Path(args.out), render(res))
        log(f"wrote {args.out} from {args.render}")
        return 0
    if os.geteuid() != 0:
        print("bench: run as root (the lab creates namespaces)", file=sys.stderr)
        return 2
    only = set(args.only.split(","))
    runs, ck_runs, broken_runs, broken_ck, loop_s = (10, 5, 5, 3, 60) if not args.quick else (3, 2, 2, 1, 20)

    aws = "/usr/bin/aws" if args.skip_install else install(args)
    started_all = time.monotonic()
    binary, servers, build_s = build(args)
    work = Path(tempfile.mkdtemp(prefix="vpce-bench-"))
    os.chmod(work, 0o755)
    script = work / "checklist.sh"
    script.write_text(CHECKLIST)
    lab = Lab(binary, servers, work)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    res: dict = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "binary": str(binary), "build_seconds": build_s}
    run_started = time.monotonic()
    lab.lock()
    try:
        res["load_start"] = loadavg()
        res["machine"] = machine(aws, binary)
        if "scenarios" in only:
            # Before the bench's own lab: the runner brings a lab up and down itself.
            res["scenarios"] = m_scenarios(lab)
        log("lab up")
        lab.up()
        if "oneshot" in only:
            res["oneshot"] = m_oneshot(lab, aws, script, runs, ck_runs)
        if "critical" in only:
            res["critical"] = m_critical(lab, runs, res.get("oneshot"))
        if "broken" in only:
            res["broken"] = m_broken(lab, aws, script, broken_runs, broken_ck)
        if "loop" in only:
            res["loop"] = m_loop(lab, loop_s)
        if "footprint" in only:
            res["footprint"] = m_footprint(lab, runs, idle_s=10 if args.quick else 20,
                                           busy_s=10 if args.quick else 30)
        if "scaling" in only:
            res["scaling"] = m_scaling(lab, 3 if args.quick else 5)
        res["load_end"] = loadavg()
    finally:
        for d in RUNNING:
            d.stop()
        log("lab down")
        lab.down()
        lab.unlock()
    res["run_seconds"] = time.monotonic() - run_started
    res["targets"] = targets(res)
    if args.notes and Path(args.notes).exists():
        res["notes"] = Path(args.notes).read_text()
    Path(args.raw).parent.mkdir(parents=True, exist_ok=True)
    Path(args.raw).write_text(json.dumps(res, indent=2, default=str))
    write_report(Path(args.out), render(res))
    shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {args.out} (raw figures: {args.raw}); {(time.monotonic() - started_all) / 60:.1f} min")
    for row in res["targets"]:
        print(f"  {verdict(row[2]).strip('*'):8} {row[0]}: {row[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
