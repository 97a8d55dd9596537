#!/usr/bin/env python3
"""Runs the VPC lab's scenarios: brings the lab up once, and for each lab/scenarios/*.toml
resets it to healthy, applies the scenario's faults, runs the real `vpce-probe probe` inside
the instance namespace and checks the report against the scenario's expectations.

    sudo python3 lab/run_scenarios.py [--binary target/debug/vpce-probe] [--only NAME] [--keep]
                                      [--timings FILE]

Each scenario's probe is timed (its wall time, `ip netns exec` included, and the report's own
duration) against the `--timeout` it was given: the time budget promises that any run, healthy
or broken, ends within 1.2x `--timeout` plus the process start. The summary lists the scenarios
over it; `--timings FILE` writes every figure as JSON (benches/bench.py reads it).

Python 3.11+, standard library only. See lab/README.md.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LAB_SH = HERE / "lab.sh"
SCENARIOS = HERE / "scenarios"
LAB_DIR = Path(os.environ.get("VPL_DIR", "/run/vpce-lab"))
LOCK_FILE = Path(os.environ.get("VPL_LOCK_FILE", "/run/vpce-lab.lock"))
NS_INST = "vpl-inst"
LAB_CA_NAME = "vpce-probe lab CA"

# Faults the runner implements itself (how the probe is started); the others are lab.sh's.
RUNNER_FAULTS = {
    # The instance's clock 30 minutes ahead (libfaketime, preloaded into the probe only).
    "clock-ahead-30m": ["faketime", "-f", "+30m"],
}


def standard_args(home: Path) -> list[str]:
    return [
        "probe",
        "--bucket", "lab-bucket",
        "--table", "lab-table",
        "--key", "probe/object.txt",
        "--item-key", '{"pk":{"S":"id-1"}}',
        "--ip-ranges", str(LAB_DIR / "ip-ranges.json"),
        "--internet-canary", "203.0.113.10:443",
        "--expect-issuer", LAB_CA_NAME,
        "--timeout", "1",
        "--deadline", "15",
        "--no-progress",
        "--format", "text",
        "--output", str(home / "report.json"),
    ]


# Flags that take one value: a scenario giving one replaces the standard one.
SINGLE_VALUED = {
    "--internet-canary", "--timeout", "--deadline", "--ip-ranges", "--vpc-resolver",
    "--resolv-conf", "--region", "--format", "--output", "--key", "--item-key",
    "--expect-path", "--fail-on", "--profile",
}

SCENARIO_KEYS = {"description", "faults", "args", "env", "expect", "known_bug"}
EXPECT_KEYS = {
    "exit", "present", "absent", "paths", "root_causes", "not_root_causes", "headline", "text",
    "not_text", "client", "sdk_client", "hops",
}
# [expect.hops] "ADDRESS" = { answered_at = N, via = ["10.0.1.1", "*"] }: the hop check of that
# address (a service address or the internet canary's): the TTL at which it answered (0: it
# did not) and who answered each TTL before it (an address, or "*" for silence).
HOP_KEYS = {"answered_at", "via"}
# [expect] client = "ok" | "fails": what the instance's own curl does with the bucket's URL
# under the scenario's environment, so a scenario proves the application really fails (or
# works) where the probe says so.
CLIENT_URL = "https://lab-bucket.s3.eu-west-1.amazonaws.com/"
# [expect] sdk_client = "ok" | "fails": what the instance's own AWS SDK (boto3, the AWS CLI's
# library) does with HeadBucket and DescribeTable under the scenario's environment and shared
# config: FIPS, dual-stack, profiles and endpoint URLs change the names it calls, which curl
# never sees.
SDK_CLIENT = Path(__file__).resolve().parent / "sdk_client.py"
SDK_PYTHON = Path(os.environ.get("VPCE_PROBE_MOTO", "/opt/vpce-probe-test/venv/bin/moto_server")).parent / "python"


class ScenarioError(Exception):
    pass


@dataclass
class Scenario:
    name: str
    path: Path
    description: str
    faults: list[str]
    args: list[str]
    env: dict[str, str]
    exit: int | None
    present: list[str]
    absent: list[str]
    paths: dict[str, dict[str, str]]
    hops: dict[str, dict]
    root_causes: list[str]
    not_root_causes: list[str]
    headline: str | None
    text: list[str]
    client: str | None
    sdk_client: str | None
    not_text: list[str]
    known_bug: str | None

    @staticmethod
    def load(path: Path) -> "Scenario":
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ScenarioError(f"{path}: {e}") from e
        unknown = set(data) - SCENARIO_KEYS
        if unknown:
            raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}")
        expect = data.get("expect", {})
        unknown = set(expect) - EXPECT_KEYS
        if unknown:
            raise ScenarioError(f"{path}: unknown [expect] keys {sorted(unknown)}")
        if "description" not in data or "exit" not in expect:
            raise ScenarioError(f"{path}: needs description and expect.exit")
        for key in ("client", "sdk_client"):
            if expect.get(key) not in (None, "ok", "fails"):
                raise ScenarioError(f"{path}: expect.{key} is \"ok\" or \"fails\"")
        for target, p in expect.get("paths", {}).items():
            if not set(p) <= {"kind", "confidence", "reachable", "decided_by"}:
                raise ScenarioError(
                    f"{path}: paths.{target}: only kind, confidence, reachable, decided_by")
        for address, h in expect.get("hops", {}).items():
            if not isinstance(h, dict) or not set(h) <= HOP_KEYS:
                raise ScenarioError(f"{path}: hops.{address}: only {sorted(HOP_KEYS)}")
        return Scenario(
            name=path.stem,
            path=path,
            description=data["description"],
            faults=list(data.get("faults", [])),
            args=[str(a) for a in data.get("args", [])],
            env={str(k): str(v) for k, v in data.get("env", {}).items()},
            exit=expect.get("exit"),
            present=list(expect.get("present", [])),
            absent=list(expect.get("absent", [])),
            paths=dict(expect.get("paths", {})),
            hops=dict(expect.get("hops", {})),
            root_causes=list(expect.get("root_causes", [])),
            not_root_causes=list(expect.get("not_root_causes", [])),
            headline=expect.get("headline"),
            text=list(expect.get("text", [])),
            client=expect.get("client"),
            sdk_client=expect.get("sdk_client"),
            not_text=list(expect.get("not_text", [])),
            known_bug=data.get("known_bug"),
        )


# The time budget: a run ends within this many times its `--timeout` (plus the process start).
BUDGET_RATIO = 1.2


@dataclass
class Result:
    scenario: Scenario
    seconds: float
    problems: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    report: dict | None = None
    exit: int | None = None
    lab_broken: bool = False
    # The probe's own wall time (from `ip netns exec` to its exit) and the `--timeout` it had.
    probe_seconds: float | None = None
    timeout_seconds: float | None = None

    def timing(self, start_seconds: float) -> dict:
        """The scenario's figures against the budget; `start_seconds` is the process start
        (`ip netns exec ... vpce-probe --version`), which the budget does not count."""
        wall = self.probe_seconds
        t = self.timeout_seconds
        run_ms = self.report.get("duration_ms") if self.report else None
        ratio = wall / t if wall is not None and t else None
        net = max(0.0, wall - start_seconds) / t if wall is not None and t else None
        return {
            "scenario": self.scenario.name,
            "timeout_s": t,
            "probe_wall_s": round(wall, 4) if wall is not None else None,
            "report_duration_ms": run_ms,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "ratio_without_start": round(net, 3) if net is not None else None,
            "run_ratio": round(run_ms / 1000 / t, 3) if run_ms is not None and t else None,
            "over_budget": net is not None and net > BUDGET_RATIO,
            "exit": self.exit,
            "passed": self.ok,
        }

    @property
    def ok(self) -> bool:
        return not self.problems


def lab(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs lab.sh in its own session, so that Ctrl-C reaches only this runner (which then
    tears the lab down) and never a half-finished lab.sh."""
    return subprocess.run(
        ["bash", str(LAB_SH), *args],
        check=check,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "VPL_LOCK_HELD": "1"},
    )


def take_lab_lock() -> int:
    """One lab per machine: the machine-wide lock lab.sh takes too (the namespaces are
    machine-wide, whichever checkout runs the lab)."""
    fd = os.open(LOCK_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("run_scenarios: another lab run holds the lab; waiting", file=sys.stderr, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


# The lab's EC2 model (lab.sh up writes it): {nat_id} and {nat_ip} in a scenario's args, env
# and expectations are the seeded NAT gateway's id and private address (moto picks the address
# at random, and the NAT's hop answers from it). Read again after every `lab.sh up`.
MODEL: dict[str, str] = {}
MODEL_KEYS = {"nat_id": "NAT_ID", "nat_ip": "NAT_IP"}


def read_model() -> None:
    MODEL.clear()
    try:
        lines = (LAB_DIR / "ec2-model.env").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            MODEL[key.strip()] = value.strip()


def substitute(value: str, home: Path | None = None) -> str:
    value = value.replace("{lab_dir}", str(LAB_DIR))
    if home is not None:
        value = value.replace("{home}", str(home))
    # Without the model the placeholder stays, and the expectation holding it fails visibly.
    for name, key in MODEL_KEYS.items():
        if key in MODEL:
            value = value.replace("{" + name + "}", MODEL[key])
    return value


def build_command(s: Scenario, binary: Path, home: Path) -> list[str]:
    args = standard_args(home)
    extra = [substitute(a, home) for a in s.args]
    for flag in SINGLE_VALUED:
        if flag in extra and flag in args:
            i = args.index(flag)
            del args[i:i + 2]
    args += extra
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "SSL_CERT_FILE": str(LAB_DIR / "trust.pem"),
        "NO_COLOR": "1",
    }
    env.update({k: substitute(v, home) for k, v in s.env.items()})
    wrapper: list[str] = []
    for f in s.faults:
        wrapper += RUNNER_FAULTS.get(f, [])
    return [
        "ip", "netns", "exec", NS_INST, "env", "-i",
        *[f"{k}={v}" for k, v in env.items()],
        *wrapper, str(binary), *args,
    ]


def timeout_of(cmd: list[str]) -> float | None:
    """The `--timeout` the probe was given, in seconds ("1", "2s", "2500ms")."""
    if "--timeout" not in cmd:
        return None
    raw = cmd[cmd.index("--timeout") + 1].strip()
    try:
        if raw.endswith("ms"):
            return float(raw[:-2]) / 1000
        return float(raw.rstrip("s"))
    except ValueError:
        return None


def process_start(binary: Path) -> float:
    """The process start as the runner pays it (`ip netns exec`, `env -i`, the binary's load):
    the median of five `vpce-probe --version` in the instance namespace."""
    times = []
    for _ in range(5):
        t = time.monotonic()
        subprocess.run(["ip", "netns", "exec", NS_INST, "env", "-i", str(binary), "--version"],
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        times.append(time.monotonic() - t)
    return sorted(times)[len(times) // 2]


def split_code(spec: str) -> tuple[str, str | None]:
    code, _, target = spec.partition("@")
    return code, (target or None)


def check_client(s: Scenario, r: Result, home: Path) -> None:
    env = [f"{k}={substitute(v, home)}" for k, v in s.env.items()]
    proc = subprocess.run(
        ["bash", str(LAB_SH), "exec", "env", *env, "curl", "-sS", "-o", "/dev/null",
         "--max-time", "3", CLIENT_URL],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        env={**os.environ, "VPL_LOCK_HELD": "1"},
    )
    works = proc.returncode == 0
    if s.client == "ok" and not works:
        r.problems.append(f"the instance's curl fails on {CLIENT_URL}: {proc.stderr.strip()}")
    if s.client == "fails" and works:
        r.problems.append(f"the instance's curl reaches {CLIENT_URL}; the scenario breaks nothing")


def check_sdk_client(s: Scenario, r: Result, home: Path) -> None:
    env = [f"AWS_CA_BUNDLE={LAB_DIR / 'trust.pem'}"]
    env += [f"{k}={substitute(v, home)}" for k, v in s.env.items()]
    proc = subprocess.run(
        ["bash", str(LAB_SH), "exec", "env", *env, str(SDK_PYTHON), str(SDK_CLIENT)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "VPL_LOCK_HELD": "1"},
    )
    works = proc.returncode == 0
    if s.sdk_client == "ok" and not works:
        r.problems.append(f"the instance's SDK client fails: {proc.stderr.strip()[-600:]}")
    if s.sdk_client == "fails" and works:
        r.problems.append("the instance's SDK client works; the scenario breaks nothing")


def check(s: Scenario, r: Result) -> None:
    rep = r.report
    if rep is None and s.exit == 2:
        # Bad input: nothing is probed and no report is written; one line on stderr says why.
        if r.exit != 2:
            r.problems.append(f"exit {r.exit}, expected 2")
        lines = r.stderr.strip().splitlines()
        if len(lines) != 1:
            r.problems.append(f"expected one line on stderr, got {len(lines)}")
        for needle in map(substitute, s.text):
            if needle not in r.stderr:
                r.problems.append(f"stderr lacks {needle!r}")
        return
    if rep is None:
        r.problems.append("no JSON report was written")
        if s.exit is not None and r.exit != s.exit:
            r.problems.append(f"exit {r.exit}, expected {s.exit}")
        return
    if s.exit is not None and r.exit != s.exit:
        r.problems.append(f"exit {r.exit}, expected {s.exit}")
    findings = rep.get("findings", [])
    have = [(f.get("code"), f.get("target")) for f in findings]

    def found(spec: str) -> bool:
        code, target = split_code(spec)
        return any(c == code and (target is None or t == target) for c, t in have)

    missing = [c for c in s.present if not found(c)]
    unwanted = [c for c in s.absent if found(c)]
    if missing:
        r.problems.append(f"missing codes {missing}")
    if unwanted:
        r.problems.append(f"unwanted codes {unwanted}")
    roots = [(c.get("code"), c.get("target")) for c in rep.get("verdict", {}).get("root_causes", [])]

    def is_root(spec: str) -> bool:
        code, target = split_code(spec)
        return any(c == code and (target is None or t == target) for c, t in roots)

    for spec in s.root_causes:
        if not is_root(spec):
            r.problems.append(f"root cause {spec} not in verdict.root_causes")
    for spec in s.not_root_causes:
        if is_root(spec):
            r.problems.append(f"{spec} is a root cause but should not be (another finding explains it)")
    if s.headline is not None:
        first = roots[0][0] if roots else None
        if first != s.headline:
            r.problems.append(f"the verdict names {first} first, expected {s.headline}")
    targets = {t.get("id"): t.get("path", {}) for t in rep.get("targets", [])}
    for target, want in s.paths.items():
        got = targets.get(target)
        if got is None:
            r.problems.append(f"no target {target} in the report")
            continue
        for key, value in want.items():
            if got.get(key) != value:
                r.problems.append(f"{target} path {key} = {got.get(key)!r}, expected {value!r}")
    check_hops(s, r, rep)
    for needle in map(substitute, s.text):
        if needle not in r.stdout:
            r.problems.append(f"text report lacks {needle!r}")
    report_text = json.dumps(rep)
    for needle in map(substitute, s.not_text):
        for where, text in (("text report", r.stdout), ("stderr", r.stderr), ("JSON report", report_text)):
            if needle in text:
                r.problems.append(f"the {where} contains {needle!r}")


def check_hops(s: Scenario, r: Result, rep: dict) -> None:
    traces = {}
    for c in rep.get("checks", []):
        ev = c.get("evidence", {})
        if ev.get("type") == "hops":
            traces.setdefault(ev.get("address"), ev)
    for address, want in s.hops.items():
        address = substitute(address)
        got = traces.get(address)
        if got is None:
            r.problems.append(f"no hop check of {address} in the report")
            continue
        at = got.get("answered_at") or 0
        if "answered_at" in want and at != want["answered_at"]:
            r.problems.append(f"hops {address}: answered at {at}, expected {want['answered_at']}")
        via = [h.get("from") or "*" for h in got.get("hops", [])]
        want_via = [substitute(v) for v in want.get("via", [])]
        if "via" in want and via != want_via:
            r.problems.append(f"hops {address}: via {via}, expected {want_via}")


def actual_summary(r: Result) -> str:
    if r.report is None:
        return f"  actual: exit {r.exit}, no report"
    codes = sorted({f"{f.get('code')}@{f.get('target')}" for f in r.report.get("findings", [])})
    paths = {
        t.get("id"): f"{t.get('path', {}).get('kind')}/{t.get('path', {}).get('confidence')}"
        for t in r.report.get("targets", [])
    }
    roots = [c.get("code") for c in r.report.get("verdict", {}).get("root_causes", [])]
    return (
        f"  actual:   exit {r.exit}; codes {codes}\n"
        f"            paths {paths}; root causes {roots}"
    )


def expected_summary(s: Scenario) -> str:
    paths = {k: f"{v.get('kind')}/{v.get('confidence')}" for k, v in s.paths.items()}
    roots = f"; root causes {s.root_causes}" if s.root_causes else ""
    if s.not_root_causes:
        roots += f"; not root causes {s.not_root_causes}"
    if s.headline:
        roots += f"; headline {s.headline}"
    return (
        f"  expected: exit {s.exit}; present {s.present}; absent {s.absent}\n"
        f"            paths {paths}{roots}"
    )


def run_scenario(s: Scenario, binary: Path) -> Result:
    started = time.monotonic()
    lab_faults = [f for f in s.faults if f not in RUNNER_FAULTS]
    try:
        lab("reset")
        if lab_faults:
            lab("apply", *lab_faults)
    except subprocess.CalledProcessError as e:
        r = Result(s, time.monotonic() - started, lab_broken=True)
        r.problems.append(f"lab.sh {' '.join(e.cmd[2:])} failed (exit {e.returncode}); the lab is rebuilt")
        return r
    home = Path(tempfile.mkdtemp(prefix="home.", dir=LAB_DIR))
    try:
        cmd = build_command(s, binary, home)
        probe_started = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
            result = Result(s, 0.0, stdout=proc.stdout, stderr=proc.stderr, exit=proc.returncode)
        except subprocess.TimeoutExpired as e:
            result = Result(s, 0.0, stdout=e.stdout or "", stderr=e.stderr or "", exit=None)
            result.problems.append("the probe did not finish within 60 s")
        result.probe_seconds = time.monotonic() - probe_started
        result.timeout_seconds = timeout_of(cmd)
        report = home / "report.json"
        if report.exists():
            try:
                result.report = json.loads(report.read_text())
            except json.JSONDecodeError as e:
                result.problems.append(f"report.json is not JSON: {e}")
        if not result.problems:
            check(s, result)
        if s.client is not None:
            check_client(s, result, home)
        if s.sdk_client is not None:
            check_sdk_client(s, result, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/debug/vpce-probe",
                    help="the vpce-probe binary (default: target/debug/vpce-probe)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only this scenario (repeatable; NAME is the file name without .toml)")
    ap.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    ap.add_argument("--show", action="store_true",
                    help="print every probe's text report, not only those of failing scenarios")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="run the selected scenarios N times in a row (default 1)")
    ap.add_argument("--save-reports", type=Path, metavar="DIR",
                    help="write each scenario's JSON report to DIR/<scenario>.json")
    ap.add_argument("--timings", type=Path, metavar="FILE",
                    help="write each scenario's probe wall time and its ratio to --timeout as JSON")
    opts = ap.parse_args()

    if os.geteuid() != 0:
        print("run_scenarios: run as root (namespaces, iptables)", file=sys.stderr)
        return 2
    binary = Path(opts.binary)
    if not binary.is_absolute():
        binary = (Path.cwd() / binary) if (Path.cwd() / binary).exists() else REPO / binary
    if not binary.exists():
        print(f"run_scenarios: {binary} does not exist (cargo build --bin vpce-probe)", file=sys.stderr)
        return 2
    try:
        scenarios = [Scenario.load(p) for p in sorted(SCENARIOS.glob("*.toml"))]
    except ScenarioError as e:
        print(f"run_scenarios: {e}", file=sys.stderr)
        return 2
    known_faults = set(RUNNER_FAULTS)
    listing = subprocess.run(["bash", str(LAB_SH), "faults"], capture_output=True, text=True, check=True)
    known_faults |= {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}
    for s in scenarios:
        unknown = [f for f in s.faults if f not in known_faults]
        if unknown:
            print(f"run_scenarios: {s.path}: unknown faults {unknown}", file=sys.stderr)
            return 2
    if opts.only:
        names = {s.name for s in scenarios}
        unknown = [n for n in opts.only if n not in names]
        if unknown:
            print(f"run_scenarios: no scenario {unknown}; have: {' '.join(sorted(names))}", file=sys.stderr)
            return 2
        scenarios = [s for s in scenarios if s.name in opts.only]

    # SIGTERM (CI cancelling the job) tears the lab down like Ctrl-C does.
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    # VPL_LOCK_HELD=1: the caller holds the lock already (lab.sh honours the same variable).
    if os.environ.get("VPL_LOCK_HELD") != "1":
        take_lab_lock()
    total_started = time.monotonic()
    failed: list[str] = []
    known: list[str] = []
    passed = 0
    timings: list[dict] = []
    start_seconds = 0.0
    try:
        t = time.monotonic()
        lab("up")
        read_model()
        print(f"lab up in {time.monotonic() - t:.1f} s; {len(scenarios)} scenario(s); binary {binary}", flush=True)
        start_seconds = process_start(binary)
        print(f"process start (ip netns exec ... vpce-probe --version): {start_seconds * 1000:.0f} ms", flush=True)
        for round_no in range(1, opts.repeat + 1):
            if opts.repeat > 1:
                print(f"--- run {round_no} of {opts.repeat}", flush=True)
            for s in scenarios:
                r = run_scenario(s, binary)
                if opts.save_reports and r.report is not None:
                    opts.save_reports.mkdir(parents=True, exist_ok=True)
                    (opts.save_reports / f"{s.name}.json").write_text(
                        json.dumps(r.report, indent=2) + "\n")
                if r.lab_broken:
                    lab("up")
                    read_model()
                if r.ok and s.known_bug:
                    status = "PASS"
                    note = f"  (known_bug no longer reproduces: remove it from {s.path.name})"
                elif r.ok:
                    status, note = "PASS", ""
                elif s.known_bug:
                    status, note = "KNOWN-BUG", f"  ({s.known_bug})"
                    known.append(s.name)
                else:
                    status, note = "FAIL", ""
                    failed.append(s.name)
                if status == "PASS":
                    passed += 1
                timing = r.timing(start_seconds)
                timings.append(timing)
                probe = ""
                if timing["probe_wall_s"] is not None and timing["ratio"] is not None:
                    probe = (f"  probe {timing['probe_wall_s']:5.2f} s = "
                             f"{timing['ratio']:4.2f}x --timeout {timing['timeout_s']:g}")
                print(f"{status:<9} {s.name:<34} {r.seconds:5.1f} s{probe}{note}", flush=True)
                if opts.show and (r.ok or status != "FAIL"):
                    print(f"  {s.description}")
                    print("\n".join("  | " + line for line in r.stdout.rstrip().splitlines()))
                if not r.ok:
                    for p in r.problems:
                        print(f"  - {p}")
                    print(expected_summary(s))
                    print(actual_summary(r))
                    if status == "FAIL":
                        print("  --- probe text report")
                        print("\n".join("  | " + line for line in r.stdout.rstrip().splitlines()))
                        if r.stderr.strip():
                            print("  --- probe stderr (last 20 lines)")
                            print("\n".join("  | " + line for line in r.stderr.rstrip().splitlines()[-20:]))
                    sys.stdout.flush()
    except KeyboardInterrupt:
        print("\ninterrupted: tearing the lab down", file=sys.stderr)
        failed.append("(interrupted)")
    except subprocess.CalledProcessError as e:
        print(f"run_scenarios: {' '.join(map(str, e.cmd))} failed with exit {e.returncode}", file=sys.stderr)
        failed.append("(lab error)")
    finally:
        if opts.keep and "(interrupted)" not in failed:
            print(f"lab left up (--keep): bash {LAB_SH} status; bash {LAB_SH} down", flush=True)
        else:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            lab("down", check=False)
    total = time.monotonic() - total_started
    over = [t for t in timings if t["over_budget"]]
    if timings:
        print(f"time budget ({BUDGET_RATIO}x --timeout after the process start of "
              f"{start_seconds * 1000:.0f} ms): {len(timings) - len(over)} of {len(timings)} within")
        for t in sorted(over, key=lambda t: -t["ratio_without_start"]):
            print(f"  over: {t['scenario']:<34} {t['probe_wall_s']:5.2f} s, "
                  f"{t['ratio_without_start']:.2f}x --timeout {t['timeout_s']:g} (report {t['report_duration_ms']} ms)")
    if opts.timings:
        opts.timings.parent.mkdir(parents=True, exist_ok=True)
        opts.timings.write_text(json.dumps({
            "binary": str(binary),
            "budget_ratio": BUDGET_RATIO,
            "process_start_s": round(start_seconds, 4),
            "scenarios": timings,
        }, indent=2) + "\n")
    failures = [f for f in failed if not f.startswith("(")]
    print(f"{passed} passed, {len(failures)} failed, {len(known)} known bug(s); total {total:.1f} s")
    if failed:
        print(f"FAILED: {' '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
